// E2E: in an untrusted workspace (Restricted Mode) the server only validates; Optimize says why it is refused.
import fs from 'fs';
import path from 'path';
import { checks, goTo, openFile, openWorkbench, runCommand, runsPanel } from './helpers.mjs';

const SHOTS = process.env.SHOTS;
fs.mkdirSync(SHOTS, { recursive: true });
const { check, summary } = checks();
const { browser, page } = await openWorkbench(process.env.VSC_URL);
try {
  await openFile(page, 'broken_config.json');
  await goTo(page, '41');   // the errors are on lines 39-43: in view (the editor renders the lines in view only)
  const squiggles = page.locator('.monaco-editor .squiggly-error');
  check('diagnostics still work untrusted', await squiggles.first().waitFor({ timeout: 60000 }).then(() => true, () => false));
  await openFile(page, 'tiny_optimize.json');
  await runCommand(page, 'ModelMill: Optimize Workflow');
  const toast = page.locator('.notification-toast', { hasText: 'untrusted workspace' }).first();
  const shown = await toast.waitFor({ timeout: 20000 }).then(() => true, () => false);
  check('Optimize explains why it is refused', shown && /Manage Workspace Trust/.test(await toast.innerText()),
    shown ? JSON.stringify((await toast.innerText()).replace(/\s+/g, ' ')) : '');
  await page.screenshot({ path: path.join(SHOTS, 'untrusted.png') });
  const cards = await runsPanel(page).locator('section.run').count().catch(() => 0);
  check('no run started', cards === 0 && !fs.existsSync(path.join(process.env.WS, 'models', 'tiny-int4')));
} catch (e) {
  check('no exception', false, String(e).split('\n')[0]);
  await page.screenshot({ path: path.join(SHOTS, 'fail-untrusted.png') }).catch(() => {});
}
await browser.close();
process.exit(summary());
