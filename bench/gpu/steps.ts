// Our engine's training step as `densecl pretrain` runs it: train/trainer.ts's Trainer, one step
// in flight (the next step is recorded while the GPU runs the last; its figures are read one
// step late), on synthetic views that stay the same every step. Per step: the wall time between
// the completions of consecutive steps, the time and process CPU time of recording it (the
// synchronous part of trainStep, before any wait), and from one extra profiled step the summed
// kernel time, so kernel time / wall time says how busy the GPU was.
import { aggregate, Rng, type AggregateRow, type Peak, type Runtime } from '../../engine/index.js';
import { Trainer, type TrainerOptions } from '../../train/trainer.js';
import type { Method } from '../../models/densecl.js';
import { median } from '../lib/timing.js';

export interface StepFigures {
  setting: string;
  method: Method;
  options: TrainerOptions;
  /** Wall ms of each timed step (completion to completion). */
  wallMs: number[];
  medianMs: number;
  imagesPerSec: number;
  /** Median wall ms and process CPU ms spent recording a step. */
  recordMs: number;
  recordCpuMs: number;
  /** Summed GPU time of the kernels of one profiled step. */
  kernelMs: number;
  /** kernelMs / medianMs. */
  gpuBusy: number;
  dispatches: number;
  profileMethod: string;
  /** Losses of the first and last timed steps (finite, or the step is broken). */
  losses: [number, number];
  topKernels: AggregateRow[];
}

export async function measureSteps(
  rt: Runtime,
  setting: { label: string; options: TrainerOptions },
  method: Method,
  counts: { warmupSteps: number; timedSteps: number },
  peak: Peak,
): Promise<StepFigures> {
  if (counts.warmupSteps < 1)
    throw new Error('gpu bench: at least one warm-up step is needed (the first timed step is measured from its end)');
  const o = { ...setting.options, method };
  const trainer = new Trainer(rt, o);
  try {
    const rng = new Rng(1234);
    const n = o.batchSize * 3 * o.imgSize * o.imgSize;
    const q = Float32Array.from({ length: n }, () => rng.normal());
    const k = Float32Array.from({ length: n }, () => rng.normal());
    const total = counts.warmupSteps + counts.timedSteps;
    const done: number[] = [];
    const recordMs: number[] = [];
    const recordCpuMs: number[] = [];
    const losses: number[] = [];
    let pending: Promise<unknown> | null = null;
    const settle = async (): Promise<void> => {
      if (!pending) return;
      await pending;
      pending = null;
      done.push(performance.now());
    };
    for (let i = 0; i < total; i++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const stats = trainer.trainStep(q, k);
      const t1 = performance.now();
      const cpu = process.cpuUsage(c0);
      if (i >= counts.warmupSteps) {
        recordMs.push(t1 - t0);
        recordCpuMs.push((cpu.user + cpu.system) / 1000);
      }
      await settle();
      pending = stats.then((s) => losses.push(s.loss));
    }
    await settle();
    // Completion times of the timed steps, and of the step before the first of them.
    const ends = done.slice(counts.warmupSteps - 1);
    const wallMs = ends.slice(1).map((t, i) => t - ends[i]);
    const timedLosses = losses.slice(counts.warmupSteps);
    const { profile } = await trainer.profileStep(q, k);
    const kernelMs = profile.records.reduce((s, r) => s + r.gpuMs, 0);
    const last = timedLosses[timedLosses.length - 1];
    if (!timedLosses.every(Number.isFinite))
      throw new Error(
        `gpu bench: ${setting.label} ${method}: a loss became ${timedLosses.find((x) => !Number.isFinite(x))}`,
      );
    const medianMs = median(wallMs);
    return {
      setting: setting.label,
      method,
      options: o,
      wallMs,
      medianMs,
      imagesPerSec: (o.batchSize * 1000) / medianMs,
      recordMs: median(recordMs),
      recordCpuMs: median(recordCpuMs),
      kernelMs,
      gpuBusy: kernelMs / medianMs,
      dispatches: profile.records.length,
      profileMethod: profile.method,
      losses: [timedLosses[0], last],
      topKernels: aggregate(profile.records, 'kernel', peak).slice(0, 10),
    };
  } finally {
    trainer.destroy();
  }
}
