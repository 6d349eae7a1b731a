// Which files get the ModelMill menu entries and appear in the config picker: the `configFilePatterns` setting,
// plus JSON/YAML files that have a top-level workflow key (`input_model`, `passes`, `engine`: WORKFLOW_KEYS). (Whether a file really is a valid
// workflow is the server's business: its diagnostics say so.)
import * as vscode from 'vscode';
import { looksLikeConfig } from './settings';
import { currentSettings } from './workspaceSettings';

const LANGUAGES = new Set(['json', 'jsonc', 'yaml']);
const EXCLUDE = '**/{node_modules,.git,.venv,venv,dist,out,cache,.modelmill-cache,.olive-cache,models}/**';
const MAX_SCANNED = 500;

export class ConfigFiles implements vscode.Disposable {
  private readonly known = new Map<string, vscode.Uri>();
  private readonly disposables: vscode.Disposable[] = [];
  private scanned: Promise<void> | undefined;

  constructor() {
    const check = (doc: vscode.TextDocument) => this.checkDocument(doc);
    this.disposables.push(
      vscode.workspace.onDidOpenTextDocument(check),
      vscode.workspace.onDidSaveTextDocument(check),
      vscode.window.onDidChangeActiveTextEditor(() => this.updateActive()),
    );
    vscode.workspace.textDocuments.forEach(check);
    this.updateActive();
    // The workspace scan fills the explorer menu; it runs after activation, never in its way.
    setTimeout(() => void this.scan(), 1500);
  }

  /** Known configs, for the picker (scans the workspace first if that has not happened yet). */
  async list(): Promise<vscode.Uri[]> {
    await this.scan();
    return [...this.known.values()].sort((a, b) => a.fsPath.localeCompare(b.fsPath));
  }

  isConfig(doc: vscode.TextDocument): boolean {
    if (!LANGUAGES.has(doc.languageId) || doc.uri.scheme !== 'file') return false;
    return currentSettings().configFilePatterns.some((pattern) => vscode.languages.match({ pattern }, doc) > 0) || looksLikeConfig(doc.getText());
  }

  private scan(): Promise<void> {
    this.scanned ??= (async () => {
      const files = await vscode.workspace.findFiles('**/*.{json,jsonc,yaml,yml}', EXCLUDE, MAX_SCANNED);
      const patterns = currentSettings().configFilePatterns;
      const byPattern = new Set((await Promise.all(patterns.map((p) => vscode.workspace.findFiles(p, EXCLUDE, MAX_SCANNED))))
        .flat().map((u) => u.toString()));
      for (const uri of files) {
        if (byPattern.has(uri.toString())) { this.known.set(uri.fsPath, uri); continue; }
        try {
          const bytes = await vscode.workspace.fs.readFile(uri);
          if (bytes.byteLength < 4 << 20 && looksLikeConfig(Buffer.from(bytes.subarray(0, 65536)).toString('utf8'))) this.known.set(uri.fsPath, uri);
        } catch { /* unreadable: not a config for the menus */ }
      }
      this.publish();
    })();
    return this.scanned;
  }

  private checkDocument(doc: vscode.TextDocument): void {
    if (!LANGUAGES.has(doc.languageId) || doc.uri.scheme !== 'file') return;
    const had = this.known.has(doc.uri.fsPath);
    if (this.isConfig(doc)) this.known.set(doc.uri.fsPath, doc.uri); else this.known.delete(doc.uri.fsPath);
    if (had !== this.known.has(doc.uri.fsPath)) this.publish();
    if (doc === vscode.window.activeTextEditor?.document) this.updateActive();
  }

  private publish(): void {
    void vscode.commands.executeCommand('setContext', 'modelmill.configFiles', Object.fromEntries([...this.known.keys()].map((p) => [p, true])));
  }

  private updateActive(): void {
    const doc = vscode.window.activeTextEditor?.document;
    void vscode.commands.executeCommand('setContext', 'modelmill.activeEditorIsConfig', !!doc && this.isConfig(doc));
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}
