// The step strategy of one rank of a data-parallel job: one process per GPU, each training on its
// slice of the job's batch. WebGPU exposes no device memory to a collective library, so
// everything that crosses ranks goes GPU -> mapped staging buffer -> host collective -> GPU
// (engine/staging.ts). The step is the Trainer's one training step (trainingStep), run in parts
// between the collectives: up to the keys pause the key forward on this rank's slice of the
// shuffled job batch, then the key exchange (key-exchange.ts); up to the gradients pause the
// query forward, loss and backward with the heads' gradient buckets sent mid-backward, then the
// gradient sum (gradient-buckets.ts); then SGD, dividing by the number of ranks. Each of the
// three GPU parts is captured and replayed like a one-process step (StepPrograms, one program of
// three parts per signature): every per-step value is a named input or a live value, and the
// host work (maps of the staging buffers, collectives, write-back of the summed gradients) runs
// between the parts. Browser-safe (the communicator is an interface).
import { scope, type Runtime, type FlatStore, type Rng } from '../engine/index.js';
import { inputOn } from '../engine/ops/create.js';
import type { StepTensors } from '../engine/replay.js';
import type { StepValues } from '../engine/capture.js';
import type { Communicator } from '../engine/comm/communicator.js';
import { Readback, writeBufferFrom } from '../engine/staging.js';
import type { Sgd } from '../engine/ops/sgd.js';
import { runThrough, type DenseCL, type StepWork } from '../models/densecl.js';
import { viewsFromBytes } from './data/augment.js';
import type { ViewBatch } from './data/loader.js';
import { GradientBuckets } from './gradient-buckets.js';
import { keyCount, keyShapes, keysOn, keyValues, shuffledSlice, stageKeys, unshuffle } from './key-exchange.js';
import { eagerRun, StepPrograms } from './step-programs.js';
import {
  nextPause,
  trainingStep,
  type StepPause,
  type StepRequest,
  type StepStats,
  type StepStrategy,
} from './step-strategy.js';

const now = (): number => performance.now();

export class DataParallel implements StepStrategy {
  readonly programs: StepPrograms<StepTensors> | null;
  private readonly grads: GradientBuckets;
  /** The staging buffer of the key outputs, by size in bytes (captured parts copy into it). */
  private readonly keyStaging = new Map<number, Readback>();
  private broadcastDone = false;
  /** Steps run one after another (each has collectives mid-way); each waits for the one before. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    readonly rt: Runtime,
    readonly model: DenseCL,
    readonly sgd: Sgd,
    readonly comm: Communicator,
    /** Side of the square views. */
    private readonly imgSize: number,
    /** Capture the step's parts and replay them, or record every step eagerly. */
    replay: boolean,
    bucketBytes?: number,
  ) {
    this.programs = replay ? new StepPrograms(rt) : null;
    const offsets = model.query.grads.offsets;
    // The heads' parameters come after the backbone's in the store (see DenseCL's specs).
    const headsStart = Math.min(...[...offsets].filter(([name]) => name.startsWith('neck.')).map(([, at]) => at));
    this.grads = new GradientBuckets(rt, model.query.grads, comm, headsStart, bucketBytes);
  }

  run({ q, k, step, lr, rng, opts, norm }: StepRequest): Promise<StepStats> {
    if (opts.keyPermutation)
      throw new Error(
        'Trainer.trainStep: keyPermutation is for one process; a data-parallel job draws its permutation on rank 0',
      );
    const S = this.imgSize;
    // Ranks exchange float views (shuffle-BN gathers the key batch): byte batches are normalised here.
    const floats = (x: ViewBatch) => (x instanceof Uint8Array ? viewsFromBytes(x, S * S, norm.mean, norm.std) : x);
    const result = this.chain.then(() => this.step(floats(q), floats(k), step, lr, rng, opts.correspondence));
    this.chain = result.catch(() => {});
    return result;
  }

  /** Collective: the BN statistics become the ranks' average once the steps in flight are done. */
  async settle(): Promise<void> {
    await this.chain;
    await this.averageBuffers();
  }

  /** Rank 0's weights, BN statistics, queues and momentum copied to every rank (before the first step and after a restore). */
  async broadcastState(): Promise<void> {
    const m = this.model;
    for (const store of [m.query.params, m.query.buffers, m.key.params, m.key.buffers, m.queues, this.sgd.momentum]) {
      const values = new Float32Array(await store.flat.data());
      await this.comm.broadcast(values, 0);
      writeWhole(store, values);
    }
    const ptrs = await this.comm.broadcast(Int32Array.of(m.ptr, m.ptr2), 0);
    [m.ptr, m.ptr2] = [ptrs[0], ptrs[1]];
    this.broadcastDone = true;
  }

  /**
   * BN running statistics averaged over ranks (each rank saw only its images): the mean of the
   * ranks' linear running updates equals the one-process run's, so checkpoints match it.
   */
  async averageBuffers(): Promise<void> {
    const scale = 1 / this.comm.size;
    for (const store of [this.model.query.buffers, this.model.key.buffers]) {
      const values = await this.comm.allreduceSum(new Float32Array(await store.flat.data()));
      for (let i = 0; i < values.length; i++) values[i] *= scale;
      writeWhole(store, values);
    }
  }

  /**
   * One step on this rank's slice (xq, xk: [n, 3, S, S] with n = job batch / ranks); `rng` draws
   * the shuffle permutation (every rank draws, rank 0's is used, so the generators stay equal).
   */
  private async step(
    xq: Float32Array,
    xk: Float32Array,
    stepIndex: number,
    lr: number,
    rng: Rng,
    wantCorrespondence = false,
  ): Promise<StepStats> {
    if (!this.broadcastDone) await this.broadcastState();
    const { comm, model, rt, imgSize: S } = this;
    const W = comm.size;
    const shape = [xk.length / (3 * S * S), 3, S, S];
    const n = shape[0];
    const B = n * W;
    const t0 = now();

    // Shuffle-BN: this rank encodes positions [rank * n, (rank + 1) * n) of the shuffled job batch.
    const allViews = await comm.allgather(xk);
    const perm = await comm.broadcast(Int32Array.from(rng.permutation(B)), 0);
    let keyCollectives = now() - t0;
    const xkMine = shuffledSlice(allViews, perm, comm.rank, n);
    // No permutation in the plan: the keys arrive shuffled and are put back in order on the host.
    const plan = model.planStep(stepIndex, B);
    const signature = `${n}x${S} lambda=${plan.lambda} correspondence=${wantCorrespondence}`;
    const run = this.programs ? this.programs.begin(signature, 3) : eagerRun<StepTensors>(rt);
    let issue = 0;
    const part = (values: StepValues, record: () => StepTensors): StepTensors => {
      const t = now();
      const out = run.part(values, record);
      issue += now() - t;
      return out;
    };
    // The step's work, started by its first recorded part (a replayed step records nothing).
    let work: StepWork<StepPause> | null = null;
    const recorded = () =>
      (work ??= trainingStep(
        model,
        this.sgd,
        { key: () => inputOn(rt, 'key', xkMine, shape), query: () => inputOn(rt, 'query', xq, shape) },
        plan,
        lr,
        { gradScale: 1 / W, headsDone: () => this.grads.stage(true) },
      ));

    // Part 1, up to the keys pause: gradients zeroed, the key encoder's EMA update and forward,
    // its outputs copied to the staging buffer.
    const shapes = keyShapes(model, S);
    const count = keyCount(shapes, n);
    const staging = this.keyStagingOf(count * 4);
    part({ key: xkMine }, () =>
      scope(() => {
        stageKeys(nextPause(recorded(), 'keys').keys, staging);
        return {};
      }),
    );
    const localKeys = await staging.take(count);
    const tg = now();
    const gathered = await comm.allgather(localKeys);
    keyCollectives += now() - tg;
    const keys = unshuffle(gathered, perm, shapes, comm.rank, n);
    const t1 = now();

    // Part 2, up to the gradients pause: query forward, loss, backward (the heads' buckets staged
    // in the middle of it, the backbone's with the loss figures at the end), enqueue of the job's keys.
    const values = { query: xq, ...keyValues(keys, shapes), ...model.stepValues(plan) };
    const { correspondence: corr } = part(values, () =>
      scope(() => {
        const { out } = nextPause(recorded(), 'gradients', keysOn(rt, keys, shapes));
        this.grads.stageLosses([out.loss, out.lossGlobal, out.lossDense]);
        this.grads.stage(false);
        return { correspondence: wantCorrespondence ? out.correspondence : null };
      }),
    );
    this.grads.requestMaps();
    model.finishStep(plan);
    const correspondence = corr ? ((await corr.data().finally(() => corr.dispose())) as Int32Array) : null;

    const { stats, times } = await this.grads.sync(t1);
    // Part 3: SGD on the summed gradients.
    part({ lr }, () =>
      scope(() => {
        runThrough(recorded());
        return {};
      }),
    );
    return {
      step: stepIndex,
      lr,
      loss: stats[0] / W,
      lossGlobal: stats[1] / W,
      lossDense: model.cfg.method === 'densecl' ? stats[2] / W : null,
      ...(correspondence ? { correspondence } : {}),
      sync: { ...times, keyExchange: t1 - t0, keyCollectives, issue },
      keyPermutation: perm,
    };
  }

  /** The key outputs' staging buffer of this size, made on first use and kept (captured parts copy into it). */
  private keyStagingOf(bytes: number): Readback {
    let r = this.keyStaging.get(bytes);
    if (!r) this.keyStaging.set(bytes, (r = new Readback(this.rt, bytes, 'dp.keys')));
    return r;
  }

  destroy(): void {
    this.programs?.destroy();
    this.grads.destroy();
    for (const r of this.keyStaging.values()) r.destroy();
  }
}

/** Overwrites a whole flat store (alignment gaps included) after the commands recorded so far. */
function writeWhole(store: FlatStore, values: Float32Array): void {
  store.rt.flush();
  writeBufferFrom(store.rt, store.buffer, 0, values);
}
