// Settings, interpreter choice, the server's command line and the arguments of the server's commands.
// Pure: no vscode import (extension.ts hands in what it read), so all of it is unit-tested under node.

import type {
  CancelArgs, CompareArgs, EvaluateArgs, EvaluateMetricsArgs, OptimizeArgs, PlanArgs, RunEventsArgs, RunStateArgs,
  ValidateArgs,
} from './contracts.generated';
import shared from './shared.json';

// Names and values shared with the server: generated from server/modelmill/lsp/shared.py (one source).
export const SECTION = shared.section;
/** The server's commands (docs/lsp.md). The client's own UI commands use other ids (package.json). */
export const SERVER_COMMANDS = shared.serverCommands;
/** The server's notification of a run's reduced state (a RunView), and what the client asks for to get it. */
export const RUN_STATE = shared.notifications.runState;
export const RUN_NOTIFICATIONS = shared.runNotifications;
export const SET_TRUSTED = shared.notifications.setTrusted;
/** Why runs are refused in an untrusted workspace (the server answers the same). */
export const UNTRUSTED = shared.untrustedMessage;
/** Top-level keys that make a JSON/YAML file a workflow config. */
export const WORKFLOW_KEYS: readonly string[] = shared.workflowKeys;

export interface ClientSettings {
  interpreter: string;
  serverArgs: string[];
  configFilePatterns: string[];
  trace: 'off' | 'messages' | 'verbose';
}

/** `modelmill.configFilePatterns`'s default (package.json's `default` too; a test keeps them equal). */
export const DEFAULT_PATTERNS: string[] = shared.defaultConfigFilePatterns;

/** `get(key)` is WorkspaceConfiguration.get for section `modelmill`; wrong types fall back to the defaults. */
export function readSettings(get: (key: string) => unknown): ClientSettings {
  const strings = (value: unknown): string[] | undefined =>
    Array.isArray(value) && value.every((v) => typeof v === 'string') ? (value as string[]) : undefined;
  const trace = get('trace.server');
  const interpreter = get('interpreter');
  return {
    interpreter: typeof interpreter === 'string' ? interpreter.trim() : '',
    serverArgs: strings(get('serverArgs')) ?? [],
    configFilePatterns: strings(get('configFilePatterns')) ?? DEFAULT_PATTERNS,
    trace: trace === 'messages' || trace === 'verbose' ? trace : 'off',
  };
}

export interface Vars {
  workspaceFolder?: string;
  userHome?: string;
  env?: Record<string, string | undefined>;
}

/** `${workspaceFolder}`, `${userHome}`, `${env:NAME}` and a leading `~`, as VS Code settings usually allow. */
export function expandVars(value: string, vars: Vars): string {
  let out = value.replace(/\$\{(workspaceFolder|userHome|env:([A-Za-z_][A-Za-z0-9_]*))\}/g, (whole, name, envName) => {
    if (envName) return vars.env?.[envName] ?? '';
    const found = name === 'workspaceFolder' ? vars.workspaceFolder : vars.userHome;
    return found ?? whole;
  });
  if (vars.userHome && (out === '~' || out.startsWith('~/'))) out = vars.userHome + out.slice(1);
  return out;
}

export type InterpreterSource = 'setting' | 'python-extension' | 'default';
export interface Interpreter {
  path: string;
  source: InterpreterSource;
}

export const DEFAULT_PYTHON = 'python3';

/** The setting, else the Python extension's active interpreter (when that extension is there), else python3. */
export async function resolveInterpreter(settings: ClientSettings, vars: Vars,
  fromPythonExtension: () => Promise<string | undefined>): Promise<Interpreter> {
  if (settings.interpreter) return { path: expandVars(settings.interpreter, vars), source: 'setting' };
  let found: string | undefined;
  try { found = await fromPythonExtension(); } catch { found = undefined; }
  if (found) return { path: found, source: 'python-extension' };
  return { path: DEFAULT_PYTHON, source: 'default' };
}

/** `<python> -m modelmill lsp <extra args>` */
export function serverCommand(interpreter: Interpreter, settings: ClientSettings): { command: string; args: string[] } {
  return { command: interpreter.path, args: ['-m', 'modelmill', 'lsp', ...settings.serverArgs] };
}

/**
 * The environment of every Python the extension starts. PYTHONSAFEPATH (Python 3.11+'s `-P`) keeps the working
 * folder, the user's workspace, off sys.path: a `modelmill/` package or an `attr.py` there would otherwise be
 * imported, and run, before any trust was given. (On 3.10 the server drops it itself, see safe_path.py.)
 */
export function pythonEnv(base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...base, PYTHONUNBUFFERED: '1', PYTHONSAFEPATH: '1' };
}

/** What the pre-flight check runs: it tells "no such interpreter" from "modelmill is not installed". */
export const CHECK_ARGS = ['-c', 'import modelmill, sys; sys.stdout.write(getattr(modelmill, "__version__", "?"))'];

export interface CheckResult {
  /** spawn's error code (ENOENT, EACCES, ...) when the interpreter could not start. */
  spawnError?: string;
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

export interface SetupProblem {
  kind: 'no-interpreter' | 'not-installed' | 'broken';
  message: string;
  /** The exact command that fixes it, when there is one. */
  installCommand?: string;
}

const quote = (arg: string): string => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `"${arg.replace(/(["\\$`])/g, '\\$1')}"`);

function where(interpreter: Interpreter): string {
  return interpreter.source === 'setting' ? ' (setting modelmill.interpreter)'
    : interpreter.source === 'python-extension' ? ' (the Python extension\'s active interpreter)' : '';
}

/** Turns the pre-flight check's outcome into the message the user sees; undefined when all is well. */
export function diagnoseCheck(interpreter: Interpreter, result: CheckResult): SetupProblem | undefined {
  const python = interpreter.path;
  if (result.spawnError) {
    return {
      kind: 'no-interpreter',
      message: `ModelMill: the Python interpreter "${python}"${where(interpreter)} could not be started `
        + `(${result.spawnError}). Set "modelmill.interpreter" to a Python 3.10+ that has modelmill installed.`,
    };
  }
  if (result.exitCode === 0) return undefined;
  const installCommand = `${quote(python)} -m pip install modelmill`;
  if (/No module named '?modelmill'?/.test(result.stderr)) {
    return {
      kind: 'not-installed',
      message: `ModelMill: the Python package "modelmill" is not installed for ${python}${where(interpreter)}. `
        + `Install it with: ${installCommand} — or choose another interpreter in the settings.`,
      installCommand,
    };
  }
  const last = result.stderr.trim().split('\n').filter(Boolean).pop() ?? `exit code ${result.exitCode}`;
  return {
    kind: 'broken',
    message: `ModelMill: "import modelmill" fails under ${python}${where(interpreter)}: ${last}. `
      + `Reinstall it with: ${installCommand}`,
    installCommand,
  };
}

// Arguments of the server's commands (docs/lsp.md): one object each, typed by server/modelmill/contracts.py.
export const optimizeArgs = (uri: string): [OptimizeArgs] => [{ uri }];
export const validateArgs = (uri: string): [ValidateArgs] => [{ uri }];
export const planArgs = (uri: string): [PlanArgs] => [{ uri }];
export const cancelArgs = (runId: string): [CancelArgs] => [{ runId }];
export const runsArgs = (): [Record<string, never>] => [{}];
export const runEventsArgs = (runId: string, since = -1): [RunEventsArgs] => [{ runId, since }];
export const runStateArgs = (runId: string): [RunStateArgs] => [{ runId }];

export const evaluateMetricsArgs = (path: string): [EvaluateMetricsArgs] => [{ path }];
export const compareArgs = (sources: string[]): [CompareArgs] => [{ sources: [...sources] }];

export function evaluateArgs(path: string, options: { metrics?: string[]; compare?: string } = {}): [EvaluateArgs] {
  const arg: EvaluateArgs = { path };
  if (options.metrics && options.metrics.length) arg.metrics = [...options.metrics];
  if (options.compare) arg.compare = options.compare;
  return [arg];
}

/** Whether a JSON/YAML text reads like a workflow config (menus and the config picker; the server decides the rest). */
const CONFIG_KEY = new RegExp(`(^|[\\s{,])["']?(${WORKFLOW_KEYS.join('|')})["']?\\s*:`, 'm');
export function looksLikeConfig(text: string): boolean {
  return CONFIG_KEY.test(text.slice(0, 65536));
}

export interface PlanResult {
  passes: { name: string; type: string; params?: Record<string, unknown>; cached?: boolean; estimatedSeconds?: number | null;
            estimatedOutputMB?: number | null; estimatedMemoryMB?: number | null }[];
  outputDir?: string;
  device?: string;
  executionProvider?: string;
  searchSpace?: unknown;
}

const cell = (value: unknown): string => String(value ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ');
const estimate = (value: number | null | undefined, unit: string): string =>
  value === null || value === undefined ? '' : `${Math.round(value).toLocaleString('en-US')} ${unit}`;

/** `modelmill.plan`'s answer as Markdown (Show Plan). Formatting only: every number comes from the server. */
export function planMarkdown(configName: string, plan: PlanResult): string {
  const lines = [`# ModelMill plan: ${configName}`, '',
    `- device: \`${plan.device ?? '?'}\`, execution provider: \`${plan.executionProvider ?? '?'}\``,
    `- output: \`${plan.outputDir ?? '?'}\``, '',
    '| # | pass | type | cached | est. time | est. output | est. memory | params |',
    '|---|---|---|---|---|---|---|---|'];
  (plan.passes ?? []).forEach((p, i) => {
    lines.push(`| ${i + 1} | ${cell(p.name)} | ${cell(p.type)} | ${p.cached ? 'yes' : 'no'} | `
      + `${estimate(p.estimatedSeconds, 's')} | ${estimate(p.estimatedOutputMB, 'MB')} | ${estimate(p.estimatedMemoryMB, 'MB')} | `
      + `${cell(p.params && Object.keys(p.params).length ? `\`${JSON.stringify(p.params)}\`` : '')} |`);
  });
  const space = plan.searchSpace;
  if (space && typeof space === 'object' && Object.keys(space).length) {
    lines.push('', '## Search space', '', '```json', JSON.stringify(space, null, 2), '```');
  }
  return lines.join('\n') + '\n';
}
