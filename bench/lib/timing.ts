// Timing GPU work. A GPU op returns as soon as it is recorded, so a case here is a *batch*:
// record `reps` ops (one submit for our engine, tfjs's own batching for tfjs), then wait until
// the GPU has finished them all. benny drives the batches: its cases may return a promise, and
// benchmark.js stops the clock only when that promise resolves, i.e. after the GPU work is done.
// Time per op = benny's median batch time / reps; batching hides the fixed submit+wait latency.
// The process's CPU time per op is recorded too: the CPU driver (lavapipe) runs its workers in
// this process, so on cores shared with other jobs it is a steadier figure than the wall clock.
import { add, complete, configure, cycle, suite } from 'benny';
import type { Runtime } from '../../engine/index.js';
import type { Tfjs } from './tfjs.js';
import type { Tensor as TfTensor } from '@tensorflow/tfjs-core';

export interface Workload {
  /** Label of the problem (e.g. '1024x1024x1024'), the row of the report. */
  label: string;
  flops: number;
  /** Bytes that must move at least once (operands read, result written). */
  bytes: number;
}

export interface Case {
  /** Column of the report: 'ours', 'tfjs', 'naive', ... */
  name: string;
  /** Records `reps` ops and resolves when the GPU has finished all of them. */
  batch(reps: number): Promise<void>;
  /** Frees what the case allocated. */
  dispose?(): void;
}

export interface Measurement {
  workload: string;
  name: string;
  msPerOp: number;
  /** Fastest batch, per op: the least disturbed by other processes on shared cores. */
  msPerOpMin: number;
  gflops: number;
  gbps: number;
  reps: number;
  samples: number;
  /** benny's relative margin of error of the batch time, in percent. */
  rmePercent: number;
  /** Process CPU time (all threads) per op over the timed batches. */
  cpuMsPerOp: number;
}

export interface TimingOptions {
  /** Calibrate reps so that one batch lasts about this long. */
  targetBatchMs: number;
  maxReps: number;
  minSamples: number;
  /** Seconds benny may spend sampling one case (it stops earlier only after minSamples). */
  maxTime: number;
}

/** The middle value (the mean of the two middle ones for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export const DEFAULT_TIMING: TimingOptions = { targetBatchMs: 250, maxReps: 64, minSamples: 5, maxTime: 2 };
export const QUICK_TIMING: TimingOptions = { targetBatchMs: 100, maxReps: 16, minSamples: 2, maxTime: 0.5 };

/** A case of our engine: `recordOne` records one op; the batch is submitted once and awaited. */
export function engineCase(name: string, rt: Runtime, recordOne: () => void, dispose?: () => void): Case {
  return {
    name,
    async batch(reps) {
      for (let i = 0; i < reps; i++) recordOne();
      await rt.sync();
    },
    dispose,
  };
}

/** A tfjs case: `runOne` returns the op's output, which is freed once the next op is queued. */
export function tfjsCase(name: string, tfjs: Tfjs, runOne: () => TfTensor, dispose?: () => void): Case {
  return {
    name,
    async batch(reps) {
      for (let i = 0; i < reps; i++) runOne().dispose();
      await tfjs.sync();
    },
    dispose,
  };
}

/**
 * Times every case on one workload: warm-up (pipeline compilation), calibration of reps per
 * batch, then benny samples batches. Cases run one after another, never overlapping.
 */
export async function measureCases(
  suiteName: string,
  work: Workload,
  cases: Case[],
  opts: TimingOptions = DEFAULT_TIMING,
): Promise<Measurement[]> {
  const reps = new Map<string, number>();
  const cpu = new Map<string, { us: number; ops: number }>();
  for (const c of cases) {
    await c.batch(1);
    const t0 = performance.now();
    await c.batch(1);
    const single = Math.max(performance.now() - t0, 1e-3);
    reps.set(c.name, Math.max(1, Math.min(opts.maxReps, Math.round(opts.targetBatchMs / single))));
  }
  const summary = await suite(
    `${suiteName} ${work.label}`,
    configure({ cases: { minSamples: opts.minSamples, maxTime: opts.maxTime, delay: 0 } }),
    ...cases.map((c) => {
      const n = reps.get(c.name)!;
      // benny calls the returned function once to see whether it returns a promise; that
      // probe must not start GPU work, or it would overlap the first timed batch.
      let probed = false;
      return add(`${c.name} (${n} per batch)`, () => () => {
        if (!probed) {
          probed = true;
          return Promise.resolve();
        }
        const c0 = process.cpuUsage();
        return c.batch(n).then(() => {
          const d = process.cpuUsage(c0);
          const acc = cpu.get(c.name) ?? { us: 0, ops: 0 };
          cpu.set(c.name, { us: acc.us + d.user + d.system, ops: acc.ops + n });
        });
      });
    }),
    cycle(),
    complete(),
  );
  return cases.map((c, i) => {
    const r = summary.results[i];
    const n = reps.get(c.name)!;
    const ms = (r.details.median * 1000) / n;
    const used = cpu.get(c.name);
    return {
      workload: work.label,
      name: c.name,
      msPerOp: ms,
      msPerOpMin: (r.details.min * 1000) / n,
      gflops: work.flops / (ms * 1e6),
      gbps: work.bytes / (ms * 1e6),
      reps: n,
      samples: r.samples,
      rmePercent: r.margin,
      cpuMsPerOp: used ? used.us / 1000 / used.ops : NaN,
    };
  });
}
