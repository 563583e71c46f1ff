// Memory benchmark: GPU bytes held by the engine's buffer pool (runtime().memory()) over
// training steps of a ResNet-18 DenseCL model (the profiler suite's model) at two batch sizes.
// After every step live bytes must return to the level of the step before (no growth: every
// temporary freed, the pool reuses its buffers); the peak within a step, less what stays live,
// is the step's working set, reported per image.
// Sizes: MEMORY_WIDTH (0.25), MEMORY_BATCHES ("8,16"), MEMORY_IMG (32), MEMORY_STEPS (4).
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { cpus, loadavg } from 'node:os';
import { Rng } from '../engine/index.js';
import { Trainer, type TrainerOptions } from '../train/trainer.js';
import { profiledModel } from './profiler.js';
import type { BenchContext } from './lib/context.js';

const MiB = 1024 * 1024;
const mib = (b: number) => (b / MiB).toFixed(2);

interface StepMemory {
  step: number;
  liveBefore: number;
  liveAfter: number;
  pooledAfter: number;
  peak: number;
  buffersCreated: number;
}

interface BatchMemory {
  batch: number;
  /** Live pool bytes once the trainer exists, before any step. */
  liveModel: number;
  /** Bytes of the trainer's own stores (weights, gradients, BN buffers, momentum, queues): outside the pool. */
  storeBytes: number;
  steps: StepMemory[];
  /** Largest change of live bytes across a step, over the measured steps. */
  growth: number;
  peak: number;
  workingSet: number;
  workingSetPerImage: number;
  /** Bytes the captured program of a replayed step owns (its buffers replace the pool's working set). */
  programBytes: number;
}

/** Bytes owned by the captured step of a replaying trainer, after its first replay. */
async function capturedBytes(
  rt: BenchContext['rt'],
  options: Partial<TrainerOptions>,
  q: Float32Array,
  k: Float32Array,
): Promise<number> {
  const trainer = new Trainer(rt, options);
  try {
    for (let i = 0; i < 3; i++) await trainer.trainStep(q, k);
    return rt.memory().bytesCaptured;
  } finally {
    trainer.destroy();
  }
}

export async function run(ctx: BenchContext): Promise<void> {
  const { rt } = ctx;
  const width = Number(process.env.MEMORY_WIDTH ?? 0.25);
  const S = Number(process.env.MEMORY_IMG ?? 32);
  const batches = (process.env.MEMORY_BATCHES ?? '8,16').split(',').map(Number);
  const nSteps = Number(process.env.MEMORY_STEPS ?? (process.env.BENCH_QUICK ? 3 : 4));
  const label = `DenseCL ResNet-18 (width ${width}, small stem), ${S}x${S}`;
  const results: BatchMemory[] = [];

  for (const B of batches) {
    await rt.sync();
    rt.pool.trim();
    const options = profiledModel(width, B, S);
    // Eager steps: the pool's working set. A replayed step instead runs in buffers its program owns (below).
    const trainer = new Trainer(rt, options, { replay: false });
    try {
      await rt.sync();
      const liveModel = rt.memory().bytesLive;
      const m0 = trainer.model;
      const stores = [
        m0.query.params,
        m0.query.grads,
        m0.query.buffers,
        m0.key.params,
        m0.key.grads,
        m0.key.buffers,
        m0.queues,
        trainer.sgd.momentum,
      ];
      const storeBytes = stores.reduce((s, x) => s + x.buffer.size, 0);
      const rng = new Rng(B);
      const [q, k] = [0, 1].map(() => Float32Array.from({ length: B * 3 * S * S }, () => rng.normal()));
      const steps: StepMemory[] = [];
      // Step 0 is the warm-up (it fills the pool); steps 1.. are the measured ones.
      for (let i = 0; i <= nSteps; i++) {
        await rt.sync();
        const liveBefore = rt.memory().bytesLive;
        rt.pool.resetPeak();
        await trainer.trainStep(q, k);
        await rt.sync();
        const m = rt.memory();
        steps.push({
          step: i,
          liveBefore,
          liveAfter: m.bytesLive,
          pooledAfter: m.bytesPooled,
          peak: m.peakBytesLive,
          buffersCreated: m.buffersCreated,
        });
      }
      const measured = steps.slice(1);
      const growth = Math.max(...measured.map((s) => Math.abs(s.liveAfter - s.liveBefore)));
      const peak = Math.max(...measured.map((s) => s.peak));
      const workingSet = peak - Math.min(...measured.map((s) => s.liveBefore));
      const programBytes = await capturedBytes(rt, options, q, k);
      results.push({
        batch: B,
        liveModel,
        storeBytes,
        steps,
        growth,
        peak,
        workingSet,
        workingSetPerImage: workingSet / B,
        programBytes,
      });
      console.log(
        `  batch ${B}: live ${mib(measured[0].liveBefore)} MiB between steps, peak ${mib(peak)} MiB, working set ${mib(workingSet / B)} MiB per image, growth ${growth} B`,
      );
    } finally {
      trainer.destroy();
    }
  }

  const stepTable = [
    '| batch | step | live before MiB | live after MiB | change bytes | peak in step MiB | pooled after MiB | buffers created (total) |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...results.flatMap((r) =>
      r.steps.map(
        (s) =>
          `| ${r.batch} | ${s.step === 0 ? '0 (warm-up)' : s.step} | ${mib(s.liveBefore)} | ${mib(s.liveAfter)} | ${s.liveAfter - s.liveBefore} | ${mib(s.peak)} | ${mib(s.pooledAfter)} | ${s.buffersCreated} |`,
      ),
    ),
  ].join('\n');
  const summary = [
    "| batch | model stores MiB (outside the pool) | pool live after creating the trainer MiB | pool live between steps MiB | peak in a step MiB | working set (peak - live) MiB | per image MiB | largest live change over a step (bytes) | replayed step's program MiB |",
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...results.map(
      (r) =>
        `| ${r.batch} | ${mib(r.storeBytes)} | ${mib(r.liveModel)} | ${mib(r.steps[1].liveBefore)} | ${mib(r.peak)} | ${mib(r.workingSet)} | ${mib(r.workingSetPerImage)} | ${r.growth} | ${mib(r.programBytes)} |`,
    ),
  ].join('\n');
  const noGrowth = results.every((r) => r.growth === 0);
  const [a, b] = [results[0], results[results.length - 1]];
  const slope = results.length > 1 ? (b.workingSet - a.workingSet) / (b.batch - a.batch) : NaN;
  const notes = [
    `Bytes are the engine's buffer pool: live = held by tensors, pooled = freed buffers kept for reuse, peak = most live at once since the step began (the pool's peak is reset before each step). Step 0 is the warm-up and is not counted.`,
    noGrowth
      ? `Live bytes return to exactly the same level after every measured step at every batch size: no growth.`
      : `Live bytes change across a step (largest change ${Math.max(...results.map((r) => r.growth))} bytes): see the per-step table.`,
    results.length > 1
      ? `Working set grows by ${mib(slope)} MiB per extra image between batch ${a.batch} and ${b.batch} (activations kept for the backward pass, both encoders' features); the rest is fixed per step.`
      : '',
    `The working set is measured on eager steps. The trainer replays its steps from a captured program, which owns the buffers the captured step used, reused within the step as in an eager one: the last column (the pool then holds nothing for the step).`,
    `The pool holds the tensors of a step; the model's stores (weights and gradients of both encoders, BN running statistics, SGD momentum, queues) are buffers of their own, outside the pool, listed separately. A step's peak GPU footprint is about stores + peak.`,
  ].filter(Boolean);
  const dir = join(process.cwd(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const date = new Date().toISOString();
  const load = loadavg().map((x) => x.toFixed(2));
  writeFileSync(
    join(dir, 'memory.json'),
    JSON.stringify(
      {
        suite: 'memory',
        adapter: ctx.adapter,
        date,
        model: label,
        config: { width, img: S, batches, steps: nSteps },
        results,
        noGrowth,
        workingSetPerExtraImage: slope,
      },
      null,
      2,
    ) + '\n',
  );
  const md = [
    '# Benchmark: memory',
    '',
    `Adapter: ${ctx.adapter}  `,
    `Date: ${date}, Node ${process.version}, ${cpus().length} CPU cores, load average ${load.join(' / ')}`,
    '',
    `Model: ${label}, ${nSteps} measured steps after one warm-up step per batch size.`,
    '',
    summary,
    '',
    ...notes.map((n) => `- ${n}`),
    '',
    '## Per step',
    '',
    stepTable,
    '',
  ].join('\n');
  writeFileSync(join(dir, 'memory.md'), md);
  console.log(`\n${summary}\n\n${notes.join('\n')}`);
}
