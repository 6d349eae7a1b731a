// `npm run package`: production bundles, then `vsce package` in a staging folder (out/vsix) holding only what the
// .vsix ships. (vsce run at the top level walks every file of the repository — .venv, the e2e code-server — before
// .vscodeignore applies: minutes instead of seconds.)
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const stage = path.join(root, 'out', 'vsix');
const output = path.join(root, 'dist', 'modelmill.vsix');
const SHIPPED = ['dist/extension.js', 'dist/client.js', 'dist/runsView.js', 'extension/schemas', 'extension/templates',
  'extension/media', 'extension/README.md', '.vscodeignore'];

execFileSync(process.execPath, [path.join(root, 'extension', 'esbuild.mjs'), '--production'], { cwd: root, stdio: 'inherit' });
fs.rmSync(stage, { recursive: true, force: true });
for (const item of SHIPPED) fs.cpSync(path.join(root, item), path.join(stage, item), { recursive: true });
const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
delete manifest.scripts['vscode:prepublish']; // already built above
fs.writeFileSync(path.join(stage, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
const vsce = path.join(root, 'node_modules', '@vscode', 'vsce', 'vsce');
execFileSync(process.execPath, [vsce, 'package', '--no-dependencies', '--allow-missing-repository', '--skip-license',
  '--readme-path', 'extension/README.md', '-o', output], { cwd: stage, stdio: 'inherit' });
