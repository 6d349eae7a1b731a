// Small helpers for driving the VS Code web workbench with playwright-core.
import { chromium } from 'playwright-core';

export async function openWorkbench(url, { executablePath = '/usr/lib/chromium/chromium' } = {}) {
  const browser = await chromium.launch({ executablePath, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(url);
  await page.waitForSelector('.monaco-workbench', { timeout: 60000 });
  // explorer rows appear once the remote extension host / file service answered
  await page.waitForSelector('.explorer-folders-view .monaco-list-row', { timeout: 60000 });
  return { browser, page };
}

// Run a command by its title through the command palette (what a user does). Retries: right after the
// workbench shows, the extension host may not have registered the extension's contributions yet, and
// an already-open palette does not refresh its list.
export async function runCommand(page, title, attempts = 6) {
  for (let i = 1; ; i++) {
    await page.keyboard.press('Escape');
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input[type="text"], .quick-input-widget .quick-input-box input').first();
    const row = page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
    try {
      await input.waitFor({ state: 'visible', timeout: 5000 });
      await input.fill('>' + title);
      await row.waitFor({ state: 'visible', timeout: 5000 }); await row.click(); return;
    } catch (e) {
      console.log('[palette] retry', i, 'for', JSON.stringify(title)); if (i >= attempts) throw e;
      await refocus(page);
    }
  }
}

// Keyboard focus back to the workbench (e.g. after a webview had it, which swallows F1 and Ctrl+P): click the
// active editor tab's label (clicking the text would scroll it).
async function refocus(page) {
  await page.locator('.tab.active .label-name, .tab.active').first().click({ timeout: 3000 }).catch(() => {});
}

// Quick Open (Ctrl+P) a workspace file by name and wait for its editor.
export async function openFile(page, name, attempts = 6) {
  for (let i = 1; ; i++) {
    await page.keyboard.press('Escape');
    await page.keyboard.press('Control+P');
    const input = page.locator('.quick-input-widget input[type="text"], .quick-input-widget .quick-input-box input').first();
    const row = page.locator('.quick-input-list .monaco-list-row', { hasText: name }).first();
    try {
      await input.waitFor({ state: 'visible', timeout: 5000 });
      await input.fill(name);
      await row.waitFor({ state: 'visible', timeout: 5000 }); await row.click(); break;
    } catch (e) {
      console.log('[quick open] retry', i, 'for', JSON.stringify(name)); if (i >= attempts) throw e;
      await refocus(page);
    }
  }
  await page.waitForSelector(`.tab.active:has-text("${name}")`, { timeout: 30000 });
}

// ---- ModelMill additions ----

// The runs panel: a webview view (outer iframe from the workbench, inner #active-frame with the page).
export function runsPanel(page) {
  return page.frameLocator('iframe.webview[src*="purpose=webviewView"]').frameLocator('iframe#active-frame');
}

// The Problems counters of the status bar, as numbers: { errors, warnings }.
export async function problemCounts(page) {
  const item = page.locator('#status\\.problems');
  const label = (await item.getAttribute('aria-label').catch(() => null)) || (await item.innerText().catch(() => ''));
  // e.g. "Errors: 3, Warnings: 1"; a kind with no problems may be left out
  const pick = (word) => { const m = label.match(new RegExp(`${word}s?:?\\s*(\\d+)|(\\d+)\\s*${word}`, 'i')); return m ? Number(m[1] ?? m[2]) : 0; };
  return { errors: pick('error'), warnings: pick('warning'), label };
}

// Poll fn() until it returns a truthy value or the deadline passes; returns the last value.
export async function until(fn, { timeout = 30000, every = 250 } = {}) {
  const end = Date.now() + timeout;
  let value;
  while (Date.now() < end) {
    value = await fn().catch(() => undefined);
    if (value) return value;
    await new Promise((r) => setTimeout(r, every));
  }
  return value;
}

// A check list that prints PASS/FAIL lines and the closing "N passed, N failed".
export function checks() {
  const results = [];
  const check = (name, ok, detail = '') => { results.push(!!ok); console.log(`${ok ? 'PASS' : 'FAIL'} ${name} ${detail}`); return !!ok; };
  const summary = () => {
    const pass = results.filter(Boolean).length, fail = results.length - pass;
    console.log(`${pass} passed, ${fail} failed`);
    return fail ? 1 : 0;
  };
  return { check, summary };
}
