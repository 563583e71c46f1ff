// Recording vs replaying a training step (issue 15): the CPU time to issue one DenseCL step
// through Trainer.trainStep, eagerly (autograd tape, tensors, pool, bind groups per dispatch)
// and replayed from its captured program, side by side on the same adapter, with the
// dispatches per step. "Issue" is the synchronous part of trainStep (until it returns, with the
// step submitted); the GPU is idle when it starts (the previous step was awaited). The step's
// whole wall time is shown too, but on a CPU adapter it measures the driver, not the engine.
// Sizes: REPLAY_ARCH (resnet50), REPLAY_WIDTHS ("0.25,1"), REPLAY_IMG (224), REPLAY_BATCH (32),
// REPLAY_QUEUE (4096: the queue length changes no dispatch), REPLAY_STEPS (3 measured steps).
import { Rng } from '../engine/index.js';
import { Trainer, type TrainerOptions } from '../train/trainer.js';
import type { Arch } from '../models/resnet.js';
import type { BenchContext } from './lib/context.js';
import { median, type Measurement } from './lib/timing.js';
import { writeReport } from './lib/report.js';

interface ModeFigures {
  issueMs: number[];
  issueCpuMs: number[];
  stepMs: number[];
  dispatches: number;
}

/** The modes compared: how the step is issued, and whether its images go up as floats or bytes. */
const MODES = [
  { name: 'eager', replay: false, bytes: false },
  { name: 'replay', replay: true, bytes: false },
  { name: 'replay, byte images', replay: true, bytes: true },
] as const;

async function measure(
  ctx: BenchContext,
  opts: Partial<TrainerOptions>,
  mode: (typeof MODES)[number],
  steps: number,
): Promise<ModeFigures> {
  const { rt } = ctx;
  const B = opts.batchSize!;
  const S = opts.imgSize!;
  const rng = new Rng(3);
  const n = B * 3 * S * S;
  const [q, k] = [0, 1].map(() =>
    mode.bytes
      ? Uint8Array.from({ length: n }, () => rng.int(256))
      : Float32Array.from({ length: n }, () => rng.normal()),
  );
  const replay = mode.replay;
  const trainer = new Trainer(rt, opts, { replay });
  const out: ModeFigures = { issueMs: [], issueCpuMs: [], stepMs: [], dispatches: 0 };
  try {
    // Replay: the first step runs eagerly (compiles), the second is captured.
    for (let i = 0; i < 2; i++) await trainer.trainStep(q, k);
    for (let i = 0; i < steps; i++) {
      const d0 = rt.stats.dispatches;
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const pending = trainer.trainStep(q, k);
      const t1 = performance.now();
      const c1 = process.cpuUsage(c0);
      out.dispatches = rt.stats.dispatches - d0;
      const stats = await pending;
      if (!Number.isFinite(stats.loss)) throw new Error(`replay bench: step loss ${stats.loss} is not finite`);
      out.issueMs.push(t1 - t0);
      out.issueCpuMs.push((c1.user + c1.system) / 1000);
      out.stepMs.push(performance.now() - t0);
    }
    if (replay && trainer.programs!.stats.replayed !== steps)
      throw new Error(`replay bench: ${trainer.programs!.stats.replayed} of ${steps} steps were replayed`);
  } finally {
    trainer.destroy();
  }
  return out;
}

export async function run(ctx: BenchContext): Promise<void> {
  const arch = (process.env.REPLAY_ARCH ?? 'resnet50') as Arch;
  const widths = (process.env.REPLAY_WIDTHS ?? '0.25,1').split(',').map(Number);
  const S = Number(process.env.REPLAY_IMG ?? 224);
  const B = Number(process.env.REPLAY_BATCH ?? 32);
  const queueSize = Number(process.env.REPLAY_QUEUE ?? 4096);
  const steps = Number(process.env.REPLAY_STEPS ?? (process.env.BENCH_QUICK ? 2 : 3));
  const measurements: Measurement[] = [];
  const rows: string[] = [];
  for (const width of widths) {
    const opts: Partial<TrainerOptions> = {
      method: 'densecl',
      arch,
      width,
      smallStem: false,
      batchSize: B,
      imgSize: S,
      dim: 128,
      queueSize,
      bnGroups: 8,
      seed: 0,
    };
    const workload = `DenseCL ${arch} width ${width}, ${S} px, batch ${B}`;
    const figures: Record<string, ModeFigures> = {};
    for (const mode of MODES) {
      console.log(`[replay] ${workload}: ${mode.name}...`);
      const f = (figures[mode.name] = await measure(ctx, opts, mode, steps));
      const ms = median(f.issueMs);
      measurements.push({
        workload,
        name: mode.name,
        msPerOp: ms,
        msPerOpMin: Math.min(...f.issueMs),
        gflops: 0,
        gbps: 0,
        reps: 1,
        samples: f.issueMs.length,
        rmePercent: NaN,
        cpuMsPerOp: median(f.issueCpuMs),
      });
      rows.push(
        `| ${workload} | ${mode.name} | ${f.dispatches} | ${ms.toFixed(1)} | ${median(f.issueCpuMs).toFixed(1)} | ${median(f.stepMs).toFixed(0)} |`,
      );
    }
    const ratio = median(figures.eager.issueMs) / median(figures.replay.issueMs);
    console.log(
      `[replay] ${workload}: issue ${median(figures.eager.issueMs).toFixed(1)} ms eager vs ${median(figures.replay.issueMs).toFixed(1)} ms replayed (${ratio.toFixed(1)}x), ${median(figures['replay, byte images'].issueMs).toFixed(1)} ms with byte images; ${figures.replay.dispatches} dispatches`,
    );
  }
  const written = writeReport({
    suite: 'replay',
    title: 'Benchmark: issuing one training step, eager recording vs replay of the captured step',
    adapter: ctx.adapter,
    ours: 'replay',
    measurements,
    tableTitle:
      'Milliseconds to issue one step (the synchronous part of Trainer.trainStep; the ratio is eager / replay)',
    notes: [
      `Median of ${steps} steps after 2 warm-up steps (the replayed trainer runs its first step eagerly and captures the second).`,
      'Byte images: the views go up as bytes (0..255, 4x fewer than floats) and are normalised on the GPU (one more dispatch).',
      'Issue time is wall time on the calling thread with the GPU idle at the start; CPU ms is the whole process (on a CPU adapter it includes the driver starting on the submitted work).',
    ],
    sections: [
      {
        title: 'Per step',
        markdown: [
          '| workload | mode | dispatches | issue ms | issue CPU ms | whole step ms |',
          '|---|---|---:|---:|---:|---:|',
          ...rows,
        ].join('\n'),
      },
    ],
  });
  console.log(written.table);
}
