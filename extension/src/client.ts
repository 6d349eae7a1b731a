// Starts `python -m modelmill lsp` with vscode-languageclient over stdio, and restarts it when its settings change.
import * as os from 'os';
import * as vscode from 'vscode';
import { ExecuteCommandRequest, LanguageClient, LanguageClientOptions, ServerOptions } from 'vscode-languageclient/node';
import { checkInterpreter } from './preflight';
import { onPythonInterpreterChange, pythonExtensionInterpreter } from './python';
import { RunView } from './runModel';
import {
  diagnoseCheck, Interpreter, pythonEnv, resolveInterpreter, RUN_NOTIFICATIONS, RUN_STATE, SECTION, serverCommand, SET_TRUSTED,
  SetupProblem,
} from './settings';
import { ServerState } from './status';
import { currentSettings } from './workspaceSettings';

/** An error the user has already been shown (with its buttons); commands do not show it twice. */
export class ReportedError extends Error {
  readonly reported = true;
}

export class ServerManager {
  private client: LanguageClient | undefined;
  private starting: Promise<LanguageClient | undefined> | undefined;
  private readonly disposables: vscode.Disposable[] = [];
  problem: SetupProblem | undefined;
  interpreter: Interpreter | undefined;

  constructor(private readonly output: vscode.LogOutputChannel,
              private readonly onRunState: (state: RunView) => void,
              private readonly onState: (state: ServerState, detail?: string) => void) {
    this.disposables.push(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration(`${SECTION}.interpreter`) || e.affectsConfiguration(`${SECTION}.serverArgs`)) void this.restart();
      }),
      vscode.workspace.onDidGrantWorkspaceTrust(() => {
        void this.client?.sendNotification(SET_TRUSTED, { trusted: true });
      }),
    );
    void onPythonInterpreterChange(() => {
      if (!currentSettings().interpreter) void this.restart();
    }).then((d) => d && this.disposables.push(d));
  }

  /** The running client, starting it first if needed; undefined when it cannot start (the user was told why). */
  ready(): Promise<LanguageClient | undefined> {
    if (this.client?.isRunning()) return Promise.resolve(this.client);
    if (!this.starting) this.starting = this.start().finally(() => { this.starting = undefined; });
    return this.starting;
  }

  /** workspace/executeCommand on the server. */
  async request<T>(command: string, args: unknown[]): Promise<T> {
    const client = await this.ready();
    if (!client) throw new ReportedError(this.problem?.message ?? 'the ModelMill server did not start');
    return client.sendRequest(ExecuteCommandRequest.type, { command, arguments: args }) as Promise<T>;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.ready();
  }

  private async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client) {
      try { await client.stop(5000); } catch (err) { this.output.warn(`stopping the server: ${err}`); }
      await client.dispose().catch(() => undefined);
    }
    this.onState('stopped');
  }

  private async start(): Promise<LanguageClient | undefined> {
    this.onState('starting');
    const settings = currentSettings();
    const folder = vscode.workspace.workspaceFolders?.[0];
    const interpreter = await resolveInterpreter(settings,
      { workspaceFolder: folder?.uri.fsPath, userHome: os.homedir(), env: process.env },
      () => pythonExtensionInterpreter(folder?.uri));
    this.interpreter = interpreter;
    const env = pythonEnv(process.env);
    const started = Date.now();
    this.problem = diagnoseCheck(interpreter, await checkInterpreter(interpreter.path, env));
    if (this.problem) {
      this.output.error(this.problem.message);
      this.onState('failed', this.problem.message);
      void this.showProblem(this.problem);
      return undefined;
    }
    const { command, args } = serverCommand(interpreter, settings);
    this.output.info(`starting: ${command} ${args.join(' ')} (interpreter from ${interpreter.source}; `
      + `workspace ${vscode.workspace.isTrusted ? 'trusted' : 'untrusted: validation only'})`);
    // No `transport`: with TransportKind.stdio the client would append --stdio, which `modelmill lsp` does not take.
    const serverOptions: ServerOptions = { command, args, options: { env, cwd: folder?.uri.fsPath } };
    const clientOptions: LanguageClientOptions = {
      documentSelector: ['json', 'jsonc', 'yaml'].flatMap((language) => [{ scheme: 'file', language }, { scheme: 'untitled', language }]),
      outputChannel: this.output,
      // triggerSuggestCommand: completions of a key with choices reopen the list with this VS Code command.
      // runNotifications: the server sends each run's reduced state (modelmill/runState), not its raw events.
      initializationOptions: { trusted: vscode.workspace.isTrusted, triggerSuggestCommand: 'editor.action.triggerSuggest',
                               runNotifications: RUN_NOTIFICATIONS },
      synchronize: { configurationSection: SECTION },
    };
    const client = new LanguageClient(SECTION, 'ModelMill', serverOptions, clientOptions);
    client.onNotification(RUN_STATE, (state: RunView) => this.onRunState(state));
    client.onDidChangeState((e) => this.onState(e.newState === 2 ? 'running' : e.newState === 3 ? 'starting' : 'stopped'));
    try {
      await client.start();
    } catch (err) {
      const message = `ModelMill: the language server did not start (${command} ${args.join(' ')}): ${err instanceof Error ? err.message : err}`;
      this.output.error(message);
      this.onState('failed', message);
      void vscode.window.showErrorMessage(message, 'Show Server Log').then((pick) => pick && this.output.show());
      await client.dispose().catch(() => undefined);
      return undefined;
    }
    this.client = client;
    this.output.info(`server ${client.initializeResult?.serverInfo?.name ?? ''} ${client.initializeResult?.serverInfo?.version ?? ''} `
      + `ready in ${Date.now() - started} ms`);
    this.onState('running');
    return client;
  }

  private async showProblem(problem: SetupProblem): Promise<void> {
    const actions = ['Open Settings', ...(problem.installCommand ? ['Copy Install Command'] : []), 'Show Server Log'];
    const pick = await vscode.window.showErrorMessage(problem.message, ...actions);
    if (pick === 'Open Settings') await vscode.commands.executeCommand('workbench.action.openSettings', `${SECTION}.interpreter`);
    else if (pick === 'Copy Install Command' && problem.installCommand) await vscode.env.clipboard.writeText(problem.installCommand);
    else if (pick === 'Show Server Log') this.output.show();
  }

  /** Stops the server (deactivation waits for it). */
  async dispose(): Promise<void> {
    for (const d of this.disposables.splice(0)) d.dispose();
    await this.stop();
  }
}
