// Run events (docs/events.md) → the runs panel's model. Pure: no vscode import, nothing invented — every field
// below is copied or counted from events. Each event costs O(1) (passes and candidates are found through maps,
// log lines are kept in a bounded ring), so 1,000 events a minute stay cheap however long a run is.

export interface RunEvent {
  v: number;
  type: string;
  run_id: string;
  ts: number;
  seq: number;
  [field: string]: unknown;
}

export type RunStatus = 'running' | 'succeeded' | 'failed' | 'cancelled';
export type PassStateName = 'running' | 'done' | 'cached' | 'stopped';

export interface PassRow {
  name: string;
  type: string;
  candidate: string | null;
  index: number;
  total: number;
  state: PassStateName;
  fraction: number;
  message: string;
  durationS: number | null;
  /** The Ray node that ran it (its IP where known), on a cluster run. */
  node: string | null;
}

export interface CandidateRow {
  id: string;
  params: Record<string, unknown>;
  metrics: Record<string, number | null>;
  state: 'running' | 'evaluating' | 'evaluated' | 'failed';
  accepted: boolean | null;
  isInput: boolean;
  durationS: number | null;
  message: string | null;
  node: string | null;
  attempt: number;
}

export interface LogLine {
  ts: number;
  level: string;
  source: string;
  message: string;
}

export interface RunError {
  message: string;
  fix: string | null;
  where: string | null;
  kind: string;
}

/** Where a training pass (LoRA) stands: from train.step / train.eval events. */
export interface TrainingView {
  pass: string;
  step: number;
  maxSteps: number;
  loss: number | null;
  learningRate: number | null;
  etaS: number | null;
  evalLoss: number | null;
  evalStep: number | null;
  /** The first eval loss (step 0 = the base model's), to show how far training has moved it. */
  firstEvalLoss: number | null;
}

export interface RunView {
  runId: string;
  label: string;
  status: RunStatus;
  startedTs: number | null;
  finishedTs: number | null;
  durationS: number | null;
  outputDir: string | null;
  inputModel: string | null;
  device: string | null;
  executionProvider: string | null;
  passes: PassRow[];
  candidates: CandidateRow[];
  metricKeys: string[];
  metricUnits: Record<string, string>;
  bestCandidate: string | null;
  training: TrainingView | null;
  /** Evaluated runs write report.html and modelmill_run.json into their output folder. */
  evaluated: boolean;
  step: string;
  percent: number;
  logs: LogLine[];
  droppedLogs: number;
  warnings: string[];
  error: RunError | null;
  events: number;
  /** Events lost in transport: gaps in `seq`. */
  missing: number;
  /** Bumped on every change; the view re-renders a run only when this moved. */
  version: number;
}

export const MAX_LOG_LINES = 300;
const MAX_WARNINGS = 50;

interface RunState {
  view: RunView;
  passes: Map<string, PassRow>;
  candidates: Map<string, CandidateRow>;
  lastSeq: number;
  /** The pass that reported last: the run's percentage follows it. */
  current: PassRow | null;
}

const str = (value: unknown): string => (value === undefined || value === null ? '' : String(value));
const num = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null);
const basename = (path: string): string => path.replace(/[\\/]+$/, '').split(/[\\/]/).pop() || path;

const BYTE_UNITS = new Set(['b', 'byte', 'bytes']);
const SECOND_UNITS: Record<string, number> = { ms: 1e-3, s: 1, sec: 1, seconds: 1 };

/** Is this a unit that formatValue writes in human units (a size or a time), naming the unit itself? */
export function humanUnit(unit: string | undefined): boolean {
  const u = (unit ?? '').toLowerCase();
  return BYTE_UNITS.has(u) || u in SECOND_UNITS;
}

/** A number with its unit, in human units: sizes as KiB/MiB/GiB, times over a second as s / min / h. */
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

function newRun(runId: string, label?: string): RunState {
  return {
    view: {
      runId, label: label ?? runId, status: 'running', startedTs: null, finishedTs: null, durationS: null,
      outputDir: null, inputModel: null, device: null, executionProvider: null, passes: [], candidates: [],
      metricKeys: [], metricUnits: {}, bestCandidate: null, training: null, evaluated: false, step: 'starting', percent: 0,
      logs: [], droppedLogs: 0, warnings: [], error: null, events: 0, missing: 0, version: 0,
    },
    passes: new Map(), candidates: new Map(), lastSeq: -1, current: null,
  };
}

/** All runs the panel knows, newest first; `apply` folds one event in. */
export class RunStore {
  private readonly runs = new Map<string, RunState>();
  private readonly labels = new Map<string, string>();

  /** A name for a run the client started (its config file); used when the run's events arrive. */
  setLabel(runId: string, label: string): void {
    this.labels.set(runId, label);
    const run = this.runs.get(runId);
    if (run) { run.view.label = label; run.view.version++; }
  }

  /** A run the server listed (`modelmill.runs`) that this client has no events for. */
  addListed(info: { runId: string; status: string; config?: string | null; outputDir?: string | null }): void {
    if (this.runs.has(info.runId)) return;
    const run = newRun(info.runId, this.labels.get(info.runId) ?? (info.config ? basename(info.config) : undefined));
    const status = info.status as RunStatus;
    run.view.status = ['running', 'succeeded', 'failed', 'cancelled'].includes(status) ? status : 'running';
    run.view.outputDir = info.outputDir ?? null;
    run.view.step = run.view.status === 'running' ? 'running' : run.view.status;
    this.runs.set(info.runId, run);
  }

  get(runId: string): RunView | undefined {
    return this.runs.get(runId)?.view;
  }

  /** Newest first. */
  list(): RunView[] {
    return [...this.runs.values()].map((r) => r.view).reverse();
  }

  active(): RunView[] {
    return this.list().filter((r) => r.status === 'running');
  }

  clearFinished(): string[] {
    const removed: string[] = [];
    for (const [id, run] of this.runs) {
      if (run.view.status !== 'running') { this.runs.delete(id); removed.push(id); }
    }
    return removed;
  }

  /** Folds one event in; returns the changed run's id (undefined for an event that is not a run event). */
  apply(event: RunEvent): string | undefined {
    if (!event || typeof event.run_id !== 'string' || typeof event.type !== 'string') return undefined;
    let run = this.runs.get(event.run_id);
    if (!run) {
      run = newRun(event.run_id, this.labels.get(event.run_id));
      this.runs.set(event.run_id, run);
    }
    const view = run.view;
    if (typeof event.seq === 'number') {
      if (event.seq <= run.lastSeq) return undefined; // a duplicate
      view.missing += Math.max(0, event.seq - run.lastSeq - 1);
      run.lastSeq = event.seq;
    }
    view.events++;
    view.version++;
    reduce(run, event);
    return event.run_id;
  }
}

function passKey(candidate: unknown, name: unknown): string {
  return `${str(candidate)}\u0000${str(name)}`;
}

/** A readable name for the Ray node an event came from: its IP, else the start of its id. */
function nodeOf(e: RunEvent): string | null {
  if (e.node_ip) return str(e.node_ip);
  return e.node ? str(e.node).slice(0, 8) : null;
}

function candidateRow(run: RunState, id: string): CandidateRow {
  let row = run.candidates.get(id);
  if (!row) {
    row = { id, params: {}, metrics: {}, state: 'running', accepted: null, isInput: id === 'input', durationS: null,
            message: null, node: null, attempt: 1 };
    run.candidates.set(id, row);
    run.view.candidates.push(row);
  }
  return row;
}

function addMetricKey(view: RunView, key: string, unit?: unknown): void {
  if (!view.metricKeys.includes(key)) view.metricKeys.push(key);
  if (unit !== undefined && unit !== null && unit !== '') view.metricUnits[key] = String(unit);
}

function log(view: RunView, ts: number, level: string, source: string, message: string): void {
  view.logs.push({ ts, level, source, message });
  if (view.logs.length > MAX_LOG_LINES * 1.5) {
    const drop = view.logs.length - MAX_LOG_LINES;
    view.logs.splice(0, drop); // amortised: one splice per MAX_LOG_LINES / 2 lines
    view.droppedLogs += drop;
  }
}

function trainingOf(view: RunView, pass: string): TrainingView {
  if (!view.training || view.training.pass !== pass) {
    view.training = { pass, step: 0, maxSteps: 0, loss: null, learningRate: null, etaS: null, evalLoss: null,
                      evalStep: null, firstEvalLoss: null };
  }
  return view.training;
}

function updatePercent(run: RunState): void {
  const pass = run.current;
  if (!pass || pass.total <= 0) return;
  const done = pass.state === 'running' ? pass.fraction : 1;
  run.view.percent = Math.min(100, Math.floor((100 * (pass.index + done)) / pass.total));
}

function reduce(run: RunState, e: RunEvent): void {
  const view = run.view;
  const candidate = e.candidate === undefined || e.candidate === null ? null : String(e.candidate);
  const prefix = candidate ? `${candidate} · ` : '';
  switch (e.type) {
    case 'run.started': {
      const plan = (e.plan ?? {}) as Record<string, unknown>;
      const input = (plan.input_model ?? {}) as Record<string, unknown>;
      view.startedTs = e.ts;
      view.inputModel = input.path ? str(input.path) : null;
      view.outputDir = plan.output_dir ? str(plan.output_dir) : view.outputDir;
      view.device = plan.device ? str(plan.device) : null;
      view.executionProvider = plan.execution_provider ? str(plan.execution_provider) : null;
      if (view.label === view.runId && view.outputDir) view.label = basename(view.outputDir);
      view.step = 'started';
      break;
    }
    case 'pass.started': {
      const key = passKey(candidate, e.pass_name);
      const row: PassRow = { name: str(e.pass_name), type: str(e.pass_type), candidate, index: num(e.index) ?? 0,
                             total: num(e.total) ?? 1, state: 'running', fraction: 0, message: '', durationS: null,
                             node: nodeOf(e) };
      const old = run.passes.get(key);
      if (old) Object.assign(old, row); else { run.passes.set(key, row); view.passes.push(row); }
      run.current = old ?? row;
      view.step = `${prefix}pass ${row.index + 1}/${row.total} ${row.name} (${row.type})`;
      updatePercent(run);
      break;
    }
    case 'pass.progress': {
      // pass.progress may carry no candidate: it belongs to the running pass of that name.
      const row = run.passes.get(passKey(candidate, e.pass_name))
        ?? (run.current?.name === str(e.pass_name) ? run.current : undefined);
      if (row) {
        row.fraction = Math.max(row.fraction, num(e.fraction) ?? 0);
        row.message = str(e.message);
        run.current = row;
        updatePercent(run);
      }
      const owner = candidate ?? row?.candidate;
      view.step = `${owner ? `${owner} · ` : ''}${str(e.pass_name)}: ${str(e.message)}`;
      break;
    }
    case 'pass.finished': {
      const row = run.passes.get(passKey(candidate, e.pass_name));
      if (row) {
        row.state = e.cached ? 'cached' : 'done';
        row.fraction = 1;
        row.durationS = num(e.duration_s);
        row.message = e.cached ? 'from cache' : '';
        run.current = row;
        updatePercent(run);
      }
      view.step = `${prefix}${str(e.pass_name)} ${e.cached ? 'taken from the cache' : `done in ${formatDuration(num(e.duration_s))}`}`;
      break;
    }
    case 'candidate.started': {
      const row = candidateRow(run, candidate ?? '?');
      row.params = (e.params ?? {}) as Record<string, unknown>;
      row.state = 'running';
      row.node = nodeOf(e) ?? row.node;
      row.attempt = num(e.attempt) ?? row.attempt;
      view.step = `candidate ${row.id} started${row.attempt > 1 ? ` (attempt ${row.attempt})` : ''}`;
      break;
    }
    case 'cluster.connected': {
      const nodes = Array.isArray(e.nodes) ? e.nodes.length : 0;
      view.step = `connected to Ray cluster ${str(e.system)} (${nodes} node${nodes === 1 ? '' : 's'})`;
      log(view, e.ts, 'info', 'cluster', `${view.step} at ${str(e.address) || 'a local Ray instance'}, `
        + `${str(e.max_concurrent)} candidates at once`);
      break;
    }
    case 'candidate.retried': {
      const row = candidateRow(run, candidate ?? '?');
      row.attempt = num(e.attempt) ?? row.attempt + 1;
      row.state = 'running';
      row.message = `retrying (attempt ${row.attempt} of ${str(e.max_attempts)}): ${str(e.reason)}`;
      log(view, e.ts, 'warning', row.id, `${row.message}${row.node ? ` (was on ${row.node})` : ''}`);
      view.step = `${row.id} ${row.message}`;
      break;
    }
    case 'candidate.cancelled': {
      const row = candidateRow(run, candidate ?? '?');
      if (row.state !== 'evaluated') { row.state = 'failed'; row.message = 'cancelled'; }
      break;
    }
    case 'evaluation.started': {
      const row = candidateRow(run, candidate ?? 'input');
      row.state = 'evaluating';
      const metrics = Array.isArray(e.metrics) ? e.metrics.map(String) : [];
      for (const key of metrics) addMetricKey(view, key);
      view.evaluated = true;
      view.step = `evaluating ${row.id}${metrics.length ? `: ${metrics.join(', ')}` : ''}`;
      break;
    }
    case 'metric.measured': {
      const row = candidateRow(run, candidate ?? 'input');
      const key = str(e.key);
      addMetricKey(view, key, e.unit);
      row.metrics[key] = num(e.value);
      view.evaluated = true;
      view.step = `${prefix}${key} = ${formatValue(num(e.value), str(e.unit))}`;
      break;
    }
    case 'candidate.evaluated': {
      const row = candidateRow(run, candidate ?? 'input');
      const metrics = (e.metrics ?? {}) as Record<string, unknown>;
      for (const [key, value] of Object.entries(metrics)) { addMetricKey(view, key); row.metrics[key] = num(value); }
      if (e.params && typeof e.params === 'object') row.params = e.params as Record<string, unknown>;
      row.state = 'evaluated';
      row.accepted = typeof e.accepted === 'boolean' ? e.accepted : null;
      row.isInput = Boolean(e.is_input) || row.isInput;
      row.durationS = num(e.duration_s);
      row.node = nodeOf(e) ?? row.node;
      view.evaluated = true;
      view.step = `${row.id} evaluated`;
      break;
    }
    case 'candidate.failed': {
      // Older engines name no candidate: then it is the one that started last and was not evaluated.
      const row = candidate !== null ? candidateRow(run, candidate)
        : [...run.candidates.values()].reverse().find((c) => c.state === 'running' || c.state === 'evaluating');
      const message = str(e.message);
      if (row) { row.state = 'failed'; row.message = message; }
      log(view, e.ts, 'warning', row ? row.id : 'search', `candidate failed: ${message}${e.fix ? ` (fix: ${str(e.fix)})` : ''}`);
      view.step = `${row ? row.id : 'a candidate'} failed`;
      break;
    }
    case 'train.step': {
      const training = trainingOf(view, str(e.pass_name));
      training.step = num(e.step) ?? training.step;
      training.maxSteps = num(e.max_steps) ?? training.maxSteps;
      training.loss = num(e.loss);
      training.learningRate = num(e.learning_rate);
      training.etaS = num(e.eta_s);
      break;
    }
    case 'train.eval': {
      const training = trainingOf(view, str(e.pass_name));
      training.evalLoss = num(e.eval_loss);
      training.evalStep = num(e.step);
      if (training.firstEvalLoss === null) training.firstEvalLoss = training.evalLoss;
      log(view, e.ts, 'info', str(e.pass_name), `eval loss ${formatValue(training.evalLoss)} at step ${str(e.step)}`);
      break;
    }
    case 'log':
      log(view, e.ts, str(e.level) || 'info', str(e.pass_name ?? e.logger), str(e.message));
      break;
    case 'warning':
      if (view.warnings.length < MAX_WARNINGS) view.warnings.push(str(e.message));
      log(view, e.ts, 'warning', str(e.pass_name), str(e.message));
      break;
    case 'error':
      view.error = { message: str(e.message), fix: e.fix ? str(e.fix) : null, where: e.where ? str(e.where) : null,
                     kind: str(e.kind) };
      log(view, e.ts, 'error', str(e.where), str(e.message));
      break;
    case 'run.finished': {
      const status = str(e.status) as RunStatus;
      view.status = ['succeeded', 'failed', 'cancelled'].includes(status) ? status : 'failed';
      view.finishedTs = e.ts;
      view.durationS = num(e.duration_s) ?? (view.startedTs !== null ? Math.max(0, e.ts - view.startedTs) : null);
      if (e.output_dir) view.outputDir = str(e.output_dir);
      view.bestCandidate = e.best_candidate ? str(e.best_candidate) : null;
      for (const row of view.passes) if (row.state === 'running') row.state = 'stopped';
      for (const row of view.candidates) if (row.state === 'running' || row.state === 'evaluating') row.state = 'failed';
      if (view.status === 'succeeded') view.percent = 100;
      view.step = view.status === 'succeeded' ? `done in ${formatDuration(view.durationS)}`
        : view.status === 'cancelled' ? 'cancelled' : `failed${view.error ? `: ${view.error.message}` : ''}`;
      break;
    }
    default:
      break; // a type this client does not know: ignored, as the format asks
  }
}
