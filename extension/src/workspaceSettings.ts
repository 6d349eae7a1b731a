import * as vscode from 'vscode';
import { ClientSettings, readSettings, SECTION } from './settings';

/** The `modelmill` settings as they are now. */
export function currentSettings(): ClientSettings {
  const config = vscode.workspace.getConfiguration(SECTION);
  return readSettings((key) => config.get(key));
}
