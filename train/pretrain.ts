// The pre-training loop: DenseCL or MoCo-v2 on a folder of images or the built-in scenes, with
// a progress line, a JSON-lines log of every step, atomic checkpoints that resume exactly, and
// the backbone exported for PyTorch at the end.
import { existsSync, mkdirSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { init, type Runtime } from '../engine/index.js';
import { decodeSafetensors } from '../engine/safetensors.js';
import type { Method } from '../models/densecl.js';
import type { Arch } from '../models/resnet.js';
import { NonFiniteStateError, type RunCounters } from './checkpoint.js';
import { Trainer, type StepStats } from './trainer.js';
import { exportRun } from './export-run.js';
import { StepProfiler } from './profile-run.js';
import { Progress } from './progress.js';
import { writeFileAtomic } from './io.js';
import { openTrainingData, type TrainingData } from './data-source.js';
import type { SamplerState } from './data/loader.js';

export const PRETRAIN_DEFAULTS = {
  method: 'densecl',
  data: 'builtin',
  arch: 'resnet18',
  width: 0.25,
  smallStem: true,
  epochs: 2,
  batchSize: 32,
  imgSize: 32,
  queueSize: 256,
  dim: 128,
  /** Base lr per 256 images: 0.3 is DenseCL's COCO setting, which suits short runs (ImageNet: 0.03). */
  lr: 0.3,
  momentum: 0.9,
  weightDecay: 1e-4,
  tau: 0.2,
  emaMomentum: 0.999,
  lambda: 0.5,
  startIters: 0,
  bnGroups: 8,
  seed: 0,
  builtinImages: 2048,
  workers: 2,
  checkpointEvery: 100,
  out: 'runs/densecl',
  resume: '',
  profile: 0,
  /** Stop after this many steps of this invocation (0 = run to the end); simulates an interrupted run. */
  stopAfter: 0,
};

export type PretrainOptions = typeof PRETRAIN_DEFAULTS;

const CHECKPOINT = 'checkpoint.safetensors';
const CONFIG = 'config.json';
const LOG = 'log.jsonl';

/** Checks the flags, naming them as the user typed them (the Trainer checks the same for API users). */
function validateFlags(o: PretrainOptions): void {
  if (o.method !== 'densecl' && o.method !== 'mocov2') throw new Error(`--method must be densecl or mocov2, got '${o.method}'`);
  if (!['resnet18', 'resnet34', 'resnet50'].includes(o.arch)) throw new Error(`--arch must be resnet18, resnet34 or resnet50, got '${o.arch}'`);
  if (o.batchSize % o.bnGroups !== 0) {
    throw new Error(`--batch-size ${o.batchSize} is not divisible by --bn-groups ${o.bnGroups} (shuffle-BN groups); choose a batch that is a multiple of it`);
  }
  if (o.queueSize % o.batchSize !== 0) {
    throw new Error(`--queue-size ${o.queueSize} is not divisible by --batch-size ${o.batchSize}; the queue is filled a whole batch at a time`);
  }
}

/** Options of a resumed run: the saved ones, with --epochs allowed to extend the run. */
export function resumeOptions(runDir: string, overrides: Partial<PretrainOptions>): PretrainOptions {
  const path = join(runDir, CONFIG);
  if (!existsSync(join(runDir, CHECKPOINT))) throw new Error(`--resume ${runDir}: no ${CHECKPOINT} there; nothing to resume`);
  let saved: PretrainOptions;
  try {
    saved = JSON.parse(readFileSync(path, 'utf8')) as PretrainOptions;
  } catch (e) {
    throw new Error(`--resume ${runDir}: cannot read ${path}: ${(e as Error).message}`);
  }
  return { ...saved, ...(overrides.epochs !== undefined ? { epochs: overrides.epochs } : {}), out: runDir, resume: runDir };
}

export interface PretrainResult {
  runDir: string;
  steps: number;
  losses: number[];
  checkpoint: string;
  backbone: string;
}

/** Runs (or resumes) a pre-training run; uses `runtime` when given, else acquires a GPU and releases it at the end. */
export async function pretrain(o: PretrainOptions, runtime?: Runtime): Promise<PretrainResult> {
  validateFlags(o);
  const runDir = resolve(o.out);
  mkdirSync(runDir, { recursive: true });
  const checkpointPath = join(runDir, CHECKPOINT);
  const logPath = join(runDir, LOG);
  const saved = o.resume ? readCheckpointFile(checkpointPath) : null;
  const data: TrainingData = await openTrainingData(o, (saved?.counters.sampler as SamplerState | undefined) ?? null);
  const stepsPerEpoch = data.loader.batchesPerEpoch;
  const totalSteps = o.epochs * stepsPerEpoch;
  const rt = runtime ?? (await init());
  const trainer = new Trainer(rt, { ...o, method: o.method as Method, arch: o.arch as Arch, totalSteps });
  const progress = new Progress();
  const [S, B] = [o.imgSize, o.batchSize];
  const losses: number[] = [];
  let lastGood = 0;
  try {
    if (saved) {
      lastGood = trainer.loadState(saved.bytes, checkpointPath).step;
      truncateLog(logPath, lastGood);
      progress.note(`resumed ${runDir} at step ${lastGood}`);
    } else {
      writeFileSync(logPath, '');
    }
    writeFileAtomic(join(runDir, CONFIG), new TextEncoder().encode(JSON.stringify({ ...o, resume: '' }, null, 2)));
    progress.note(
      `${o.method} ${o.arch} (width ${o.width}${o.smallStem ? ', small stem' : ''}) on ${data.description}: ` +
        `${totalSteps} steps of batch ${B} at ${S}x${S}, queue ${o.queueSize}, lr ${trainer.lrAt(0).toExponential(2)} -> ${runDir}`,
    );

    let pending: Promise<StepStats> | null = null;
    // Images/s over the last steps to finish; the first step (shader compilation) starts the clock.
    const finished: number[] = [];
    // Figures are read one step late, so the GPU never waits for the CPU to look at them.
    const settle = async (): Promise<void> => {
      if (!pending) return;
      const p = await pending;
      pending = null;
      if (!Number.isFinite(p.loss)) {
        throw new Error(
          `the loss became ${p.loss} at step ${p.step}; training stopped. The last good checkpoint (step ${lastGood}) is intact at ${checkpointPath}. ` +
            `Try a lower --lr or check the data.`,
        );
      }
      losses.push(p.loss);
      finished.push(performance.now());
      if (finished.length > 21) finished.shift();
      const span = finished[finished.length - 1] - finished[0];
      const imagesPerSec = finished.length > 1 ? ((finished.length - 1) * B * 1000) / Math.max(span, 1) : 0;
      const figures = {
        step: p.step + 1,
        totalSteps,
        epoch: Math.floor(p.step / stepsPerEpoch),
        epochs: o.epochs,
        imagesPerSec,
        loss: p.loss,
        lossGlobal: p.lossGlobal,
        lossDense: p.lossDense,
        lr: p.lr,
        etaSec: imagesPerSec > 0 ? ((totalSteps - p.step - 1) * B) / imagesPerSec : Number.NaN,
      };
      appendFileSync(logPath, JSON.stringify({ ...figures, time: new Date().toISOString() }) + '\n');
      progress.update(figures);
    };
    const checkpoint = async (): Promise<void> => {
      await settle();
      const step = trainer.steps;
      let bytes: Uint8Array;
      try {
        bytes = await trainer.saveState({ epoch: Math.floor(step / stepsPerEpoch), sampler: data.loader.state(), config: { ...o } });
      } catch (e) {
        if (!(e instanceof NonFiniteStateError)) throw e;
        throw new Error(
          `the model diverged by step ${step} (${e.message}); training stopped. The last good checkpoint (step ${lastGood}) is intact at ${checkpointPath}. ` +
            `Try a lower --lr or check the data.`,
        );
      }
      writeFileAtomic(checkpointPath, bytes);
      lastGood = step;
    };

    const firstStep = trainer.steps;
    const profiler = o.profile > 0 ? new StepProfiler(rt) : null;
    const endStep = o.stopAfter > 0 ? Math.min(totalSteps, firstStep + o.stopAfter) : totalSteps;
    while (trainer.steps < endStep) {
      const batch = await data.next();
      // --profile N: steps after two warm-up steps (shader compilation) are timed per kernel.
      const profiled = profiler !== null && trainer.steps >= firstStep + 2 && profiler.steps < o.profile;
      let stats: Promise<StepStats> | null = null;
      if (profiled) await profiler.run(() => (stats = trainer.trainStep(batch.q, batch.k)));
      else stats = trainer.trainStep(batch.q, batch.k);
      if (profiled && profiler.steps === o.profile) {
        profiler.write(runDir, `${o.method} ${o.arch} training steps of ${runDir}`);
        progress.note(`profile of ${o.profile} step(s): ${join(runDir, 'profile.md')}, trace ${join(runDir, 'trace.json')}`);
      }
      await settle();
      pending = stats;
      if (trainer.steps % o.checkpointEvery === 0 && trainer.steps < endStep) await checkpoint();
    }
    await checkpoint();
  } finally {
    await data.close();
    trainer.destroy();
    if (!runtime) rt.destroy();
  }
  const backbone = exportRun(runDir, 'torchvision');
  return { runDir, steps: lastGood, losses, checkpoint: checkpointPath, backbone };
}

/** A checkpoint's bytes and run counters (read before the model exists: the data sampler needs them). */
function readCheckpointFile(path: string): { bytes: Uint8Array; counters: RunCounters } {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new Error(`cannot read checkpoint ${path}: ${(e as Error).message}`);
  }
  const meta = decodeSafetensors(bytes, path).metadata;
  try {
    return { bytes, counters: JSON.parse(meta.counters) as RunCounters };
  } catch {
    throw new Error(`checkpoint ${path} does not match this model: its run counters (metadata "counters") are unreadable`);
  }
}

function truncateLog(path: string, step: number): void {
  if (!existsSync(path)) return;
  const kept = readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line && (JSON.parse(line) as { step: number }).step <= step);
  writeFileSync(path, kept.map((l) => l + '\n').join(''));
}
