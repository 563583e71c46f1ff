// The Chrome trace of a profiled ResNet-18 DenseCL training step, read back the way a
// Chrome-trace parser (Perfetto, chrome://tracing) reads it: after JSON round-tripping, the
// tracks are found by their thread_name metadata, and the conv, batch-norm and loss kernels must
// sit on the GPU track with positive durations, the ops that recorded them on the CPU track.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu, randomArray, TINY_TRAINER } from './helpers.js';
import { runtime, chromeTrace } from '../engine/index.js';
import { Trainer } from '../train/trainer.js';

interface TraceEvent {
  name: string;
  ph: string;
  pid?: number;
  tid?: number;
  ts?: number;
  dur?: number;
  args?: Record<string, unknown>;
}

const t = suite('profile trace');

t('a ResNet-18 DenseCL step exports a trace with conv, batch-norm and loss kernels on the GPU track', async () => {
  await gpu();
  const rt = runtime();
  const trainer = new Trainer(rt, { ...TINY_TRAINER, arch: 'resnet18', seed: 3 });
  try {
    const n = 4 * 3 * 16 * 16;
    await trainer.trainStep(randomArray(n, 1), randomArray(n, 2)); // warm-up: compiles the pipelines
    const { stats, profile } = await trainer.profileStep(randomArray(n, 3), randomArray(n, 4));
    assert.ok(Number.isFinite(stats.loss), 'the profiled step still trains');

    const text = JSON.stringify(chromeTrace(profile));
    const trace = JSON.parse(text) as { traceEvents: TraceEvent[] };
    assert.ok(Array.isArray(trace.traceEvents), 'traceEvents is an array');
    const track = (prefix: string) => {
      const meta = trace.traceEvents.find(
        (e) => e.ph === 'M' && e.name === 'thread_name' && String(e.args?.name ?? '').startsWith(prefix),
      );
      assert.ok(meta, `a thread_name track starting with '${prefix}'`);
      return { pid: meta!.pid, tid: meta!.tid };
    };
    const cpu = track('CPU');
    const gpuTrack = track('GPU');
    assert.not.equal(cpu.tid, gpuTrack.tid, 'CPU and GPU on separate tracks');

    const complete = trace.traceEvents.filter((e) => e.ph === 'X');
    for (const e of complete) {
      assert.ok(typeof e.ts === 'number' && Number.isFinite(e.ts), `${e.name}: ts is a number`);
      assert.ok(typeof e.dur === 'number' && Number.isFinite(e.dur), `${e.name}: dur is a number`);
      assert.ok(typeof e.pid === 'number' && typeof e.tid === 'number', `${e.name}: pid and tid are numbers`);
    }
    const on = (tr: { pid?: number; tid?: number }) => complete.filter((e) => e.pid === tr.pid && e.tid === tr.tid);
    const gpuEvents = on(gpuTrack);
    const cpuEvents = on(cpu);
    assert.is(gpuEvents.length, profile.records.length, 'one GPU event per dispatch');
    assert.is(cpuEvents.length, profile.records.length, 'one CPU event per dispatch');

    // chromeTrace clamps a zero duration to 1 ns so that viewers draw it; a family of kernels
    // must have real time, not only clamped events, so compare against the records too.
    // contrastive_: the kernels of whichever loss variant this device runs.
    for (const family of ['conv2d', 'batchnorm_', 'contrastive_']) {
      const evs = gpuEvents.filter((e) => e.name.startsWith(family));
      assert.ok(evs.length > 0, `GPU track has ${family} kernels`);
      assert.ok(
        evs.every((e) => e.dur! > 0),
        `${family}: every duration is positive`,
      );
      const total = evs.reduce((s, e) => s + e.dur!, 0);
      assert.ok(
        total > 0.001 * evs.length,
        `${family}: measured time (${total.toFixed(3)} us over ${evs.length} kernels), not only clamped zeros`,
      );
    }
    const convs = gpuEvents.filter((e) => e.name.startsWith('conv2d')).length;
    assert.ok(convs >= 20 * 2, `ResNet-18 forward + backward has many conv kernels, got ${convs}`);

    // The CPU track names the ops that recorded the kernels.
    const ops = new Set(cpuEvents.map((e) => e.name));
    for (const op of ['conv2d', 'contrastive']) {
      assert.ok(
        [...ops].some((o) => o.includes(op)),
        `CPU track has a ${op} op (ops: ${[...ops].slice(0, 20).join(', ')})`,
      );
    }
    assert.ok(
      [...ops].some((o) => /batch_?norm/i.test(o)),
      'CPU track has a batch-norm op',
    );
    // Each GPU event carries the op that dispatched it.
    assert.ok(
      gpuEvents.every((e) => typeof e.args?.op === 'string' && (e.args.op as string).length > 0),
      'GPU events name their op',
    );
  } finally {
    trainer.destroy();
  }
});

t.run();
