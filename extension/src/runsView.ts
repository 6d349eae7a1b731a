// The runs panel (a webview view in the ModelMill panel container). Changes are batched: at most one message
// to the page every RENDER_INTERVAL_MS, carrying only the runs that changed.
import * as vscode from 'vscode';
import { RunStore } from './runModel';
import { Throttle } from './throttle';

export const VIEW_ID = 'modelmill.runs';
export const RENDER_INTERVAL_MS = 250;

export class RunsViewProvider implements vscode.WebviewViewProvider, vscode.Disposable {
  private view: vscode.WebviewView | undefined;
  private readonly throttle: Throttle<string>;

  constructor(private readonly store: RunStore, private readonly extensionUri: vscode.Uri,
              private readonly onAction: (action: string, runId: string) => void) {
    this.throttle = new Throttle((ids) => this.post(ids), RENDER_INTERVAL_MS);
  }

  /** A run changed (or was removed); the page hears of it within RENDER_INTERVAL_MS. */
  changed(runId: string): void {
    this.throttle.mark(runId);
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    const media = vscode.Uri.joinPath(this.extensionUri, 'extension', 'media');
    const dist = vscode.Uri.joinPath(this.extensionUri, 'dist');
    view.webview.options = { enableScripts: true, localResourceRoots: [media, dist] };
    const nonce = [...Array(24)].map(() => Math.floor(Math.random() * 36).toString(36)).join('');
    const csp = `default-src 'none'; style-src ${view.webview.cspSource}; script-src 'nonce-${nonce}';`;
    view.webview.html = `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<link rel="stylesheet" href="${view.webview.asWebviewUri(vscode.Uri.joinPath(media, 'runs.css'))}"></head>
<body><div id="runs"></div>
<script nonce="${nonce}" src="${view.webview.asWebviewUri(vscode.Uri.joinPath(dist, 'runsView.js'))}"></script></body></html>`;
    view.webview.onDidReceiveMessage((message: { type: string; action?: string; runId?: string }) => {
      if (message.type === 'ready') this.post(this.store.list().map((r) => r.runId));
      else if (message.type === 'action' && message.action && message.runId) this.onAction(message.action, message.runId);
    });
    view.onDidDispose(() => { this.view = undefined; });
  }

  private post(ids: string[]): void {
    if (!this.view) return; // the page asks for everything ('ready') when it appears
    const runs = ids.map((id) => this.store.get(id)).filter((run) => run !== undefined);
    void this.view.webview.postMessage({ type: 'runs', runs, order: this.store.list().map((r) => r.runId) });
  }

  dispose(): void {
    this.throttle.dispose();
  }
}
