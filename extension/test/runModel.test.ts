import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { formatBytes, formatDuration, formatValue, MAX_LOG_LINES, RunEvent, RunStore } from '../src/runModel';
import { renderRun } from '../src/runsHtml';
import { Throttle, Timers } from '../src/throttle';

const FIXTURES = path.join(__dirname, '..', '..', '..', 'extension', 'test', 'fixtures');
/** A real event stream: `modelmill run --events` on a tiny Llama, ModelBuilder int4 + size_on_disk. */
const realRun = (): RunEvent[] => fs.readFileSync(path.join(FIXTURES, 'tiny-run.events.jsonl'), 'utf8')
  .split('\n').filter(Boolean).map((line) => JSON.parse(line) as RunEvent);

function stream(runId: string) {
  let seq = 0;
  let ts = 1000;
  return (type: string, fields: Record<string, unknown> = {}): RunEvent => ({ v: 1, type, run_id: runId, ts: ts++, seq: seq++, ...fields });
}

describe('RunStore on a real run', () => {
  const events = realRun();
  const store = new RunStore();
  const runId = events[0].run_id;
  store.setLabel(runId, 'tiny_optimize.json');
  for (const e of events) store.apply(e);
  const run = store.get(runId)!;

  it('reaches done with the pass, its duration and the run duration', () => {
    assert.equal(run.status, 'succeeded');
    assert.equal(run.label, 'tiny_optimize.json');
    assert.equal(run.percent, 100);
    assert.deepEqual(run.passes.map((p) => [p.name, p.type, p.candidate, p.state, p.durationS]),
      [['model_builder', 'ModelBuilder', 'c1', 'done', 17.132]]);
    assert.equal(run.durationS, 17.251);
    assert.match(run.step, /^done in 17\.3 s$/);
    assert.equal(run.outputDir, '/tmp/mmws/out1');
    assert.equal(run.device, 'cpu');
    assert.equal(run.executionProvider, 'CPUExecutionProvider');
  });

  it('keeps each candidate\'s metrics as a table, with the best candidate', () => {
    assert.deepEqual(run.metricKeys, ['size-bytes']);
    assert.equal(run.metricUnits['size-bytes'], 'bytes');
    assert.deepEqual(run.candidates.map((c) => [c.id, c.metrics['size-bytes'], c.state, c.accepted, c.isInput]),
      [['input', 560488, 'evaluated', true, true], ['c1', 233534, 'evaluated', true, false]]);
    assert.equal(run.bestCandidate, 'c1');
    assert.equal(run.evaluated, true);
    assert.equal(run.missing, 0);
    assert.equal(run.events, events.length);
  });

  it('keeps log lines in order, with their level and pass', () => {
    assert.equal(run.logs.length, events.filter((e) => e.type === 'log').length);
    assert.deepEqual(run.logs[0].source, 'model_builder');
    assert.match(run.logs[0].message, /onnxruntime-genai builder: precision=int4/);
  });

  it('renders the card with status, metrics, best candidate and buttons', () => {
    const html = renderRun(run);
    assert.match(html, /data-status="done"/);
    assert.match(html, /<th>size-bytes<\/th>/); // the cells name their unit: sizes in human units
    assert.match(html, /228 KiB/); // 233,534 bytes
    assert.doesNotMatch(html, /233,534/);
    assert.match(html, /★ <b>c1<\/b>/);
    assert.match(html, /data-action="reveal"/);
    assert.match(html, /data-action="report"/);
    assert.doesNotMatch(html, /data-action="cancel"/);
  });

  it('follows the percentage while the pass runs', () => {
    const partial = new RunStore();
    const upTo = events.findIndex((e) => e.type === 'pass.progress' && e.fraction === 0.6);
    for (const e of events.slice(0, upTo + 1)) partial.apply(e);
    const view = partial.get(runId)!;
    assert.equal(view.status, 'running');
    assert.equal(view.percent, 60);
    assert.equal(view.passes[0].state, 'running');
    assert.match(view.step, /^c1 · model_builder: Reading layer 1$/);
    assert.match(renderRun(view), /data-action="cancel"/);
    assert.deepEqual(partial.active().map((r) => r.runId), [runId]);
  });
});

describe('RunStore on a real fine-tuning run', () => {
  // `modelmill finetune --events` on a tiny Llama: 4 LoRA steps, eval at steps 0, 2 and 4.
  const events = fs.readFileSync(path.join(FIXTURES, 'tiny-finetune.events.jsonl'), 'utf8')
    .split('\n').filter(Boolean).map((line) => JSON.parse(line) as RunEvent);
  const store = new RunStore();
  for (const e of events) store.apply(e);
  const run = store.get(events[0].run_id)!;
  const steps = events.filter((e) => e.type === 'train.step');
  const evals = events.filter((e) => e.type === 'train.eval');

  it('keeps the last step, loss, learning rate and eval losses', () => {
    assert.equal(run.status, 'succeeded');
    const last = steps[steps.length - 1];
    assert.deepEqual([run.training?.pass, run.training?.step, run.training?.maxSteps], ['lora', 4, 4]);
    assert.equal(run.training?.loss, last.loss);
    assert.equal(run.training?.learningRate, last.learning_rate);
    assert.equal(run.training?.firstEvalLoss, evals[0].eval_loss);
    assert.equal(run.training?.evalLoss, evals[evals.length - 1].eval_loss);
    assert.equal(run.training?.evalStep, 4);
    assert.equal(run.logs.filter((l) => l.message.startsWith('eval loss')).length, evals.length);
  });

  it('renders a training line on the card', () => {
    const html = renderRun(run);
    assert.match(html, /<div class="training"><b>lora<\/b> training: step 4\/4 · loss [0-9.]+ · eval loss [0-9.]+/);
    assert.doesNotMatch(html, / · eta /); // finished: no eta
  });
});

describe('RunStore on a Ray cluster run', () => {
  // Field names as in docs/events.md: remote events carry node, node_ip and worker.
  const store = new RunStore();
  const e = stream('ray');
  const at = (ip: string) => ({ node: `${ip.replace(/\./g, '')}abcdef0123`, node_ip: ip, worker: `h-${ip}` });
  store.apply(e('run.started', { plan: { output_dir: '/out/s' } }));
  store.apply(e('cluster.connected', { system: 'cluster', address: '127.0.0.1:6379', max_concurrent: 2,
                                       nodes: [{ node: 'a' }, { node: 'b' }] }));
  store.apply(e('candidate.started', { candidate: 'c1', params: { 'q.block_size': 32 }, ...at('10.0.0.1') }));
  store.apply(e('pass.started', { candidate: 'c1', pass_name: 'q', pass_type: 'ModelBuilder', index: 0, total: 1,
                                  ...at('10.0.0.1') }));
  store.apply(e('candidate.retried', { candidate: 'c1', attempt: 2, max_attempts: 3, reason: 'worker died',
                                       ...at('10.0.0.1') }));
  store.apply(e('candidate.started', { candidate: 'c1', params: { 'q.block_size': 32 }, attempt: 2,
                                       ...at('10.0.0.2') }));
  store.apply(e('pass.started', { candidate: 'c1', pass_name: 'q', pass_type: 'ModelBuilder', index: 0, total: 1,
                                  ...at('10.0.0.2') }));
  store.apply(e('candidate.evaluated', { candidate: 'c1', params: { 'q.block_size': 32 }, metrics: { 'size-bytes': 5 },
                                         accepted: true, node: '100020abcdef0123', node_ip: '10.0.0.2' }));
  store.apply(e('candidate.started', { candidate: 'c2', params: { 'q.block_size': 64 }, ...at('10.0.0.1') }));
  store.apply(e('candidate.failed', { candidate: 'c2', message: 'lost 3 times', fix: null }));
  const run = store.get('ray')!;

  it('shows which node ran each candidate and pass, and the retry', () => {
    const [c1, c2] = run.candidates;
    assert.deepEqual([c1.node, c1.attempt, c1.state], ['10.0.0.2', 2, 'evaluated']);
    assert.deepEqual([c2.state, c2.message], ['failed', 'lost 3 times']);
    assert.equal(run.passes[0].node, '10.0.0.2');
    assert.ok(run.logs.some((l) => l.level === 'warning' && /retrying \(attempt 2 of 3\): worker died \(was on 10\.0\.0\.1\)/.test(l.message)));
    assert.ok(run.logs.some((l) => /connected to Ray cluster cluster \(2 nodes\)/.test(l.message)));
    const html = renderRun(run);
    assert.match(html, /<th>node<\/th>/);
    assert.match(html, /<td class="node">10\.0\.0\.2 \(try 2\)<\/td>/);
    assert.match(html, /@ 10\.0\.0\.2/);
  });
});

describe('RunStore edge cases', () => {
  it('ignores duplicates and counts lost events', () => {
    const store = new RunStore();
    const e = stream('r1');
    const first = e('run.started', { plan: { output_dir: '/out/x' } });
    store.apply(first);
    assert.equal(store.apply(first), undefined);
    e('log', { level: 'info', message: 'lost' });
    store.apply(e('log', { level: 'info', message: 'kept' }));
    const run = store.get('r1')!;
    assert.equal(run.missing, 1);
    assert.equal(run.events, 2);
    assert.equal(run.label, 'x');
  });

  it('shows a failed run\'s error with its fix, and stops running passes', () => {
    const store = new RunStore();
    const e = stream('r2');
    store.apply(e('run.started', { plan: {} }));
    store.apply(e('pass.started', { pass_name: 'conv', pass_type: 'OnnxConversion', index: 0, total: 2 }));
    store.apply(e('error', { message: 'out of memory', fix: 'use a smaller batch', where: 'passes.conv', kind: 'PassError' }));
    store.apply(e('run.finished', { status: 'failed' }));
    const run = store.get('r2')!;
    assert.equal(run.status, 'failed');
    assert.equal(run.passes[0].state, 'stopped');
    assert.deepEqual(run.error, { message: 'out of memory', fix: 'use a smaller batch', where: 'passes.conv', kind: 'PassError' });
    assert.match(run.step, /^failed: out of memory$/);
    assert.match(renderRun(run), /fix: use a smaller batch/);
  });

  it('marks the candidate that failed in a search, and a cached pass', () => {
    const store = new RunStore();
    const e = stream('r3');
    store.apply(e('run.started', { plan: {} }));
    store.apply(e('candidate.started', { candidate: 'c1', params: { 'q.block_size': 32 } }));
    store.apply(e('pass.started', { candidate: 'c1', pass_name: 'q', pass_type: 'T', index: 0, total: 1 }));
    store.apply(e('pass.finished', { candidate: 'c1', pass_name: 'q', pass_type: 'T', index: 0, duration_s: 0.01, cached: true }));
    store.apply(e('candidate.failed', { params: { 'q.block_size': 32 }, message: 'boom', fix: null }));
    store.apply(e('warning', { message: 'no candidate met every goal; keeping the best one anyway' }));
    store.apply(e('run.finished', { status: 'cancelled' }));
    const run = store.get('r3')!;
    assert.equal(run.passes[0].state, 'cached');
    assert.deepEqual(run.candidates.map((c) => [c.id, c.state, c.message]), [['c1', 'failed', 'boom']]);
    assert.equal(run.warnings.length, 1);
    assert.equal(run.status, 'cancelled');
    assert.equal(run.step, 'cancelled');
  });

  it('ignores unknown event types and non-events', () => {
    const store = new RunStore();
    const e = stream('r4');
    assert.equal(store.apply(e('something.new', { x: 1 })), 'r4');
    assert.equal(store.apply({} as RunEvent), undefined);
    assert.equal(store.get('r4')!.status, 'running');
  });

  it('lists runs newest first, and clears finished ones', () => {
    const store = new RunStore();
    store.apply(stream('a')('run.finished', { status: 'succeeded' }));
    store.apply(stream('b')('run.started', { plan: {} }));
    store.addListed({ runId: 'c', status: 'succeeded', config: '/w/cfg.json', outputDir: '/w/out' });
    assert.deepEqual(store.list().map((r) => r.runId), ['c', 'b', 'a']);
    assert.equal(store.get('c')!.label, 'cfg.json');
    assert.deepEqual(store.clearFinished().sort(), ['a', 'c']);
    assert.deepEqual(store.list().map((r) => r.runId), ['b']);
  });

  it('keeps the log bounded', () => {
    const store = new RunStore();
    const e = stream('r5');
    for (let i = 0; i < 5000; i++) store.apply(e('log', { level: 'debug', message: `line ${i}` }));
    const run = store.get('r5')!;
    assert.ok(run.logs.length <= MAX_LOG_LINES * 1.5);
    assert.equal(run.logs.length + run.droppedLogs, 5000);
    assert.equal(run.logs[run.logs.length - 1].message, 'line 4999');
  });
});

describe('1,000 events a minute', () => {
  /** An hour of a busy search run: 60,000 events (progress, logs, metrics over 200 candidates). */
  function busyRun(count: number): RunEvent[] {
    const e = stream('busy');
    const out: RunEvent[] = [e('run.started', { plan: { output_dir: '/o' } })];
    for (let c = 1; out.length < count; c++) {
      const cand = `c${c}`;
      out.push(e('candidate.started', { candidate: cand, params: { 'q.block_size': 32 } }));
      for (let p = 0; p < 3; p++) {
        out.push(e('pass.started', { candidate: cand, pass_name: `p${p}`, pass_type: 'T', index: p, total: 3 }));
        for (let i = 1; i <= 90; i++) {
          out.push(e('pass.progress', { candidate: cand, pass_name: `p${p}`, fraction: i / 100, message: `step ${i}` }));
          out.push(e('log', { pass_name: `p${p}`, level: 'debug', message: `detail ${i}` }));
        }
        out.push(e('pass.finished', { candidate: cand, pass_name: `p${p}`, pass_type: 'T', index: p, duration_s: 1 }));
      }
      out.push(e('evaluation.started', { candidate: cand, metrics: ['latency-avg', 'size-bytes'] }));
      out.push(e('metric.measured', { candidate: cand, key: 'latency-avg', value: 10 + c, unit: 'ms' }));
      out.push(e('metric.measured', { candidate: cand, key: 'size-bytes', value: 1e6, unit: 'bytes' }));
      out.push(e('candidate.evaluated', { candidate: cand, params: {}, metrics: { 'latency-avg': 10 + c, 'size-bytes': 1e6 }, accepted: true }));
    }
    return out;
  }

  it('reduces an hour of events in well under a second', () => {
    const events = busyRun(60000);
    const store = new RunStore();
    const t0 = performance.now();
    for (const e of events) store.apply(e);
    const ms = performance.now() - t0;
    const run = store.get('busy')!;
    assert.equal(run.events, events.length);
    assert.ok(run.candidates.length > 50);
    assert.ok(ms < 1000, `reducing 60,000 events took ${ms.toFixed(0)} ms`);
  });

  it('renders at most 4 times a second, each render cheap, whatever the event rate', () => {
    // A fake clock: 1,000 events spread over one minute, 20 ms of "time" each render's timer waits.
    let now = 0;
    const queue: { at: number; fn: () => void }[] = [];
    const timers: Timers = {
      setTimeout: (fn, ms) => { const t = { at: now + ms, fn }; queue.push(t); return t; },
      clearTimeout: (t) => { const i = queue.indexOf(t as never); if (i >= 0) queue.splice(i, 1); },
    };
    const advance = (to: number) => {
      for (;;) {
        queue.sort((a, b) => a.at - b.at);
        if (!queue.length || queue[0].at > to) break;
        const t = queue.shift()!;
        now = t.at;
        t.fn();
      }
      now = to;
    };
    const store = new RunStore();
    let renderMs = 0;
    const throttle = new Throttle<string>((ids) => {
      const t0 = performance.now();
      for (const id of ids) renderRun(store.get(id)!, true);
      renderMs += performance.now() - t0;
    }, 250, timers);
    const events = busyRun(1000).slice(0, 1000);
    events.forEach((e, i) => {
      advance(i * 60); // 1,000 events in 60 s
      const id = store.apply(e);
      if (id) throttle.mark(id);
    });
    advance(61000);
    assert.ok(throttle.flushes <= 60000 / 250 + 1, `${throttle.flushes} renders`);
    assert.ok(throttle.flushes >= 200, `${throttle.flushes} renders: the panel must keep up`);
    assert.ok(renderMs / throttle.flushes < 10, `a render took ${(renderMs / throttle.flushes).toFixed(2)} ms on average`);
  });
});

describe('human units', () => {
  it('writes sizes and times as a person reads them', () => {
    assert.equal(formatBytes(512), '512 bytes');
    assert.equal(formatBytes(560488), '547 KiB');
    assert.equal(formatBytes(1.5 * 1024 ** 3), '1.5 GiB');
    assert.equal(formatValue(560488, 'bytes'), '547 KiB');
    assert.equal(formatValue(2500, 'ms'), '2.5 s');
    assert.equal(formatValue(12.5, 'ms'), '12.5 ms'); // under a second: as measured
    assert.equal(formatValue(0.731, 'accuracy'), '0.731 accuracy');
    assert.equal(formatDuration(4000), '1 h 7 min');
    assert.equal(formatDuration(75), '1 min 15 s');
  });
});

describe('formatValue agrees with the server\'s format_value (fixtures/format_value.json, read by a pytest too)', () => {
  const cases = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'format_value.json'), 'utf8'));
  it('writes values as the terminal does', () => {
    for (const c of cases.same) assert.equal(formatValue(c.value, c.unit), c.expected, JSON.stringify(c));
  });
  it('differs only where the fixture says so', () => {
    for (const c of cases.differ) assert.equal(formatValue(c.value, c.unit), c.ts, JSON.stringify(c));
  });
});
