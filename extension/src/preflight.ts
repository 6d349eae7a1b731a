// The pre-flight check before the server starts: can this interpreter start, and import modelmill?
// No vscode import: the unit tests run it against real interpreters.
import { spawn } from 'child_process';
import { CHECK_ARGS, CheckResult } from './settings';

/** Runs `<python> -c "import modelmill"` (20 s at most). */
export function checkInterpreter(python: string, env: NodeJS.ProcessEnv): Promise<CheckResult> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let done = false;
    const finish = (result: CheckResult) => { if (!done) { done = true; clearTimeout(timer); resolve(result); } };
    const child = spawn(python, CHECK_ARGS, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => { child.kill(); finish({ exitCode: null, stdout, stderr: stderr + '\ntimed out after 20 s' }); }, 20000);
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    child.on('error', (err: NodeJS.ErrnoException) => finish({ spawnError: err.code ?? err.message, exitCode: null, stdout, stderr }));
    child.on('close', (code) => finish({ exitCode: code, stdout, stderr }));
  });
}
