// Small helpers for driving the VS Code web workbench with playwright-core.
import { chromium } from 'playwright-core';

export async function openWorkbench(url, { executablePath = '/usr/lib/chromium/chromium' } = {}) {
  const browser = await chromium.launch({ executablePath, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  // E2E_VIEWPORT=WxH (default 1400x900): a smaller window puts more rows of every list below the fold
  const [width, height] = (process.env.E2E_VIEWPORT || '1400x900').split('x').map(Number);
  const page = await browser.newPage({ viewport: { width, height } });
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
    try {
      await input.waitFor({ state: 'visible', timeout: 5000 });
      await input.fill('>' + title);
      const row = await findListRow(quickInputList(page), { hasText: title }, { timeout: 5000 });
      await row.click(); return;
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
    try {
      await input.waitFor({ state: 'visible', timeout: 5000 });
      await input.fill(name);
      const row = await findListRow(quickInputList(page), { hasText: name }, { timeout: 5000 });
      await row.click(); break;
    } catch (e) {
      console.log('[quick open] retry', i, 'for', JSON.stringify(name)); if (i >= attempts) throw e;
      await refocus(page);
    }
  }
  await page.waitForSelector(`.tab.active:has-text("${name}")`, { timeout: 30000 });
}

// ---- ModelMill additions ----

// Go to a line (`41`, or `5:7` with a column) of the active editor, which reveals it: an editor renders the lines in
// view only, so squiggles (and any text) out of view are not in the DOM.
// Typed into the Go to Line box (never into the editor, should the box be slow to open); checked on the status bar.
export async function goTo(page, where, attempts = 3) {
  const [line, col] = where.split(':');
  const input = page.locator('.quick-input-widget input[type="text"], .quick-input-widget .quick-input-box input').first();
  const position = page.locator('.statusbar-item', { hasText: new RegExp(`Ln ${line}, Col ${col ?? '\\d+'}\\b`) });
  for (let i = 1; ; i++) {
    await page.keyboard.press('Control+G');
    try {
      await input.waitFor({ state: 'visible', timeout: 5000 });
      await until(async () => (await input.inputValue()).startsWith(':'), { timeout: 5000 });
      await input.fill(':' + where);
      await input.press('Enter');
      await position.first().waitFor({ timeout: 5000 });
      return;
    } catch (e) {
      console.log('[go to line] retry', i, 'for', where); if (i >= attempts) throw e;
      await page.keyboard.press('Escape');
      await refocus(page);
    }
  }
}

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

// ---- Virtualized lists ----
// VS Code's lists and trees (the palette and quick picks, the quick-fix menu, the Problems tree, Running Extensions,
// the settings editor) are monaco ListViews: only the rows in view are in the DOM. A locator waiting for a row below
// the fold times out, and the innerText of a panel misses the rows out of view. These helpers scroll the list itself
// (wheel events on its scrollable element, what the mouse wheel does, so no hit-testing: a toast over the list does
// not matter) from the top to the end and look at every row on the way.

// The list of the open quick input (palette, Quick Open, a quick pick).
export function quickInputList(page) {
  return page.locator('.quick-input-widget .quick-input-list .monaco-list').first();
}

// In the browser: the list's rows (not those of a nested list), in index order, with positions relative to the
// list's viewport; the viewport's height. `dy` (pixels, + is down) first scrolls the list by a wheel event.
function listView(el, dy) {
  const list = el.classList.contains('monaco-list') ? el : el.querySelector('.monaco-list');
  if (!list) throw new Error('no .monaco-list in ' + el.className);
  const scroller = list.querySelector(':scope > .monaco-scrollable-element') || list;
  if (dy) {
    // monaco reads wheelDeltaY (120 = one notch) before deltaY; give both the same direction as a real wheel
    scroller.dispatchEvent(new WheelEvent('wheel', { deltaY: dy, deltaMode: 0, wheelDeltaY: -dy * 120 / 50,
      bubbles: false, cancelable: true, view: window }));
  }
  // the viewport: the scrollable element, clipped by the list (the quick input's is as tall as all its rows)
  const sb = scroller.getBoundingClientRect(), lb = list.getBoundingClientRect();
  const box = { top: Math.max(sb.top, lb.top), height: Math.min(sb.bottom, lb.bottom) - Math.max(sb.top, lb.top) };
  const rows = [...list.querySelectorAll('.monaco-list-row')].filter((r) => r.closest('.monaco-list') === list)
    .map((r) => {
      const b = r.getBoundingClientRect();
      return { index: Number(r.dataset.index), top: b.top - box.top, bottom: b.bottom - box.top,
        last: r.dataset.lastElement === 'true', text: r.innerText };
    })
    .sort((a, b) => a.index - b.index);
  return { height: box.height, rows };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const atTop = (v) => !v.rows.length || (v.rows[0].index === 0 && v.rows[0].top >= -1);
const atEnd = (v) => !v.rows.length || v.rows.some((r) => r.last && r.bottom <= v.height + 1);
const signature = (v) => v.rows.map((r) => `${r.index}@${Math.round(r.top)}`).join(' ');

const view = (list, px = 0) => list.evaluate(listView, px, { timeout: 5000 });

// Scroll by about `px` pixels; returns the new view. Waits (briefly) for the list to re-render.
async function scrollList(list, px) {
  const before = await view(list);
  let after = await view(list, px);
  for (let i = 0; i < 10 && signature(after) === signature(before); i++) { await sleep(50); after = await view(list); }
  return after;
}

async function scrollToTop(list) {
  let v = await view(list);
  for (let i = 0; i < 50 && !atTop(v); i++) v = await scrollList(list, -Math.max(v.height, 200) * 4);
  return v;
}

// Walk the list from the top to the end, a bit less than a page at a time, calling visit(view) at each stop until it
// returns something truthy (returned). A stop never skips a row: consecutive views overlap or touch.
async function sweepList(list, visit) {
  let v = await scrollToTop(list);
  for (let stops = 0; stops < 500; stops++) {
    const found = await visit(v);
    if (found) return found;
    if (atEnd(v)) return undefined;
    const lastSeen = v.rows.length ? v.rows[v.rows.length - 1].index : -1;
    let step = Math.max(v.height * 0.7, 10);
    let next = await scrollList(list, step);
    // rows skipped (a wheel event scrolled further than asked): go back until the views touch
    for (let i = 0; i < 8 && next.rows.length && next.rows[0].index > lastSeen + 1; i++) {
      step /= 2; next = await scrollList(list, -step);
    }
    if (signature(next) === signature(v)) return visit(next);   // cannot scroll further: that was the end
    v = next;
  }
  return undefined;
}

// Scroll `row` (a row of a virtualized list) fully into the list's viewport, so that a click hits it where it is.
async function revealRow(list, row) {
  for (let i = 0; i < 10; i++) {
    const at = await row.evaluate((r) => {
      const l = r.closest('.monaco-list');
      const sb = (l.querySelector(':scope > .monaco-scrollable-element') || l).getBoundingClientRect();
      const lb = l.getBoundingClientRect(), rb = r.getBoundingClientRect();
      const top = Math.max(sb.top, lb.top);
      return { top: rb.top - top, bottom: rb.bottom - top, height: Math.min(sb.bottom, lb.bottom) - top };
    }, null, { timeout: 5000 });
    if (at.top >= -1 && (at.bottom <= at.height + 1 || at.bottom - at.top > at.height)) return;
    await scrollList(list, at.top < 0 ? at.top - 2 : at.bottom - at.height + 2);
  }
}

// The first row of a virtualized list that matches `filter` (a Playwright filter: { hasText }, { has }), fully in
// view; wherever it is in the list. Sweeps the list from the top to the end, again until `timeout` (rows may still
// be coming); throws if no row matches by then.
export async function findListRow(list, filter, { timeout = 15000 } = {}) {
  const row = list.locator('.monaco-list-row').filter(filter).first();
  const end = Date.now() + timeout;
  for (;;) {
    let hit = await row.count() > 0;
    if (!hit && await list.count()) hit = await sweepList(list, async () => await row.count() > 0).catch(() => false);
    if (hit) { await revealRow(list, row).catch(() => {}); if (await row.count()) return row; }
    if (Date.now() > end) throw new Error(`no row ${JSON.stringify(String(filter.hasText ?? filter.has ?? filter))} in the list (scrolled from the top to the end)`);
    await sleep(250);
  }
}

// The text of every row of a virtualized list (tree rows included), in order: what the whole list shows.
export async function listTexts(list) {
  const texts = new Map();
  await sweepList(list, async (v) => { for (const r of v.rows) texts.set(r.index, r.text.replace(/\s+/g, ' ').trim()); return false; });
  return [...texts.entries()].sort((a, b) => a[0] - b[0]).map(([, t]) => t);
}
