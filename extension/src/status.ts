// The status bar item: the server's state, or the active run's percentage (click: the runs panel).
import * as vscode from 'vscode';
import { RunStore } from './runModel';
import { Throttle } from './throttle';

export type ServerState = 'starting' | 'running' | 'stopped' | 'failed';

export class StatusItem implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('modelmill.status', vscode.StatusBarAlignment.Left, 10);
  private readonly throttle = new Throttle<string>(() => this.render(), 250);
  private server: ServerState = 'starting';
  private detail = '';

  constructor(private readonly store: RunStore) {
    this.item.name = 'ModelMill';
    this.render();
    this.item.show();
  }

  setServer(state: ServerState, detail = ''): void {
    this.server = state;
    this.detail = detail;
    this.render();
  }

  runsChanged(): void {
    this.throttle.mark('runs');
  }

  private render(): void {
    const active = this.store.active();
    const item = this.item;
    item.backgroundColor = undefined;
    if (active.length) {
      const run = active[0];
      item.text = `$(sync~spin) ModelMill ${run.percent}%${active.length > 1 ? ` (+${active.length - 1})` : ''}`;
      item.tooltip = `${run.label}: ${run.step}\nClick to show the runs panel`;
      item.command = 'modelmill.showRunsPanel';
    } else if (this.server === 'failed') {
      item.text = '$(error) ModelMill';
      item.tooltip = `${this.detail || 'The ModelMill server is not running'}\nClick to show the server log`;
      item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
      item.command = 'modelmill.showServerLog';
    } else {
      item.text = this.server === 'running' ? '$(check) ModelMill' : this.server === 'starting' ? '$(loading~spin) ModelMill' : 'ModelMill';
      item.tooltip = `ModelMill server: ${this.server}${this.detail ? ` (${this.detail})` : ''}\nClick to show the runs panel`;
      item.command = 'modelmill.showRunsPanel';
    }
  }

  dispose(): void {
    this.throttle.dispose();
    this.item.dispose();
  }
}
