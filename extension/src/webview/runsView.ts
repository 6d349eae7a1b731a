// The runs panel's page script (bundled for the browser). It only draws what the extension sends: RunViews,
// as the server reduced each run's events (modelmill/runState). Cards are replaced only for runs whose `version` moved.
import { EMPTY_HTML, renderRun } from '../runsHtml';
import type { RunView } from '../runModel';

interface VsCodeApi {
  postMessage(message: unknown): void;
  getState(): { openLogs?: string[] } | undefined;
  setState(state: { openLogs: string[] }): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const api = acquireVsCodeApi();
const root = document.getElementById('runs') as HTMLElement;
const runs = new Map<string, RunView>();
const drawn = new Map<string, number>();
const openLogs = new Set<string>(api.getState()?.openLogs ?? []);

function draw(order: string[]): void {
  for (const id of [...drawn.keys()]) {
    if (!order.includes(id)) { root.querySelector(`section.run[data-run="${CSS.escape(id)}"]`)?.remove(); drawn.delete(id); }
  }
  let previous: Element | null = null;
  for (const id of order) {
    const run = runs.get(id);
    if (!run) continue;
    let card = root.querySelector(`section.run[data-run="${CSS.escape(id)}"]`);
    if (!card || drawn.get(id) !== run.version) {
      const holder = document.createElement('div');
      holder.innerHTML = renderRun(run, openLogs.has(id));
      const fresh = holder.firstElementChild as Element;
      const oldLines = card?.querySelector('.loglines');
      const stick = oldLines ? oldLines.scrollTop + oldLines.clientHeight >= oldLines.scrollHeight - 4 : true;
      if (card) card.replaceWith(fresh); else root.appendChild(fresh);
      // the CSP forbids style attributes; CSSOM is fine
      fresh.querySelectorAll<HTMLElement>('.bar > div').forEach((bar) => { bar.style.width = `${run.percent}%`; });
      const lines = fresh.querySelector('.loglines');
      if (lines) lines.scrollTop = stick ? lines.scrollHeight : (oldLines?.scrollTop ?? 0);
      card = fresh;
      drawn.set(id, run.version);
    }
    const expected: Element | null = previous ? previous.nextElementSibling : root.firstElementChild;
    if (expected !== card) root.insertBefore(card, expected);
    previous = card;
  }
  const empty = root.querySelector('.empty');
  if (!order.length && !empty) root.innerHTML = EMPTY_HTML;
  else if (order.length && empty) empty.remove();
}

window.addEventListener('message', (event: MessageEvent) => {
  const message = event.data as { type: string; runs: RunView[]; order: string[] };
  if (message.type !== 'runs') return;
  for (const run of message.runs) runs.set(run.runId, run);
  for (const id of [...runs.keys()]) if (!message.order.includes(id)) runs.delete(id);
  draw(message.order);
});

root.addEventListener('click', (event) => {
  const target = (event.target as Element).closest('button.act') as HTMLButtonElement | null;
  if (target) api.postMessage({ type: 'action', action: target.dataset.action, runId: target.dataset.run });
});

root.addEventListener('toggle', (event) => {
  const details = event.target as HTMLDetailsElement;
  const id = details.dataset.run;
  if (!id) return;
  if (details.open) openLogs.add(id); else openLogs.delete(id);
  api.setState({ openLogs: [...openLogs] });
}, true);

api.postMessage({ type: 'ready' });
