// A browser-safe training step: one object that owns a DenseCL (or MoCo-v2) model, its SGD
// optimiser and the learning-rate schedule, and trains on batches handed in as Float32Arrays.
// The demo page and Node programs use it alike; the CLI's pretrain loop (files, logs, worker
// threads) stays Node-only. State saves to and loads from safetensors bytes in the layout of
// the CLI's checkpoint.safetensors, so a run's checkpoint opens in a page and back.
import { Rng, profile, type Runtime, type ProfileResult } from '../engine/index.js';
import type { PixelNormalization } from '../engine/ops/pixels.js';
import type { ViewBatch } from './data/loader.js';
import { MOCO_V2 } from './data/augment.js';
import { encodeCheckpoint, restoreCheckpoint, type RunCounters } from './checkpoint.js';
import { DenseCL, type DenseCLConfig } from '../models/densecl.js';
import { Sgd } from '../engine/ops/sgd.js';
import { cosineLr, scaledLr } from './optim/schedule.js';
import { SingleProcess, type Communicator } from '../engine/comm/communicator.js';
import type { StepPrograms } from './step-programs.js';
import type { StepTensors } from '../engine/replay.js';
import { OneProcessStep } from './one-process-step.js';
import { DataParallel } from './distributed.js';
import type { StepOptions, StepStats, StepStrategy } from './step-strategy.js';
import { checkStepSettings } from './step-checks.js';

export type { StepOptions, StepStats } from './step-strategy.js';

/**
 * The model's settings (DenseCLConfig: backbone, heads, queues, loss) and the training's. One
 * difference in meaning: bnGroups is the whole job's here (each of W processes takes bnGroups / W).
 */
export interface TrainerOptions extends DenseCLConfig {
  batchSize: number;
  /** Side of the square input views. */
  imgSize: number;
  /** Learning rate per 256 images (scaled linearly with the batch). */
  lr: number;
  /** SGD's momentum (the key encoder's EMA is emaMomentum). */
  momentum: number;
  weightDecay: number;
  /** Length of the cosine schedule in steps; 0 keeps the learning rate constant. */
  totalSteps: number;
}

/** torchvision's ImageNet normalisation, as MoCo-v2's augmentation applies it. */
export const IMAGENET_NORMALIZATION: PixelNormalization = { mean: MOCO_V2.mean, std: MOCO_V2.std };

/** A small configuration that trains at a few steps per second on a CPU adapter. */
export const TRAINER_DEFAULTS: TrainerOptions = {
  method: 'densecl',
  arch: 'resnet18',
  width: 1 / 8,
  smallStem: true,
  batchSize: 16,
  imgSize: 32,
  dim: 32,
  queueSize: 64,
  tau: 0.2,
  emaMomentum: 0.99,
  lambda: 0.5,
  startIters: 0,
  bnGroups: 4,
  seed: 0,
  lr: 0.03,
  momentum: 0.9,
  weightDecay: 1e-4,
  totalSteps: 0,
  precision: 'f32',
};

export interface ParallelOptions {
  /** The job's processes; each Trainer then takes batches of batchSize / size images. */
  comm?: Communicator;
  /** Gradient all-reduce bucket size. */
  bucketBytes?: number;
  /**
   * Capture each step shape once and replay it (default), or record every step eagerly; a
   * data-parallel rank captures its step's three parts between the collectives. Both compute
   * the same values; replay spends far less CPU time per step.
   */
  replay?: boolean;
}

export class Trainer {
  readonly options: TrainerOptions;
  readonly model: DenseCL;
  readonly sgd: Sgd;
  /** Steps done so far. */
  steps = 0;
  readonly comm: Communicator;
  /** Images per step on this process: batchSize / comm.size. */
  readonly localBatch: number;
  private rng: Rng;
  private readonly lr0: number;
  /** How the steps run: in this one process, or as one rank of a data-parallel job. */
  private readonly strategy: StepStrategy;
  private destroyed = false;

  /**
   * `options.batchSize` and `options.bnGroups` are the whole job's; with `parallel.comm` of W
   * processes each takes batchSize / W images and bnGroups / W BN groups per step.
   */
  constructor(
    readonly rt: Runtime,
    options: Partial<TrainerOptions> = {},
    parallel: ParallelOptions = {},
  ) {
    const o = (this.options = { ...TRAINER_DEFAULTS, ...options });
    const comm = (this.comm = parallel.comm ?? new SingleProcess());
    const W = comm.size;
    checkStepSettings(o, W, (key) => key, 'Trainer: ');
    this.localBatch = o.batchSize / W;
    const cfg: DenseCLConfig = {
      arch: o.arch,
      width: o.width,
      smallStem: o.smallStem,
      method: o.method,
      dim: o.dim,
      queueSize: o.queueSize,
      tau: o.tau,
      emaMomentum: o.emaMomentum,
      lambda: o.lambda,
      startIters: o.startIters,
      bnGroups: o.bnGroups / W,
      seed: o.seed,
      precision: o.precision,
    };
    this.model = new DenseCL(rt, cfg);
    this.sgd = new Sgd(this.model.query.params, this.model.query.grads, {
      momentum: o.momentum,
      weightDecay: o.weightDecay,
    });
    // The same stream as the CLI's pretrain (seed + 1), so equal seeds shuffle equally.
    this.rng = new Rng(o.seed + 1);
    this.lr0 = scaledLr(o.lr, o.batchSize);
    this.strategy =
      W > 1
        ? new DataParallel(rt, this.model, this.sgd, comm, o.imgSize, parallel.replay ?? true, parallel.bucketBytes)
        : new OneProcessStep(rt, this.model, this.sgd, this.localBatch, o.imgSize, parallel.replay ?? true);
  }

  /** Captured steps (with replay on), else null. */
  get programs(): StepPrograms<StepTensors> | null {
    return this.strategy.programs;
  }

  /** Learning rate of step `step` under the schedule. */
  lrAt(step: number): number {
    return this.options.totalSteps > 0 ? cosineLr(this.lr0, step, this.options.totalSteps) : this.lr0;
  }

  /**
   * Records one training step on a batch of query and key views ([B, 3, S, S] each, normalised,
   * as BatchLoader makes them; B = localBatch) and submits it. On one process the step is
   * recorded before this returns, so a caller may prepare the next batch while the GPU works and
   * await the figures later; in a data-parallel job the step waits for the other ranks mid-way.
   */
  trainStep(q: ViewBatch, k: ViewBatch, opts: StepOptions = {}): Promise<StepStats> {
    this.assertAlive();
    const { imgSize: S } = this.options;
    const B = this.localBatch;
    const want = B * 3 * S * S;
    for (const [name, x] of [
      ['query', q],
      ['key', k],
    ] as const) {
      if (x.length !== want) {
        const share =
          this.comm.size > 1
            ? `; this process's share of batchSize ${this.options.batchSize} over ${this.comm.size} processes`
            : '';
        throw new Error(
          `Trainer.trainStep: the ${name} batch has ${x.length} values, expected [${B}, 3, ${S}, ${S}] = ${want} (batchSize ${B}${share}, imgSize ${S})`,
        );
      }
    }
    if (q.constructor !== k.constructor)
      throw new Error('Trainer.trainStep: the query and key batches must both be floats or both bytes');
    // The strategy refuses what it cannot run before the step is counted.
    const step = this.steps;
    const norm = opts.pixelNormalization ?? IMAGENET_NORMALIZATION;
    const stats = this.strategy.run({ q, k, step, lr: this.lrAt(step), rng: this.rng, opts, norm });
    this.steps = step + 1;
    return stats;
  }

  /**
   * One training step with every kernel timed (timestamp queries where the adapter has them,
   * else coarse per-kernel submissions: see `profile.method`). Profile after a warm-up step or
   * two, or pipeline compilation is part of the figures.
   */
  async profileStep(
    q: ViewBatch,
    k: ViewBatch,
    opts: StepOptions = {},
  ): Promise<{ stats: StepStats; profile: ProfileResult }> {
    let pending: Promise<StepStats> | null = null;
    const result = await profile(this.rt, () => {
      pending = this.trainStep(q, k, opts);
    });
    return { stats: await pending!, profile: result };
  }

  /**
   * The whole training state as safetensors bytes (the CLI checkpoint's layout and names);
   * `extra` adds run counters such as the epoch and the data sampler's state. In a data-parallel
   * job every rank must call it (the BN statistics are averaged over ranks first).
   */
  async saveState(extra: Partial<RunCounters> = {}): Promise<Uint8Array> {
    this.assertAlive();
    await this.strategy.settle();
    const counters: RunCounters = {
      step: this.steps,
      epoch: 0,
      bnSteps: this.steps,
      rngState: [...this.rng.state()],
      sampler: null,
      config: { ...this.options },
      ...extra,
    };
    return encodeCheckpoint(this.model, this.sgd, counters);
  }

  /**
   * Restores a state saved by saveState() or a CLI checkpoint of the same model. Every name,
   * shape and value (finite) and the counters and queue pointers are checked before anything is
   * written; `what` names the source in errors.
   */
  loadState(bytes: Uint8Array, what = 'checkpoint'): RunCounters {
    this.assertAlive();
    const counters = restoreCheckpoint(bytes, this.model, this.sgd, what, this.options.batchSize);
    const total = this.options.totalSteps;
    if (total > 0 && counters.step > total)
      throw new Error(
        `${what} was saved at step ${counters.step}, beyond this run's ${total} steps; resume with more --epochs`,
      );
    this.steps = counters.step;
    this.rng = new Rng(Uint32Array.from(counters.rngState));
    return counters;
  }

  /** Frees the model's and the optimiser's GPU buffers (the runtime stays the caller's). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.model.destroy();
    this.sgd.destroy();
    this.strategy.destroy();
  }

  private assertAlive(): void {
    if (this.destroyed) throw new Error('Trainer: used after destroy(); create a new Trainer');
  }
}
