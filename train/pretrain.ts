// The pre-training loop: DenseCL or MoCo-v2 on a folder of images or the built-in scenes, with
// a progress line, a JSON-lines log of every step, atomic checkpoints that resume exactly, and
// the backbone exported for PyTorch at the end.
import { existsSync, mkdirSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { init, tensor, scope, noGrad, Rng, type Runtime, type Tensor } from '../engine/index.js';
import { DenseCL, type DenseCLConfig, type Method } from '../models/densecl.js';
import type { Arch } from '../models/resnet.js';
import { Sgd } from './optim/sgd.js';
import { cosineLr, scaledLr } from './optim/schedule.js';
import { saveCheckpoint, loadCheckpoint, NonFiniteStateError, type RunCounters } from './checkpoint.js';
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
  queueSize: 1024,
  dim: 128,
  lr: 0.03,
  momentum: 0.9,
  weightDecay: 1e-4,
  tau: 0.2,
  emaMomentum: 0.999,
  lambda: 0.5,
  startIters: 0,
  bnGroups: 8,
  seed: 0,
  builtinImages: 1024,
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

function modelConfig(o: PretrainOptions): DenseCLConfig {
  if (o.method !== 'densecl' && o.method !== 'mocov2') throw new Error(`--method must be densecl or mocov2, got '${o.method}'`);
  if (!['resnet18', 'resnet34', 'resnet50'].includes(o.arch)) throw new Error(`--arch must be resnet18, resnet34 or resnet50, got '${o.arch}'`);
  if (o.batchSize % o.bnGroups !== 0) {
    throw new Error(`--batch-size ${o.batchSize} is not divisible by --bn-groups ${o.bnGroups} (shuffle-BN groups); choose a batch that is a multiple of it`);
  }
  if (o.queueSize % o.batchSize !== 0) {
    throw new Error(`--queue-size ${o.queueSize} is not divisible by --batch-size ${o.batchSize}; the queue is filled a whole batch at a time`);
  }
  return {
    arch: o.arch as Arch,
    width: o.width,
    smallStem: o.smallStem,
    method: o.method as Method,
    dim: o.dim,
    queueSize: o.queueSize,
    tau: o.tau,
    momentum: o.emaMomentum,
    lambda: o.lambda,
    startIters: o.startIters,
    bnGroups: o.bnGroups,
    seed: o.seed,
  };
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
  const cfg = modelConfig(o);
  const runDir = resolve(o.out);
  mkdirSync(runDir, { recursive: true });
  const rt = runtime ?? (await init());
  const model = new DenseCL(rt, cfg);
  const sgd = new Sgd(model.query.params, model.query.grads, { momentum: o.momentum, weightDecay: o.weightDecay });
  const progress = new Progress();
  let counters: RunCounters = { step: 0, epoch: 0, bnSteps: 0, rngState: [...new Rng(o.seed + 1).state()], sampler: null, config: { ...o } };
  const checkpointPath = join(runDir, CHECKPOINT);
  const logPath = join(runDir, LOG);
  if (o.resume) counters = loadCheckpoint(checkpointPath, model, sgd);
  const data: TrainingData = await openTrainingData(o, counters.sampler as SamplerState | null);
  if (o.resume) {
    truncateLog(logPath, counters.step);
    progress.note(`resumed ${runDir} at step ${counters.step}`);
  } else {
    writeFileSync(logPath, '');
  }
  const stepsPerEpoch = data.loader.batchesPerEpoch;
  const totalSteps = o.epochs * stepsPerEpoch;
  const lr0 = scaledLr(o.lr, o.batchSize);
  writeFileAtomic(join(runDir, CONFIG), new TextEncoder().encode(JSON.stringify({ ...o, resume: '' }, null, 2)));
  const rng = new Rng(Uint32Array.from(counters.rngState));
  const [S, B] = [o.imgSize, o.batchSize];
  progress.note(
    `${o.method} ${o.arch} (width ${o.width}${o.smallStem ? ', small stem' : ''}) on ${data.description}: ` +
      `${totalSteps} steps of batch ${B} at ${S}x${S}, queue ${o.queueSize}, lr ${lr0.toExponential(2)} -> ${runDir}`,
  );

  const losses: number[] = [];
  let pending: { step: number; values: Promise<number[]>; lr: number; started: number } | null = null;
  let windowStart = performance.now();
  let windowImages = 0;
  let lastGood = counters.step;

  // Figures are read one step late, so the GPU never waits for the CPU to look at them.
  const settle = async (): Promise<void> => {
    if (!pending) return;
    const p = pending;
    pending = null;
    const [loss, lossGlobal, lossDense] = await p.values;
    if (!Number.isFinite(loss)) {
      throw new Error(
        `the loss became ${loss} at step ${p.step}; training stopped. The last good checkpoint (step ${lastGood}) is intact at ${checkpointPath}. ` +
          `Try a lower --lr or check the data.`,
      );
    }
    losses.push(loss);
    const now = performance.now();
    const imagesPerSec = (windowImages * 1000) / Math.max(1, now - windowStart);
    const figures = {
      step: p.step + 1,
      totalSteps,
      epoch: Math.floor(p.step / stepsPerEpoch),
      epochs: o.epochs,
      imagesPerSec,
      loss,
      lossGlobal,
      lossDense: o.method === 'densecl' ? lossDense : null,
      lr: p.lr,
      etaSec: ((totalSteps - p.step - 1) * B) / Math.max(imagesPerSec, 1e-9),
    };
    appendFileSync(logPath, JSON.stringify({ ...figures, time: new Date().toISOString() }) + '\n');
    progress.update(figures);
  };

  const checkpoint = async (step: number): Promise<void> => {
    await settle();
    counters = { ...counters, step, epoch: Math.floor(step / stepsPerEpoch), bnSteps: step, rngState: [...rng.state()], sampler: data.loader.state() };
    try {
      await saveCheckpoint(checkpointPath, model, sgd, counters);
    } catch (e) {
      if (!(e instanceof NonFiniteStateError)) throw e;
      throw new Error(
        `the model diverged by step ${step} (${e.message}); training stopped. The last good checkpoint (step ${lastGood}) is intact at ${checkpointPath}. ` +
          `Try a lower --lr or check the data.`,
      );
    }
    lastGood = step;
  };

  const firstStep = counters.step;
  const profiler = o.profile > 0 ? new StepProfiler(rt) : null;
  const endStep = o.stopAfter > 0 ? Math.min(totalSteps, counters.step + o.stopAfter) : totalSteps;
  try {
    for (let step = counters.step; step < endStep; step++) {
      const batch = await data.next();
      const lr = cosineLr(lr0, step, totalSteps);
      const runStep = () =>
        scope(() => {
          model.query.zeroGrad();
          const xq = tensor(batch.q, [B, 3, S, S]);
          const xk = tensor(batch.k, [B, 3, S, S]);
          const out = model.trainStep(xq, xk, step, rng);
          noGrad(() => sgd.step(lr));
          return [out.loss, out.lossGlobal, out.lossDense ?? out.lossGlobal];
        });
      // --profile N: steps after two warm-up steps (shader compilation) are timed per kernel.
      const profiled = profiler && step >= firstStep + 2 && profiler.steps < o.profile;
      let outputs: Tensor[] = [];
      if (profiled) await profiler.run(() => (outputs = runStep()));
      else outputs = runStep();
      if (profiler && profiled && profiler.steps === o.profile) {
        profiler.write(runDir, `${o.method} ${o.arch} training steps of ${runDir}`);
        progress.note(`profile of ${o.profile} step(s): ${join(runDir, 'profile.md')}, trace ${join(runDir, 'trace.json')}`);
      }
      const values = readScalars(outputs);
      await settle();
      windowImages += B;
      pending = { step, values, lr, started: performance.now() };
      if (windowImages >= 20 * B) {
        windowStart = performance.now();
        windowImages = 0;
      }
      if ((step + 1) % o.checkpointEvery === 0 && step + 1 < endStep) await checkpoint(step + 1);
    }
    await checkpoint(endStep);
  } finally {
    await data.close();
    model.destroy();
    sgd.momentum.destroy();
    if (!runtime) rt.destroy();
  }
  const backbone = exportRun(runDir, 'torchvision');
  return { runDir, steps: endStep, losses, checkpoint: checkpointPath, backbone };
}

/** Starts reading scalar tensors back and frees them once read. */
function readScalars(ts: Tensor[]): Promise<number[]> {
  return Promise.all(ts.map((t) => t.data().then((v) => v[0]))).finally(() => ts.forEach((t) => t.dispose()));
}

function truncateLog(path: string, step: number): void {
  if (!existsSync(path)) return;
  const kept = readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line && (JSON.parse(line) as { step: number }).step <= step);
  writeFileSync(path, kept.map((l) => l + '\n').join(''));
}
