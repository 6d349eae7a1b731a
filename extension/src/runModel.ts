// The runs the panel shows, as the server reduced them (modelmill/runState: server/modelmill/run_state.py), and how
// a value is written. Pure: no vscode import. Nothing here reduces events: every field of a RunView comes from the
// server, which reduces each run's events once, for the CLI, the editor's progress and this panel alike.
import type { RunView } from './contracts.generated';

export type {
  CandidateRow, LogLine, PassRow, RunError, RunStatus, RunView, TrainingView,
} from './contracts.generated';

const BYTE_UNITS = new Set(['b', 'byte', 'bytes']);
const SECOND_UNITS: Record<string, number> = { ms: 1e-3, s: 1, sec: 1, seconds: 1 };

/** Is this a unit that formatValue writes in human units (a size or a time), naming the unit itself? */
export function humanUnit(unit: string | undefined): boolean {
  const u = (unit ?? '').toLowerCase();
  return BYTE_UNITS.has(u) || u in SECOND_UNITS;
}

/** A number with its unit, in human units: sizes as KiB/MiB/GiB, times over a second as s / min / h
 * (the server's run_state.panel_value writes the step line the same way; fixtures/format_value.json). */
export function formatValue(value: number | null | undefined, unit = ''): string {
  if (value === null || value === undefined) return 'n/a';
  const u = unit.toLowerCase();
  if (BYTE_UNITS.has(u)) return formatBytes(value);
  if (u in SECOND_UNITS && Math.abs(value * SECOND_UNITS[u]) >= 1) return formatDuration(value * SECOND_UNITS[u]);
  const text = Math.abs(value) >= 1000 ? Math.round(value).toLocaleString('en-US') : Number(value.toPrecision(4)).toString();
  return unit ? `${text} ${unit}` : text;
}

export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let index = 0;
  while (Math.abs(value) >= 1024 && index < units.length - 1) { value /= 1024; index++; }
  return index === 0 ? `${Math.round(value)} bytes` : `${Number(value.toPrecision(3))} ${units[index]}`;
}

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return '';
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) {
    const m = Math.floor(seconds / 60);
    return `${m} min ${Math.round(seconds - m * 60)} s`;
  }
  const h = Math.floor(seconds / 3600);
  return `${h} h ${Math.round((seconds - h * 3600) / 60)} min`;
}

const isView = (state: unknown): state is RunView => !!state && typeof state === 'object'
  && typeof (state as RunView).runId === 'string' && typeof (state as RunView).version === 'number';

/** All runs the panel knows, newest first: the latest state the server sent of each. */
export class RunStore {
  private readonly runs = new Map<string, RunView>();

  /** Keeps a run's state unless this one is older than the one kept (a reply that crossed a notification);
   * returns the run's id when it changed. */
  update(state: RunView): string | undefined {
    if (!isView(state)) return undefined;
    const kept = this.runs.get(state.runId);
    if (kept && kept.version > state.version) return undefined;
    this.runs.set(state.runId, state);
    return state.runId;
  }

  get(runId: string): RunView | undefined {
    return this.runs.get(runId);
  }

  /** Newest first. */
  list(): RunView[] {
    return [...this.runs.values()].reverse();
  }

  active(): RunView[] {
    return this.list().filter((r) => r.status === 'running');
  }

  clearFinished(): string[] {
    const removed: string[] = [];
    for (const [id, run] of this.runs) {
      if (run.status !== 'running') { this.runs.delete(id); removed.push(id); }
    }
    return removed;
  }
}
