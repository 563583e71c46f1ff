import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu } from './helpers.js';
import { runtime, randn, matmul, relu, sum, profile, aggregate, chromeTrace, formatTable } from '../engine/index.js';

const t = suite('profiler');

t('times every dispatch with one readback per submission and exports a trace', async () => {
  await gpu();
  const rt = runtime();
  const a = randn([64, 64], 1);
  const b = randn([64, 64], 2);
  const before = rt.stats.submits;
  const result = await profile(rt, () => {
    for (let i = 0; i < 3; i++) relu(matmul(a, b)).dispose();
    sum(a).dispose();
  });
  assert.is(result.method, rt.hasTimestamps ? 'timestamps' : 'coarse');
  const kernels = result.records.map((r) => r.kernel.split('[')[0]);
  assert.equal(kernels.filter((k) => k.startsWith('matmul')).length, 3);
  assert.ok(kernels.includes('reduce_sum'));
  for (const r of result.records) {
    assert.ok(r.gpuMs >= 0 && r.endMs >= r.startMs, `${r.kernel} has a valid interval`);
  }
  if (rt.hasTimestamps) assert.is(rt.stats.submits - before, 1, 'one submission for the whole profiled block');
  const rows = aggregate(result.records, 'kernel');
  const mm = rows.find((r) => r.name.startsWith('matmul'))!;
  assert.is(mm.calls, 3);
  assert.ok(Math.abs(rows.reduce((s, r) => s + r.share, 0) - 1) < 1e-9);
  assert.ok(mm.gflops > 0, 'FLOPs come from the op');
  assert.match(formatTable(rows, 'kernels'), /matmul/);
  const trace = JSON.parse(JSON.stringify(chromeTrace(result))) as { traceEvents: { ph: string; tid?: number; dur?: number; name: string }[] };
  const gpuEvents = trace.traceEvents.filter((e) => e.ph === 'X' && e.tid === 2);
  assert.is(gpuEvents.length, result.records.length);
  assert.ok(gpuEvents.every((e) => (e.dur ?? 0) > 0));
});

t.run();
