import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { checkInterpreter } from '../src/preflight';
import {
  cancelArgs, DEFAULT_PATTERNS, diagnoseCheck, evaluateArgs, expandVars, looksLikeConfig, optimizeArgs, planArgs, planMarkdown,
  pythonEnv,
  readSettings, resolveInterpreter, runsArgs, serverCommand, validateArgs,
} from '../src/settings';

const ROOT = path.join(__dirname, '..', '..', '..');
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const settingsFrom = (values: Record<string, unknown>) => readSettings((key) => values[key]);

describe('settings', () => {
  it('defaults match package.json and the server contract', () => {
    const s = settingsFrom({});
    assert.deepEqual(s, { interpreter: '', serverArgs: [], configFilePatterns: DEFAULT_PATTERNS, trace: 'off' });
    const props = PKG.contributes.configuration.properties;
    assert.deepEqual(props['modelmill.configFilePatterns'].default, DEFAULT_PATTERNS);
    assert.equal(props['modelmill.trace.server'].default, 'off');
    for (const key of ['interpreter', 'serverArgs', 'configFilePatterns', 'defaultDevice', 'defaultProvider', 'cacheDir', 'trace.server']) {
      assert.ok(props[`modelmill.${key}`], `setting modelmill.${key} is contributed`);
    }
  });

  it('takes set values and drops wrongly typed ones', () => {
    assert.deepEqual(settingsFrom({ interpreter: ' /opt/py/bin/python ', serverArgs: ['--log', 'debug'], 'trace.server': 'verbose',
      configFilePatterns: ['**/*.wf.json'] }),
    { interpreter: '/opt/py/bin/python', serverArgs: ['--log', 'debug'], configFilePatterns: ['**/*.wf.json'], trace: 'verbose' });
    assert.deepEqual(settingsFrom({ interpreter: 3, serverArgs: 'x', configFilePatterns: [1], 'trace.server': 'loud' }),
      { interpreter: '', serverArgs: [], configFilePatterns: DEFAULT_PATTERNS, trace: 'off' });
  });

  it('expands ${workspaceFolder}, ${userHome}, ${env:X} and ~', () => {
    const vars = { workspaceFolder: '/ws', userHome: '/home/u', env: { VENV: '/v' } };
    assert.equal(expandVars('${workspaceFolder}/.venv/bin/python', vars), '/ws/.venv/bin/python');
    assert.equal(expandVars('~/py/bin/python', vars), '/home/u/py/bin/python');
    assert.equal(expandVars('${userHome}/x', vars), '/home/u/x');
    assert.equal(expandVars('${env:VENV}/bin/python', vars), '/v/bin/python');
    assert.equal(expandVars('${env:NOPE}python', vars), 'python');
    assert.equal(expandVars('${workspaceFolder}/p', {}), '${workspaceFolder}/p');
  });
});

describe('interpreter discovery', () => {
  const never = async () => { throw new Error('must not ask the Python extension'); };

  it('prefers the setting', async () => {
    assert.deepEqual(await resolveInterpreter(settingsFrom({ interpreter: '${workspaceFolder}/.venv/bin/python' }), { workspaceFolder: '/w' }, never),
      { path: '/w/.venv/bin/python', source: 'setting' });
  });

  it('then the Python extension\'s active interpreter', async () => {
    assert.deepEqual(await resolveInterpreter(settingsFrom({}), {}, async () => '/envs/a/bin/python'),
      { path: '/envs/a/bin/python', source: 'python-extension' });
  });

  it('then python3 (no Python extension, or it fails)', async () => {
    assert.deepEqual(await resolveInterpreter(settingsFrom({}), {}, async () => undefined), { path: 'python3', source: 'default' });
    assert.deepEqual(await resolveInterpreter(settingsFrom({}), {}, never), { path: 'python3', source: 'default' });
  });

  it('builds the server command line', () => {
    assert.deepEqual(serverCommand({ path: '/p/python', source: 'setting' }, settingsFrom({ serverArgs: ['--tcp', '2087'] })),
      { command: '/p/python', args: ['-m', 'modelmill', 'lsp', '--tcp', '2087'] });
  });

  it('explains an interpreter that does not exist, with the setting to change', async () => {
    const python = path.join(os.tmpdir(), 'no-such-dir', 'python');
    const result = await checkInterpreter(python, process.env);
    assert.equal(result.spawnError, 'ENOENT');
    const problem = diagnoseCheck({ path: python, source: 'setting' }, result)!;
    assert.equal(problem.kind, 'no-interpreter');
    assert.match(problem.message, /could not be started \(ENOENT\)/);
    assert.match(problem.message, /modelmill\.interpreter/);
  });

  it('explains a Python without modelmill, with the exact install command', async (t) => {
    const result = await checkInterpreter('python3', { ...process.env, PYTHONNOUSERSITE: '1' });
    if (result.exitCode === 0 || result.spawnError) { t.skip('this machine\'s python3 has modelmill (or no python3)'); return; }
    const problem = diagnoseCheck({ path: 'python3', source: 'default' }, result)!;
    assert.equal(problem.kind, 'not-installed', result.stderr);
    assert.equal(problem.installCommand, 'python3 -m pip install modelmill');
    assert.match(problem.message, /"modelmill" is not installed for python3\. Install it with: python3 -m pip install modelmill/);
    const quoted = diagnoseCheck({ path: '/My Envs/python', source: 'python-extension' },
      { exitCode: 1, stdout: '', stderr: 'No module named modelmill' })!;
    assert.equal(quoted.installCommand, '"/My Envs/python" -m pip install modelmill');
    assert.match(quoted.message, /Python extension's active interpreter/);
  });

  it('accepts an interpreter that imports modelmill (the project venv)', async (t) => {
    const venv = path.join(ROOT, '.venv', 'bin', 'python');
    if (!fs.existsSync(venv)) { t.skip('no .venv'); return; }
    const result = await checkInterpreter(venv, process.env);
    assert.equal(diagnoseCheck({ path: venv, source: 'setting' }, result), undefined, result.stderr);
    assert.match(result.stdout, /^\d+\.\d+/);
  });

  it('starts Python so that a workspace cannot shadow modelmill or its libraries', async (t) => {
    const venv = path.join(ROOT, '.venv', 'bin', 'python');
    if (!fs.existsSync(venv)) { t.skip('no .venv'); return; }
    // a hostile repository: its own modelmill/ package and an attr.py (pygls imports attrs' `attr`)
    const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'planted-'));
    const marker = path.join(ws, 'ran.txt');
    const plant = `open(${JSON.stringify(marker)}, 'a').write(__name__ + '\\n')\n`;
    fs.mkdirSync(path.join(ws, 'modelmill'));
    fs.writeFileSync(path.join(ws, 'modelmill', '__init__.py'), plant);
    fs.writeFileSync(path.join(ws, 'attr.py'), plant);
    const env = pythonEnv(process.env);
    const { command, args } = serverCommand({ path: venv, source: 'setting' }, settingsFrom({}));
    await new Promise<void>((resolve, reject) => {
      // the server reads its first message from stdin: closing it at once ends the server after start-up
      const child = spawn(command, args, { cwd: ws, env, stdio: ['pipe', 'ignore', 'ignore'] });
      child.stdin.end();
      const timer = setTimeout(() => { child.kill(); reject(new Error('server did not exit')); }, 30000);
      child.on('exit', () => { clearTimeout(timer); resolve(); });
    });
    const check = await new Promise<number | null>((resolve) => {
      spawn(venv, ['-c', 'import modelmill, attr, sys; sys.exit(0 if "site-packages" in attr.__file__ else 3)'],
        { cwd: ws, env }).on('exit', resolve);
    });
    assert.equal(check, 0);
    assert.equal(fs.existsSync(marker), false, fs.existsSync(marker) ? fs.readFileSync(marker, 'utf8') : '');
    fs.rmSync(ws, { recursive: true, force: true });
  });

  it('reports another import failure with its last line', () => {
    const problem = diagnoseCheck({ path: 'python3', source: 'default' },
      { exitCode: 1, stdout: '', stderr: 'Traceback...\nImportError: libfoo.so: cannot open shared object file\n' })!;
    assert.equal(problem.kind, 'broken');
    assert.match(problem.message, /ImportError: libfoo\.so/);
  });
});

describe('server command arguments (docs/lsp.md)', () => {
  it('builds one argument object per command', () => {
    assert.deepEqual(optimizeArgs('file:///w/c.json'), [{ uri: 'file:///w/c.json' }]);
    assert.deepEqual(validateArgs('file:///w/c.json'), [{ uri: 'file:///w/c.json' }]);
    assert.deepEqual(planArgs('file:///w/c.json'), [{ uri: 'file:///w/c.json' }]);
    assert.deepEqual(cancelArgs('20261126-1'), [{ runId: '20261126-1' }]);
    assert.deepEqual(runsArgs(), [{}]);
    assert.deepEqual(evaluateArgs('/out'), [{ path: '/out' }]);
    assert.deepEqual(evaluateArgs('/out', { metrics: ['llm', 'size'], compare: '/other' }),
      [{ path: '/out', metrics: ['llm', 'size'], compare: '/other' }]);
    assert.deepEqual(evaluateArgs('/out', { metrics: [] }), [{ path: '/out' }]);
  });

  it('client command ids never collide with the server\'s', () => {
    const server = ['modelmill.optimize', 'modelmill.evaluate', 'modelmill.cancel', 'modelmill.validate', 'modelmill.plan', 'modelmill.runs'];
    const client: string[] = PKG.contributes.commands.map((c: { command: string }) => c.command);
    assert.deepEqual(client.filter((id) => server.includes(id)), []);
    for (const c of PKG.contributes.commands) assert.equal(c.category, 'ModelMill');
  });

  it('tells configs from other JSON/YAML', () => {
    assert.ok(looksLikeConfig('{\n  "input_model": {"type": "HfModel"}\n}'));
    assert.ok(looksLikeConfig('passes:\n  q:\n    type: ModelBuilder\n'));
    assert.ok(!looksLikeConfig('{"name": "pkg", "scripts": {}}'));
    assert.ok(looksLikeConfig('engine:\n  cache_dir: c\n'), 'the server counts `engine` too (WORKFLOW_KEYS)');
  });

  it('formats a plan as Markdown without inventing numbers', () => {
    const md = planMarkdown('c.json', {
      passes: [{ name: 'mb', type: 'ModelBuilder', params: { precision: 'int4' }, cached: false, estimatedSeconds: 8.6,
                 estimatedOutputMB: 86, estimatedMemoryMB: null }],
      outputDir: '/o', device: 'cpu', executionProvider: 'CPUExecutionProvider', searchSpace: {},
    });
    assert.match(md, /\| 1 \| mb \| ModelBuilder \| no \| 9 s \| 86 MB \|  \| `\{"precision":"int4"\}` \|/);
    assert.doesNotMatch(md, /Search space/);
  });
});
