// Activation: wire the runs store, panel, status item and commands, then start the server without waiting for it.
// The language client (vscode-languageclient, most of the code) is a second bundle, dist/client.js, loaded
// right after activation: activation itself only loads this small one.
import { performance } from 'perf_hooks';
import * as vscode from 'vscode';
import type { ServerManager } from './client';
import { loadKnownRuns, panelAction, registerCommands, Server } from './commands';
import { ConfigFiles } from './configFiles';
import { RunStore, RunView } from './runModel';
import { RunsViewProvider, VIEW_ID } from './runsView';
import { StatusItem } from './status';

let manager: Promise<ServerManager> | undefined;

export function activate(context: vscode.ExtensionContext): { activationMs: number; store: RunStore } {
  const t0 = performance.now();
  const output = vscode.window.createOutputChannel('ModelMill', { log: true });
  const store = new RunStore();
  const status = new StatusItem(store);
  const view = new RunsViewProvider(store, context.extensionUri, panelAction);
  const changed = (runId: string) => { view.changed(runId); status.runsChanged(); };
  const onState = (state: RunView) => {
    const runId = store.update(state);
    if (runId) changed(runId);
  };
  const load = (): Promise<ServerManager> => manager ??= new Promise((resolve) => setImmediate(() => {
    const { ServerManager: Manager } = require('./client.js') as typeof import('./client');
    resolve(new Manager(output, onState, (state, detail) => status.setServer(state, detail)));
  }));
  const server: Server = {
    request: async (command, args) => (await load()).request(command, args),
    restart: async () => (await load()).restart(),
  };
  const configs = new ConfigFiles();
  const deps = { context, server, store, configs, output, changed };
  registerCommands(deps);
  context.subscriptions.push(output, status, view, configs,
    vscode.window.registerWebviewViewProvider(VIEW_ID, view, { webviewOptions: { retainContextWhenHidden: true } }));
  // The server starts in the background: activation does not wait for Python.
  void load().then((m) => m.ready()).then((client) => client && loadKnownRuns(deps));
  const activationMs = performance.now() - t0;
  output.info(`activated in ${activationMs.toFixed(1)} ms (server starting in the background)`);
  return { activationMs, store };
}

export async function deactivate(): Promise<void> {
  const m = manager;
  manager = undefined;
  await (await m)?.dispose();
}
