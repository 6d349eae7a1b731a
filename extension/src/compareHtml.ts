// The server's comparison of runs/outputs (modelmill.compare: server/modelmill/evaluate/comparison.py) as a page:
// rows = metrics, columns = models, each value with its ratio to the first column's, and report.html's plots.
// Pure (no vscode import): every number, text, ratio and direction comes from the server; this only lays it out.
import type { CompareCell, CompareResult } from './contracts.generated';
import { esc } from './runsHtml';

export type { CompareCell, CompareColumn, CompareResult, CompareRow } from './contracts.generated';

/** No scripts; images only as data: URIs (the plots), styles inline. */
export const COMPARE_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline';";

const CSS = `body{font-family:var(--vscode-font-family);font-size:var(--vscode-font-size);color:var(--vscode-foreground);padding:0 1em}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid var(--vscode-panel-border,#8884);padding:3px 8px}
th{text-align:left;background:var(--vscode-editorWidget-background,#8881)}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.best .value{font-weight:bold}.ratio{display:block;font-size:90%;opacity:.85}.ratio.better{color:var(--vscode-testing-iconPassed,#1d7a6f)}
.ratio.worse{color:var(--vscode-testing-iconFailed,#c62828)}.source{font-weight:normal;opacity:.7;font-size:90%}
.warnings{opacity:.85}figure{display:inline-block;margin:.5em;background:#fff;padding:4px}img{max-width:100%}`;

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function cellHtml(cell: CompareCell, baseline: boolean): string {
  const direction = cell.better === true ? 'better' : cell.better === false ? 'worse' : 'same';
  const ratio = baseline ? '<span class="ratio">baseline</span>'
    : cell.ratioText ? `<span class="ratio ${direction}" title="${esc(direction)} than the baseline">${esc(cell.ratioText)}</span>` : '';
  const css = cell.best ? 'num best' : 'num';
  return `<td class="${css}" data-better="${direction}"><span class="value">${esc(cell.text)}</span>${ratio}</td>`;
}

/** The comparison as a table: a column per model (its source under its name), a row per metric; the first column
 * is the baseline of every ratio. */
export function compareTable(result: CompareResult): string {
  const head = result.columns.map((c, index) => `<th title="${esc(c.modelPath)}">${esc(c.label)}`
    + `<div class="source">${index === 0 ? 'baseline · ' : ''}${esc(c.candidate)} · ${esc(c.source)}</div></th>`).join('');
  const rows = result.rows.map((row) => `<tr data-key="${esc(row.key)}"><th>${esc(row.label)}</th>`
    + row.cells.map((cell, index) => cellHtml(cell, index === 0)).join('') + '</tr>').join('');
  return `<table class="compare"><thead><tr><th>metric</th>${head}</tr></thead><tbody>${rows}</tbody></table>`;
}

export function comparePage(result: CompareResult): string {
  const warnings = result.warnings.length
    ? `<ul class="warnings">${result.warnings.map((w) => `<li>${esc(w)}</li>`).join('')}</ul>` : '';
  const plots = result.plots.filter((p) => BASE64.test(p.png)).map((p) => `<figure><img alt="${esc(p.caption)}" `
    + `src="data:image/png;base64,${p.png}"><figcaption>${esc(p.caption)}</figcaption></figure>`).join('\n');
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">`
    + `<meta http-equiv="Content-Security-Policy" content="${COMPARE_CSP}"><style>${CSS}</style></head><body>`
    + `<h2>Compared: ${result.columns.map((c) => esc(c.label)).join(' · ')}</h2>`
    + '<p>Ratios are against the first column (the baseline); green is better, red worse, in each metric\'s '
    + 'direction (↑ higher is better, ↓ lower is better); bold marks the best value.</p>'
    + compareTable(result) + warnings + (plots ? `<h3>Plots</h3>\n${plots}` : '') + '</body></html>';
}
