// E2E: with `modelmill.interpreter` pointing nowhere, the user sees an actionable message with a settings button.
import fs from 'fs';
import path from 'path';
import { checks, findListRow, openFile, openWorkbench } from './helpers.mjs';

const SHOTS = process.env.SHOTS;
fs.mkdirSync(SHOTS, { recursive: true });
const { check, summary } = checks();
const { browser, page } = await openWorkbench(process.env.VSC_URL);
try {
  await openFile(page, 'tiny_optimize.json');
  const toast = page.locator('.notification-toast', { hasText: 'could not be started' }).first();
  await toast.waitFor({ timeout: 60000 });
  const text = (await toast.innerText()).replace(/\s+/g, ' ');
  check('message names the interpreter and the setting', /\/nonexistent\/bin\/python/.test(text) && /modelmill\.interpreter/.test(text), JSON.stringify(text));
  const item = page.locator('.statusbar-item', { hasText: 'ModelMill' }).first();
  check('status bar item shows the failure', /error/.test(await item.innerHTML()));
  await page.screenshot({ path: path.join(SHOTS, 'wrong-python.png') });
  await toast.locator('a.monaco-button, .monaco-button', { hasText: 'Open Settings' }).first().click();
  // the settings editor's list of settings is virtualized: look through all of it (the search shows one or a few)
  const tree = page.locator('.settings-editor .settings-tree-container .monaco-list').first();
  await tree.waitFor({ timeout: 15000 });
  const setting = await findListRow(tree, { has: page.locator('.setting-item', { hasText: 'Interpreter' }) }, { timeout: 15000 });
  check('"Open Settings" opens modelmill.interpreter', /Modelmill: Interpreter|ModelMill/i.test(await setting.innerText()));
} catch (e) {
  check('no exception', false, String(e).split('\n')[0]);
  await page.screenshot({ path: path.join(SHOTS, 'fail-wrong-python.png') }).catch(() => {});
}
await browser.close();
process.exit(summary());
