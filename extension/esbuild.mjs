// Bundles the extension (node, CommonJS) and the runs panel's page script (browser) into dist/.
// Usage: node extension/esbuild.mjs [--production] [--watch]
import * as esbuild from 'esbuild';

const production = process.argv.includes('--production');
const common = { bundle: true, minify: production, sourcemap: !production, logLevel: 'info' };
const builds = [
  // activation loads extension.js only; client.js (vscode-languageclient) is required right after activation
  { ...common, entryPoints: ['extension/src/extension.ts'], outfile: 'dist/extension.js', platform: 'node',
    format: 'cjs', target: 'node18', external: ['vscode', './client.js'] },
  { ...common, entryPoints: ['extension/src/client.ts'], outfile: 'dist/client.js', platform: 'node',
    format: 'cjs', target: 'node18', external: ['vscode'] },
  { ...common, entryPoints: ['extension/src/webview/runsView.ts'], outfile: 'dist/runsView.js', platform: 'browser',
    format: 'iife', target: 'es2020' },
];

if (process.argv.includes('--watch')) {
  for (const options of builds) await (await esbuild.context(options)).watch();
} else {
  await Promise.all(builds.map((options) => esbuild.build(options)));
}
