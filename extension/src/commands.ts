// The client's commands (ids differ from the server's; vscode-languageclient registers those itself).
import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import { ConfigFiles } from './configFiles';
import { comparePage } from './compareHtml';
import type { CompareResult, EvaluateMetricsResult, RunInfo, RunStartedResult } from './contracts.generated';
import { RunStore, RunView } from './runModel';
import { VIEW_ID } from './runsView';
import {
  cancelArgs, compareArgs, evaluateArgs, evaluateMetricsArgs, optimizeArgs, planArgs, planMarkdown, PlanResult, runsArgs,
  runStateArgs, SERVER_COMMANDS, UNTRUSTED, validateArgs,
} from './settings';

/** The language server, as the commands use it (client.ts's ServerManager, loaded after activation). */
export interface Server {
  request<T>(command: string, args: unknown[]): Promise<T>;
  restart(): Promise<void>;
}

export interface Deps {
  context: vscode.ExtensionContext;
  server: Server;
  store: RunStore;
  configs: ConfigFiles;
  output: vscode.LogOutputChannel;
  changed: (runId: string) => void;
}


async function requireTrust(): Promise<boolean> {
  if (vscode.workspace.isTrusted) return true;
  const pick = await vscode.window.showWarningMessage(UNTRUSTED, 'Manage Workspace Trust');
  if (pick) await vscode.commands.executeCommand('workbench.trust.manage');
  return false;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The config to act on: the command's argument (menus), the active editor's config, or one the user picks. */
async function pickConfig(deps: Deps, arg: unknown, verb: string): Promise<vscode.Uri | undefined> {
  if (arg instanceof vscode.Uri) return arg;
  const doc = vscode.window.activeTextEditor?.document;
  if (doc && deps.configs.isConfig(doc)) return doc.uri;
  const items: (vscode.QuickPickItem & { uri?: vscode.Uri })[] = (await deps.configs.list()).map((uri) => ({
    label: path.basename(uri.fsPath), description: vscode.workspace.asRelativePath(uri, true), uri,
  }));
  items.push({ label: '$(folder-opened) Browse…', alwaysShow: true });
  const pick = await vscode.window.showQuickPick(items, { title: `ModelMill: ${verb}`, placeHolder: 'Workflow config' });
  if (!pick) return undefined;
  if (pick.uri) return pick.uri;
  const chosen = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { 'Workflow config': ['json', 'yaml', 'yml'] } });
  return chosen?.[0];
}

async function runOnServer<T>(deps: Deps, command: string, args: unknown[]): Promise<T | undefined> {
  try {
    return await deps.server.request<T>(command, args);
  } catch (err) {
    // a server that could not start was already explained (client.ts's ReportedError)
    if (!(err as { reported?: boolean }).reported) void vscode.window.showErrorMessage(`ModelMill: ${errorText(err)}`);
    return undefined;
  }
}

/** A run the server started: the panel comes forward (its card appears with the run's first state). */
function started(deps: Deps, result: RunStartedResult | undefined): void {
  if (!result?.runId) return;
  deps.changed(result.runId);
  void vscode.commands.executeCommand(`${VIEW_ID}.focus`, { preserveFocus: true });
}

async function optimize(deps: Deps, arg?: unknown): Promise<void> {
  if (!(await requireTrust())) return;
  const uri = await pickConfig(deps, arg, 'Optimize Workflow');
  if (!uri) return;
  const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
  if (doc?.isDirty) await doc.save();
  started(deps, await runOnServer(deps, SERVER_COMMANDS.optimize, optimizeArgs(uri.toString())));
}

async function evaluate(deps: Deps, arg?: unknown): Promise<void> {
  if (!(await requireTrust())) return;
  let folder = arg instanceof vscode.Uri ? arg.fsPath : undefined;
  if (!folder) {
    const outputs = [...new Set(deps.store.list().filter((r) => r.status === 'succeeded' && r.outputDir).map((r) => r.outputDir as string))];
    const items: vscode.QuickPickItem[] = outputs.map((dir) => ({ label: path.basename(dir), description: dir }));
    items.push({ label: '$(folder-opened) Browse…', alwaysShow: true });
    const pick = await vscode.window.showQuickPick(items, { title: 'ModelMill: Evaluate Model', placeHolder: 'Output folder to evaluate' });
    if (!pick) return;
    folder = pick.description ?? (await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, canSelectMany: false }))?.[0]?.fsPath;
  }
  if (!folder) return;
  const metrics = await pickMetrics(deps, folder);
  if (!metrics) return;
  started(deps, await runOnServer(deps, SERVER_COMMANDS.evaluate, evaluateArgs(folder, { metrics })));
}

/** The workspace state key of the metrics last chosen for a kind of model. */
const metricsKey = (modelKind: string) => `modelmill.evaluate.metrics.${modelKind}`;

/** The metrics to measure: the server says which presets can measure this kind of model (modelmill.evaluateMetrics);
 * the ones chosen last time for this kind (else the defaults) come checked. */
async function pickMetrics(deps: Deps, folder: string): Promise<string[] | undefined> {
  const offered = await runOnServer<EvaluateMetricsResult>(deps, SERVER_COMMANDS.evaluateMetrics, evaluateMetricsArgs(folder));
  if (!offered) return undefined;
  const remembered = deps.context.workspaceState.get<string[]>(metricsKey(offered.modelKind));
  const items = offered.options.map((option) => ({
    label: option.name, description: option.description, detail: option.keys.join(', '),
    picked: remembered ? remembered.includes(option.name) : option.default,
  }));
  const chosen = await vscode.window.showQuickPick(items, {
    title: `ModelMill: Evaluate ${path.basename(folder)} (${offered.modelKind})`, placeHolder: 'Metrics to measure',
    canPickMany: true,
  });
  if (!chosen?.length) return undefined;
  const names = chosen.map((item) => item.label);
  await deps.context.workspaceState.update(metricsKey(offered.modelKind), names);
  return names;
}

type SourceItem = vscode.QuickPickItem & { source?: string };

/** Two or more finished runs (the server's, kept across restarts) or folders with a metrics.json, side by side in a
 * page (modelmill.compare builds the comparison; the first one picked is the baseline). */
async function compare(deps: Deps, arg?: unknown): Promise<void> {
  let sources = Array.isArray(arg) ? arg.map((item) => (item instanceof vscode.Uri ? item.fsPath : String(item))) : [];
  if (sources.length < 2) {
    const runs = deps.store.list().filter((r) => r.status === 'succeeded').reverse();  // oldest first: the baseline
    const items: SourceItem[] = runs.map((r) => ({
      label: r.label, source: r.runId,
      description: [r.outputDir, r.finishedTs ? new Date(r.finishedTs * 1000).toLocaleString() : ''].filter(Boolean).join(' · '),
      detail: r.candidates.length ? `measured: ${r.metricKeys.join(', ') || 'nothing'}` : undefined,
    }));
    items.push({ label: '$(folder-opened) Browse for output folders…', alwaysShow: true });
    const picked = await vscode.window.showQuickPick(items, {
      title: 'ModelMill: Compare Runs/Outputs', placeHolder: 'Two or more finished runs or output folders (the first is the baseline)',
      canPickMany: true,
    });
    if (!picked?.length) return;
    sources = picked.filter((item) => item.source).map((item) => item.source as string);
    if (picked.some((item) => !item.source)) {
      const folders = await vscode.window.showOpenDialog({
        canSelectFolders: true, canSelectFiles: false, canSelectMany: true, openLabel: 'Compare',
      });
      sources.push(...(folders ?? []).map((uri) => uri.fsPath));
    }
  }
  if (sources.length < 2) {
    void vscode.window.showWarningMessage('ModelMill: pick two or more runs or output folders to compare.');
    return;
  }
  const result = await runOnServer<CompareResult>(deps, SERVER_COMMANDS.compare, compareArgs(sources));
  if (!result) return;
  const panel = vscode.window.createWebviewPanel('modelmill.comparison', `Compare: ${result.columns.map((c) => c.label).join(' · ')}`,
    vscode.ViewColumn.Active, { enableScripts: false, localResourceRoots: [] });
  panel.webview.html = comparePage(result);
}

async function cancel(deps: Deps, arg?: unknown): Promise<void> {
  let runId = typeof arg === 'string' ? arg : undefined;
  if (!runId) {
    const active = deps.store.active();
    if (!active.length) { void vscode.window.showInformationMessage('ModelMill: no run is active.'); return; }
    runId = active.length === 1 ? active[0].runId : (await vscode.window.showQuickPick(
      active.map((r) => ({ label: r.label, description: `${r.percent}% · ${r.step}`, runId: r.runId })), { title: 'ModelMill: Cancel Run' }))?.runId;
  }
  if (!runId) return;
  const result = await runOnServer<{ cancelled: boolean }>(deps, SERVER_COMMANDS.cancel, cancelArgs(runId));
  if (result && !result.cancelled) void vscode.window.showInformationMessage('ModelMill: that run had already finished.');
}

async function validate(deps: Deps, arg?: unknown): Promise<void> {
  const uri = await pickConfig(deps, arg, 'Validate Config');
  if (!uri) return;
  const result = await runOnServer<{ errors: number; warnings: number }>(deps, SERVER_COMMANDS.validate, validateArgs(uri.toString()));
  if (!result) return;
  const name = path.basename(uri.fsPath);
  if (!result.errors && !result.warnings) { void vscode.window.showInformationMessage(`ModelMill: ${name} has no problems.`); return; }
  const pick = await vscode.window.showWarningMessage(
    `ModelMill: ${name}: ${result.errors} error(s), ${result.warnings} warning(s).`, 'Show Problems');
  if (pick) await vscode.commands.executeCommand('workbench.actions.view.problems');
}

async function showPlan(deps: Deps, planDocs: Map<string, string>, arg?: unknown): Promise<void> {
  const uri = await pickConfig(deps, arg, 'Show Plan');
  if (!uri) return;
  const plan = await runOnServer<PlanResult>(deps, SERVER_COMMANDS.plan, planArgs(uri.toString()));
  if (!plan) return;
  const name = path.basename(uri.fsPath);
  const doc = vscode.Uri.from({ scheme: 'modelmill-plan', path: `/${name}.plan.md` });
  planDocs.set(doc.toString(), planMarkdown(name, plan));
  await vscode.commands.executeCommand('markdown.showPreview', doc).then(undefined,
    async () => vscode.window.showTextDocument(await vscode.workspace.openTextDocument(doc), { preview: true }));
}

async function newConfig(deps: Deps): Promise<void> {
  const dir = vscode.Uri.joinPath(deps.context.extensionUri, 'extension', 'templates');
  const templates = JSON.parse(fs.readFileSync(path.join(dir.fsPath, 'index.json'), 'utf8')) as
    { file: string; label: string; detail: string }[];
  const pick = await vscode.window.showQuickPick(templates.map((t) => ({ ...t, label: t.label, detail: t.detail })),
    { title: 'ModelMill: New Workflow Config', placeHolder: 'Template' });
  if (!pick) return;
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
  const target = await vscode.window.showSaveDialog({
    defaultUri: folder ? vscode.Uri.joinPath(folder, pick.file) : undefined, filters: { 'Workflow config': ['json'] },
  });
  if (!target) return;
  await vscode.workspace.fs.writeFile(target, await vscode.workspace.fs.readFile(vscode.Uri.joinPath(dir, pick.file)));
  await vscode.window.showTextDocument(target);
}

async function reveal(deps: Deps, runId: string): Promise<void> {
  const dir = deps.store.get(runId)?.outputDir;
  if (!dir) return;
  const uri = vscode.Uri.file(dir);
  if (vscode.workspace.getWorkspaceFolder(uri)) await vscode.commands.executeCommand('revealInExplorer', uri);
  else if (vscode.env.uiKind === vscode.UIKind.Desktop) await vscode.commands.executeCommand('revealFileInOS', uri);
  else {
    const pick = await vscode.window.showInformationMessage(`ModelMill output folder: ${dir}`, 'Copy Path');
    if (pick) await vscode.env.clipboard.writeText(dir);
  }
}

function openReport(deps: Deps, runId: string): void {
  const run = deps.store.get(runId);
  const file = run?.outputDir ? path.join(run.outputDir, 'report.html') : undefined;
  if (!run || !file || !fs.existsSync(file)) {
    void vscode.window.showErrorMessage(`ModelMill: no report.html in ${run?.outputDir ?? 'this run\'s output folder'}.`);
    return;
  }
  const panel = vscode.window.createWebviewPanel('modelmill.report', `Report: ${run.label}`, vscode.ViewColumn.Active,
    { enableScripts: false, localResourceRoots: [] });
  const csp = `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline';">`;
  panel.webview.html = fs.readFileSync(file, 'utf8').replace(/<head>/i, `<head>${csp}`);
}

export function registerCommands(deps: Deps): void {
  const planDocs = new Map<string, string>();
  const register = (id: string, fn: (...args: unknown[]) => unknown) =>
    deps.context.subscriptions.push(vscode.commands.registerCommand(id, fn));
  deps.context.subscriptions.push(vscode.workspace.registerTextDocumentContentProvider('modelmill-plan',
    { provideTextDocumentContent: (uri) => planDocs.get(uri.toString()) ?? '' }));
  register('modelmill.optimizeWorkflow', (arg) => optimize(deps, arg));
  register('modelmill.evaluateModel', (arg) => evaluate(deps, arg));
  register('modelmill.cancelRun', (arg) => cancel(deps, arg));
  register('modelmill.compareRuns', (arg, more) => compare(deps, Array.isArray(more) ? more : arg));
  register('modelmill.validateConfig', (arg) => validate(deps, arg));
  register('modelmill.showPlan', (arg) => showPlan(deps, planDocs, arg));
  register('modelmill.newWorkflowConfig', () => newConfig(deps));
  register('modelmill.showRunsPanel', () => vscode.commands.executeCommand(`${VIEW_ID}.focus`));
  register('modelmill.restartServer', () => deps.server.restart());
  register('modelmill.showServerLog', () => deps.output.show());
  register('modelmill.revealOutputFolder', (runId) => reveal(deps, String(runId)));
  register('modelmill.openReport', (runId) => openReport(deps, String(runId)));
  register('modelmill.clearFinishedRuns', () => deps.store.clearFinished().forEach(deps.changed));
}

/** The runs the server knows (this session's and the finished ones it keeps on disk), each as the server reduced
 * it (`modelmill.runState`): after a window reload the panel shows them as they were. */
export async function loadKnownRuns(deps: Deps): Promise<void> {
  const runs = await deps.server.request<RunInfo[]>(SERVER_COMMANDS.runs, runsArgs()).catch(() => undefined);
  for (const run of runs ?? []) {
    const state = await deps.server.request<RunView>(SERVER_COMMANDS.runState, runStateArgs(run.runId))
      .catch(() => undefined);
    if (state && deps.store.update(state)) deps.changed(run.runId);
  }
}

/** What the runs panel's buttons do. */
export function panelAction(action: string, runId: string): void {
  const command = { cancel: 'modelmill.cancelRun', reveal: 'modelmill.revealOutputFolder', report: 'modelmill.openReport' }[action];
  if (command) void vscode.commands.executeCommand(command, runId);
}
