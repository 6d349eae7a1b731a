// RunView → HTML for the runs panel (run in the webview; pure, so tests render it under node too).
import { formatDuration, formatValue, humanUnit, RunView } from './runModel';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const esc = (value: unknown): string => String(value ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c]);

const STATUS_TEXT: Record<string, string> = { running: 'running', succeeded: 'done', failed: 'failed', cancelled: 'cancelled' };
const PASS_ICON: Record<string, string> = { running: '◐', done: '✓', cached: '↺', stopped: '■' };

function button(action: string, runId: string, label: string, title: string): string {
  return `<button class="act" data-action="${action}" data-run="${esc(runId)}" title="${esc(title)}">${esc(label)}</button>`;
}

function passesTable(run: RunView): string {
  if (!run.passes.length) return '';
  const rows = run.passes.map((p) => {
    const progress = p.state === 'running' ? `${Math.round(p.fraction * 100)}%` : '';
    return `<tr class="pass ${p.state}"><td>${PASS_ICON[p.state] ?? ''}</td>`
      + `<td>${p.candidate ? `${esc(p.candidate)} · ` : ''}${p.index + 1}/${p.total} <b>${esc(p.name)}</b>`
      + `${p.node ? ` <span class="node" title="Ray node">@ ${esc(p.node)}</span>` : ''}</td>`
      + `<td>${esc(p.type)}</td><td class="state">${esc(p.state)}</td>`
      + `<td class="num">${p.durationS !== null ? esc(formatDuration(p.durationS)) : esc(progress)}</td>`
      + `<td class="msg">${esc(p.message)}</td></tr>`;
  }).join('');
  return `<table class="passes"><thead><tr><th></th><th>pass</th><th>type</th><th>state</th><th>duration</th><th></th></tr></thead>`
    + `<tbody>${rows}</tbody></table>`;
}

/** A metric cell: sizes and times in human units (with their unit), other numbers bare (the header has the unit). */
function cell(value: number | null, unit: string | undefined): string {
  return humanUnit(unit) ? formatValue(value, unit) : formatValue(value);
}

function metricsTable(run: RunView): string {
  if (!run.candidates.length || !run.metricKeys.length) return '';
  const onCluster = run.candidates.some((c) => c.node);
  // Sizes and times are written in human units in the cells, so the header names no unit for them.
  const shownUnit = (k: string) => (humanUnit(run.metricUnits[k]) ? '' : run.metricUnits[k]);
  const head = run.metricKeys.map((k) => `<th>${esc(k)}${shownUnit(k) ? ` <span class="unit">(${esc(shownUnit(k))})</span>` : ''}</th>`).join('');
  const rows = run.candidates.map((c) => {
    const best = run.bestCandidate === c.id;
    const cells = run.metricKeys.map((k) => `<td class="num">${k in c.metrics ? esc(cell(c.metrics[k], run.metricUnits[k])) : ''}</td>`).join('');
    const verdict = c.state === 'failed' ? `failed${c.message ? `: ${esc(c.message)}` : ''}`
      : c.isInput ? 'input' : c.accepted === null ? esc(c.state) : c.accepted ? 'meets goals' : 'misses a goal';
    const params = Object.keys(c.params).length ? esc(JSON.stringify(c.params)) : '';
    const node = onCluster ? `<td class="node">${esc(c.node ?? '')}${c.attempt > 1 ? ` (try ${c.attempt})` : ''}</td>` : '';
    return `<tr class="cand${best ? ' best' : ''}"><td>${best ? '★ ' : ''}<b>${esc(c.id)}</b></td>${cells}`
      + `<td>${verdict}</td>${node}<td class="params" title="${params}">${params}</td></tr>`;
  }).join('');
  return `<table class="metrics"><thead><tr><th>candidate</th>${head}<th>verdict</th>${onCluster ? '<th>node</th>' : ''}`
    + `<th>params</th></tr></thead>`
    + `<tbody>${rows}</tbody></table>`;
}

function training(run: RunView): string {
  const t = run.training;
  if (!t) return '';
  const parts = [`step ${t.step}/${t.maxSteps}`];
  if (t.loss !== null) parts.push(`loss ${formatValue(t.loss)}`);
  if (t.evalLoss !== null) {
    const from = t.firstEvalLoss !== null && t.firstEvalLoss !== t.evalLoss ? ` (from ${formatValue(t.firstEvalLoss)})` : '';
    parts.push(`eval loss ${formatValue(t.evalLoss)}${from}`);
  }
  if (t.learningRate !== null) parts.push(`lr ${t.learningRate.toExponential(1)}`);
  if (run.status === 'running' && t.etaS !== null) parts.push(`eta ${formatDuration(t.etaS)}`);
  return `<div class="training"><b>${esc(t.pass)}</b> training: ${parts.map(esc).join(' · ')}</div>`;
}

function logs(run: RunView, open: boolean): string {
  if (!run.logs.length) return '';
  const lines = run.logs.map((l) => `<div class="log ${esc(l.level)}"><span class="lvl">${esc(l.level)}</span>`
    + `${l.source ? `<span class="src">${esc(l.source)}</span>` : ''}${esc(l.message)}</div>`).join('');
  const dropped = run.droppedLogs ? `<div class="log muted">… ${run.droppedLogs} earlier lines not kept</div>` : '';
  return `<details class="logs" data-run="${esc(run.runId)}"${open ? ' open' : ''}><summary>log (${run.logs.length + run.droppedLogs} lines)</summary>`
    + `<div class="loglines">${dropped}${lines}</div></details>`;
}

/** One run's card. `logsOpen`: whether the user unfolded its log. */
export function renderRun(run: RunView, logsOpen = false): string {
  const status = STATUS_TEXT[run.status] ?? run.status;
  const actions = [
    run.status === 'running' ? button('cancel', run.runId, 'Cancel', 'Cancel this run') : '',
    run.status === 'succeeded' && run.outputDir ? button('reveal', run.runId, 'Reveal output', run.outputDir) : '',
    run.status === 'succeeded' && run.evaluated ? button('report', run.runId, 'Open report', 'report.html of this run') : '',
  ].join('');
  const percent = run.status === 'running' ? `<span class="pct">${run.percent}%</span>` : '';
  const bar = run.status === 'running'
    ? `<div class="bar" role="progressbar" aria-valuenow="${run.percent}"><div></div></div>` : ''; // width: set by the page script (CSP)
  const meta = [run.device && `${esc(run.device)}${run.executionProvider ? ` · ${esc(run.executionProvider)}` : ''}`,
    run.outputDir && `→ <code>${esc(run.outputDir)}</code>`, run.durationS !== null && esc(formatDuration(run.durationS))]
    .filter(Boolean).join(' &nbsp; ');
  const error = run.error ? `<div class="error"><b>${esc(run.error.kind || 'error')}</b>: ${esc(run.error.message)}`
    + `${run.error.where ? ` <span class="muted">(${esc(run.error.where)})</span>` : ''}`
    + `${run.error.fix ? `<div class="fix">fix: ${esc(run.error.fix)}</div>` : ''}</div>` : '';
  const warnings = run.warnings.map((w) => `<div class="warning">⚠ ${esc(w)}</div>`).join('');
  const best = run.bestCandidate ? `<div class="bestline">best candidate: <b>${esc(run.bestCandidate)}</b></div>` : '';
  const missing = run.missing ? `<div class="warning">${run.missing} events were lost in transport</div>` : '';
  return `<section class="run ${esc(run.status)}" data-run="${esc(run.runId)}" data-status="${esc(status)}">`
    + `<header><span class="status ${esc(run.status)}">${esc(status)}</span><span class="label">${esc(run.label)}</span>`
    + `${percent}<span class="actions">${actions}</span></header>${bar}`
    + `<div class="step">${esc(run.step)}</div><div class="meta">${meta}</div>`
    + `${error}${warnings}${missing}${training(run)}${passesTable(run)}${metricsTable(run)}${best}${logs(run, logsOpen)}</section>`;
}

export const EMPTY_HTML = '<div class="empty">No runs yet. Open a workflow config and run <b>ModelMill: Optimize Workflow</b>.</div>';
