// Finding Python: the Python extension's active interpreter (the pre-flight check is in preflight.ts).
import * as vscode from 'vscode';

interface PythonApi {
  environments?: {
    getActiveEnvironmentPath(resource?: vscode.Uri): { path: string } | undefined;
    resolveEnvironment(path: { path: string } | string): Promise<{ executable?: { uri?: vscode.Uri } } | undefined>;
    onDidChangeActiveEnvironmentPath?: vscode.Event<unknown>;
  };
  settings?: { getExecutionDetails(resource?: vscode.Uri): { execCommand?: string[] } };
}

async function pythonApi(): Promise<PythonApi | undefined> {
  const extension = vscode.extensions.getExtension<PythonApi>('ms-python.python');
  if (!extension) return undefined;
  return extension.isActive ? extension.exports : extension.activate();
}

/** The Python extension's active interpreter for `resource`, when that extension is installed. */
export async function pythonExtensionInterpreter(resource?: vscode.Uri): Promise<string | undefined> {
  const api = await pythonApi();
  if (!api) return undefined;
  const active = api.environments?.getActiveEnvironmentPath(resource);
  if (active) {
    const env = await api.environments?.resolveEnvironment(active);
    const exe = env?.executable?.uri?.fsPath;
    if (exe) return exe;
  }
  return api.settings?.getExecutionDetails(resource)?.execCommand?.[0];
}

/** Calls `listener` when the Python extension's active interpreter changes. */
export async function onPythonInterpreterChange(listener: () => void): Promise<vscode.Disposable | undefined> {
  const api = await pythonApi().catch(() => undefined);
  return api?.environments?.onDidChangeActiveEnvironmentPath?.(listener);
}
