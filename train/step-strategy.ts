// A Trainer's step is one pipeline run by one of two strategies. The pipeline (trainingStep) is
// written once: zero the gradients, the model's GPU work (DenseCL.stepWork, which pauses after
// the key forward for the step's keys), a pause before the optimiser (where a job sums its
// gradients), SGD. One process runs it straight through, captured and replayed
// (one-process-step.ts); a data-parallel job runs its parts between collectives (distributed.ts).
import { noGrad, type Rng } from '../engine/index.js';
import type { StepTensors } from '../engine/replay.js';
import type { PixelNormalization } from '../engine/ops/pixels.js';
import type { Sgd } from '../engine/ops/sgd.js';
import type { DenseCL, KeysPause, StepKeys, StepOutput, StepPlan, StepViews, StepWork } from '../models/densecl.js';
import type { ViewBatch } from './data/loader.js';
import type { StepPrograms } from './step-programs.js';

/** Where one data-parallel step spent its wall time (ms), for logs and the README's figures. */
export interface SyncTimes {
  /** Key views gathered, permutation broadcast, key forward and its outputs gathered back. */
  keyExchange: number;
  /** The part of keyExchange spent in the three collectives (the rest is the key forward and its readback). */
  keyCollectives: number;
  /** From submitting the query forward + backward until the backbone's first gradient bucket is on the host. */
  computeWait: number;
  /** From then until every bucket is summed and written back: the exposed cost. */
  gradSync: number;
  /** How long the heads' all-reduce ran while the GPU was still busy with the backbone's backward. */
  overlapped: number;
  /** Time inside the gradient all-reduce calls, summed over buckets (may exceed gradSync when they overlap). */
  allreduce: number;
  /** Staging-buffer map + copy to host, summed over the buckets after the first of the heads and of the backbone (those wait for compute). */
  readback: number;
  buckets: number;
  /** JS time recording (eager, captured) or replaying the step's three GPU parts: the CPU cost replay cuts. */
  issue: number;
}

export interface StepStats {
  /** Index of this step (0-based). */
  step: number;
  lr: number;
  loss: number;
  lossGlobal: number;
  /** DenseCL's dense loss; null for MoCo-v2. */
  lossDense: number | null;
  /** With { correspondence: true } (DenseCL): for each image and query cell, the matched key cell, [N * S2] row-major. */
  correspondence?: Int32Array;
  /** Data-parallel runs: where the step's communication time went. */
  sync?: SyncTimes;
  /** Data-parallel runs: the shuffle-BN permutation of the job's key batch (the same on every rank). */
  keyPermutation?: Int32Array;
}

export interface StepOptions {
  /** Also read back DenseCL's correspondence indices. */
  correspondence?: boolean;
  /**
   * The shuffle-BN permutation of the key batch (perm[i] = the image at shuffled position i), for
   * parity checks against another implementation; by default it is drawn from the trainer's
   * generator. One process only.
   */
  keyPermutation?: readonly number[];
  /** How byte images (Uint8Array batches) are normalised on the GPU; torchvision's ImageNet mean and std by default. */
  pixelNormalization?: PixelNormalization;
}

/** One step as the Trainer hands it to its strategy (the batches already checked). */
export interface StepRequest {
  /** This process's query and key views, [B, 3, S, S] each. */
  q: ViewBatch;
  k: ViewBatch;
  step: number;
  lr: number;
  /** The trainer's generator, which draws the shuffle-BN permutations. */
  rng: Rng;
  opts: StepOptions;
  /** How byte views are normalised. */
  norm: PixelNormalization;
}

/** How a Trainer runs its steps: in one process, or as one rank of a data-parallel job. */
export interface StepStrategy {
  /**
   * Runs one step and resolves with its figures; throws before changing anything when the
   * request does not suit the strategy. One process records the step before returning.
   */
  run(request: StepRequest): Promise<StepStats>;
  /** The captured steps it replays, or null when it records every step eagerly. */
  readonly programs: StepPrograms<StepTensors> | null;
  /** Waits for the steps in flight and makes the state a checkpoint's (a job: collective, every rank calls it). */
  settle(): Promise<void>;
  destroy(): void;
}

/** The pause before the optimiser, with the step's outputs (alive until the work goes on). */
export interface GradientsPause {
  at: 'gradients';
  out: StepOutput;
}

export type StepPause = KeysPause | GradientsPause;

/**
 * The one training step: zero the gradient store, the model's GPU work, then SGD with the
 * gradients scaled by `gradScale`. It pauses after the key forward (answered with the step's
 * keys, or nothing) and before the optimiser; `headsDone` is called mid-backward (see
 * DenseCL.stepWork).
 */
export function* trainingStep(
  model: DenseCL,
  sgd: Sgd,
  views: StepViews,
  plan: StepPlan,
  lr: number,
  sync: { gradScale?: number; headsDone?: () => void } = {},
): StepWork<StepPause> {
  model.query.zeroGrad();
  const out = yield* model.stepWork(views, plan, sync.headsDone);
  yield { at: 'gradients', out };
  noGrad(() => sgd.step(lr, sync.gradScale));
  return out;
}

/** Runs the work up to its next pause, which must be `at`, answering the one before with `answer`. */
export function nextPause<A extends StepPause['at']>(
  work: StepWork<StepPause>,
  at: A,
  answer?: StepKeys,
): Extract<StepPause, { at: A }> {
  const r = work.next(answer);
  if (r.done || r.value.at !== at)
    throw new Error(`training step: expected the ${at} pause (engine bug: the step's parts ran out of order)`);
  return r.value as Extract<StepPause, { at: A }>;
}
