// E2E: runs you can come back to and compare (issue 17). After modelmill.e2e.mjs (same workspace and MODELMILL_HOME:
// its optimize run of tiny_optimize.json is in the server's run history, its output in models/tiny-int4), in a fresh
// VS Code: Evaluate Model asks which metrics (the server's presets for an ORT GenAI folder) and remembers the choice;
// Compare Runs/Outputs puts the optimize run and the evaluation side by side: the table with ratios, and the plots.
import fs from 'fs';
import path from 'path';
import { checks, findListRow, listTexts, openFile, openWorkbench, quickInputList, runCommand, runsPanel, until }
  from './helpers.mjs';

const SHOTS = process.env.SHOTS;
fs.mkdirSync(SHOTS, { recursive: true });
const { check, summary } = checks();
const { browser, page } = await openWorkbench(process.env.VSC_URL);
const shot = (name) => page.screenshot({ path: path.join(SHOTS, name) }).catch((e) => console.log('screenshot failed', name, e.message));
const step = async (name, fn) => {
  try { await fn(); } catch (e) { check(name, false, `exception: ${String(e).split('\n')[0]}`); await shot(`fail-${name.replace(/\W+/g, '-')}.png`); }
};
const list = () => quickInputList(page);

// A row of a multi-select quick pick: checked or not (the row's aria-checked, else its checkbox).
const isChecked = (row) => row.evaluate((r) => {
  const own = r.getAttribute('aria-checked');
  if (own === 'true' || own === 'false') return own === 'true';
  const box = r.querySelector('input[type="checkbox"]');
  if (box) return box.checked;
  const toggle = r.querySelector('[role="checkbox"], .monaco-custom-toggle');
  return toggle ? toggle.getAttribute('aria-checked') === 'true' || toggle.classList.contains('checked') : null;
});
async function setChecked(row, want) {
  for (let i = 0; i < 3 && (await isChecked(row)) !== want; i++) {
    const box = row.locator('input[type="checkbox"], [role="checkbox"], .monaco-custom-toggle').first();
    if (await box.count()) await box.click(); else await row.click();
    await page.waitForTimeout(200);
  }
  return (await isChecked(row)) === want;
}
// A quick pick row by its label.
const labelRow = (label) => findListRow(list(), { has: page.locator('.label-name', { hasText: new RegExp(`^\\s*${label}\\s*$`) }) });
async function accept() {
  const ok = page.locator('.quick-input-widget .monaco-button', { hasText: /^OK$/ }).first();
  if (await ok.isVisible().catch(() => false)) await ok.click(); else await page.keyboard.press('Enter');
}
async function pickOutputToEvaluate() {
  await runCommand(page, 'ModelMill: Evaluate Model');
  const row = await findListRow(list(), { hasText: 'tiny-int4' }, { timeout: 15000 });
  await row.click();
  await until(async () => /Metrics to measure|genai/.test(await page.locator('.quick-input-widget').innerText()), { timeout: 30000 });
  await page.waitForTimeout(500);
  // a short list, all in view; a row's first .label-name is its label (its detail line is one too)
  return list().locator('.monaco-list-row').evaluateAll((rows) => rows.map((r) => r.querySelector('.label-name')?.textContent?.trim() ?? ''));
}

try {
  await openFile(page, 'tiny_optimize.json');   // activates the extension; the server lists the runs it kept
  const panel = runsPanel(page);
  await runCommand(page, 'ModelMill: Show Runs Panel');
  const kept = await until(async () => panel.locator('section.run[data-status="done"]', { hasText: 'tiny_optimize.json' }).count(),
    { timeout: 60000 });
  check('the optimize run of the last session is back in the panel (run history)', kept > 0, `cards: ${kept}`);

  await step('evaluate with chosen metrics', async () => {
    const evaluations = panel.locator('section.run', { hasText: 'evaluate tiny-int4' });
    const before = await evaluations.count();
    const names = await pickOutputToEvaluate();
    check('Evaluate offers the presets of an ORT GenAI folder', ['llm', 'perplexity', 'size', 'memory'].every((n) => names.includes(n))
      && !names.includes('latency'), JSON.stringify(names));
    await shot('evaluate-metrics.png');
    let only = true;
    const states = [];
    for (const name of names) {
      only = (await setChecked(await labelRow(name), name === 'size')) && only;
      states.push(`${name}=${await isChecked(await labelRow(name))}`);
    }
    check('only size checked', only, states.join(' '));
    await accept();
    const card = evaluations.first();
    await until(async () => (await evaluations.count()) > before, { timeout: 30000 });
    const done = await until(async () => { const s = await card.getAttribute('data-status'); return s !== 'running' ? s : ''; }, { timeout: 180000, every: 500 });
    const table = await card.locator('table.metrics').innerText().catch(() => '');
    check('the evaluation measures the chosen metric only', done === 'done' && /size-bytes/.test(table) && !/llm-/.test(table),
      `status=${done} metrics=${JSON.stringify(table.replace(/\s+/g, ' '))}`);
    // the choice is remembered for this kind of model
    await pickOutputToEvaluate();
    const again = {};
    for (const name of ['size', 'llm', 'memory']) again[name] = await isChecked(await labelRow(name));
    check('the metrics chosen last come checked next time', again.size === true && again.llm === false && again.memory === false,
      JSON.stringify(again));
    await page.keyboard.press('Escape');
  });

  await step('compare', async () => {
    await runCommand(page, 'ModelMill: Compare Runs/Outputs');
    const optimizeRow = await findListRow(list(), { hasText: 'tiny_optimize.json' }, { timeout: 15000 });
    const rows = await listTexts(list());
    check('Compare lists finished runs and a Browse item', rows.some((t) => /evaluate tiny-int4/.test(t)) && rows.some((t) => /Browse/.test(t)),
      JSON.stringify(rows.slice(0, 6)));
    const picked = (await setChecked(optimizeRow, true))
      && (await setChecked(await findListRow(list(), { hasText: 'evaluate tiny-int4' }), true));
    check('two runs picked', picked);
    await accept();
    const tab = page.locator('.tab', { hasText: 'Compare:' });
    await tab.waitFor({ timeout: 60000 });
    const view = page.frameLocator('iframe.webview:not([src*="purpose=webviewView"])').frameLocator('iframe#active-frame');
    const table = await until(async () => (await view.locator('table.compare').innerText()).replace(/\s+/g, ' '), { timeout: 30000 });
    check('the comparison table: a column per run, the size row with the ratio to the baseline',
      /baseline/.test(table ?? '') && /size-bytes/.test(table ?? '') && /\d(\.\d+)?x/.test(table ?? '')
      && (await view.locator('table.compare thead th').count()) === 3, JSON.stringify(table));
    const plots = await view.locator('figure img').count();
    check('the plots of report.html', plots >= 1, `images: ${plots}`);
    await shot('compare.png');
  });
} catch (e) {
  check('no exception', false, String(e).split('\n')[0]);
  await shot('fail-compare.png');
}
await browser.close();
process.exit(summary());
