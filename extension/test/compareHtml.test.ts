import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { COMPARE_CSP, comparePage, compareTable, CompareCell, CompareResult } from '../src/compareHtml';

const cell = (fields: Partial<CompareCell>): CompareCell => ({
  value: null, text: '–', ratio: null, ratioText: '', better: null, best: false, ...fields,
});

/** A comparison as modelmill.compare answers it (typed by contracts.generated.ts; the server computed every text,
 * ratio and direction: server/modelmill/evaluate/comparison.py). */
const RESULT: CompareResult = {
  columns: [
    { label: 'smollm2-fp32', source: '20261130-101500-aaaaaa', candidate: 'model', modelPath: '/ws/models/smollm2-fp32' },
    { label: 'smollm2-int4', source: '/ws/models/smollm2-int4', candidate: 'c2', modelPath: '/ws/models/smollm2-int4' },
    { label: '<b>odd</b>', source: 'r3', candidate: 'compare', modelPath: '/ws/x' },
  ],
  rows: [
    { key: 'llm-prefill_ms', label: 'llm-prefill_ms (ms) ↓', metricType: 'llm', unit: 'ms', higherIsBetter: false, cells: [
      cell({ value: 150, text: '150.0' }),
      cell({ value: 75, text: '75', ratio: 0.5, ratioText: '0.5x', better: true, best: true }),
      cell({ value: 300, text: '300.0', ratio: 2, ratioText: '2x', better: false }),
    ] },
    { key: 'size-bytes', label: 'size-bytes ↓', metricType: 'size_on_disk', unit: 'bytes', higherIsBetter: false, cells: [
      cell({}),
      cell({ value: 90 * 2 ** 20, text: '90 MiB', best: true }),
      cell({ value: 500 * 2 ** 20, text: '500 MiB' }),
    ] },
  ],
  plots: [{ caption: 'llm-prefill_ms', png: 'iVBORw0KGgo=' }, { caption: 'bad', png: '"><script>alert(1)</script>' }],
  warnings: ['size-bytes was not measured on smollm2-fp32'],
};

describe('the compare view', () => {
  it('lays out a column per model and a row per metric, the first column the baseline', () => {
    const html = compareTable(RESULT);
    assert.equal((html.match(/<tr data-key=/g) ?? []).length, 2);
    assert.match(html, /<th title="\/ws\/models\/smollm2-fp32">smollm2-fp32<div class="source">baseline · model · 20261130-101500-aaaaaa<\/div><\/th>/);
    assert.match(html, /<th>llm-prefill_ms \(ms\) ↓<\/th><td class="num" data-better="same"><span class="value">150\.0<\/span><span class="ratio">baseline<\/span><\/td>/);
  });

  it('shows each ratio with better / worse in the metric direction and marks the best value', () => {
    const html = compareTable(RESULT);
    assert.match(html, /<td class="num best" data-better="better"><span class="value">75<\/span><span class="ratio better" title="better than the baseline">0\.5x<\/span><\/td>/);
    assert.match(html, /<td class="num" data-better="worse"><span class="value">300\.0<\/span><span class="ratio worse" title="worse than the baseline">2x<\/span><\/td>/);
  });

  it('leaves a gap where a model lacks a metric, with no ratio against a missing baseline', () => {
    const size = compareTable(RESULT).split('<tr data-key="size-bytes">')[1];
    assert.match(size, /^<th>size-bytes ↓<\/th><td class="num" data-better="same"><span class="value">–<\/span><span class="ratio">baseline<\/span><\/td>/);
    assert.match(size, /<td class="num best" data-better="same"><span class="value">90 MiB<\/span><\/td>/);
  });

  it('escapes names, lists warnings and embeds only real base64 plots, under a script-free policy', () => {
    const page = comparePage(RESULT);
    assert.ok(page.includes(`content="${COMPARE_CSP}"`) && !COMPARE_CSP.includes('script'));
    assert.ok(page.includes('&lt;b&gt;odd&lt;/b&gt;') && !page.includes('<b>odd</b>'));
    assert.match(page, /<li>size-bytes was not measured on smollm2-fp32<\/li>/);
    assert.match(page, /<img alt="llm-prefill_ms" src="data:image\/png;base64,iVBORw0KGgo=">/);
    assert.ok(!page.includes('<script>') && !page.includes('alt="bad"'));
  });
});
