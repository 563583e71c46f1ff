// The step strategy of one rank of a data-parallel job: one process per GPU, each training on its
// slice of the job's batch. WebGPU exposes no device memory to a collective library, so
// everything that crosses ranks goes GPU -> mapped staging buffer -> host collective -> GPU
// (engine/staging.ts). The step is the Trainer's one training step (trainingStep), run in parts
// between the collectives: up to the keys pause the key forward on this rank's slice of the
// shuffled job batch, then the key exchange (key-exchange.ts); up to the gradients pause the
// query forward, loss and backward with the heads' gradient buckets sent mid-backward, then the
// gradient sum (gradient-buckets.ts); then SGD, dividing by the number of ranks. Steps are eager
// (their parts wait for the host). Browser-safe (the communicator is an interface).
import { scope, type Runtime, type FlatStore, type Rng } from '../engine/index.js';
import { tensorOn } from '../engine/ops/create.js';
import type { Communicator } from '../engine/comm/communicator.js';
import { writeBufferFrom } from '../engine/staging.js';
import type { Sgd } from '../engine/ops/sgd.js';
import { runThrough, type DenseCL } from '../models/densecl.js';
import { viewsFromBytes } from './data/augment.js';
import type { ViewBatch } from './data/loader.js';
import { GradientBuckets } from './gradient-buckets.js';
import { keyShapes, keysOn, shuffledSlice, stageKeys, unshuffle } from './key-exchange.js';
import { nextPause, trainingStep, type StepRequest, type StepStats, type StepStrategy } from './step-strategy.js';

const now = (): number => performance.now();

export class DataParallel implements StepStrategy {
  /** Every step is recorded eagerly. */
  readonly programs = null;
  private readonly grads: GradientBuckets;
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
    bucketBytes?: number,
  ) {
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
    // No permutation in the plan: the keys arrive shuffled and are put back in order on the host.
    const plan = model.planStep(stepIndex, B);
    const views = {
      key: () => tensorOn(rt, shuffledSlice(allViews, perm, comm.rank, n), shape),
      query: () => tensorOn(rt, xq, shape),
    };
    const work = trainingStep(model, this.sgd, views, plan, lr, {
      gradScale: 1 / W,
      headsDone: () => this.grads.stage(true),
    });
    // Up to the keys pause: gradients zeroed, the key encoder's EMA update and forward; its outputs read back.
    const staged = scope(() => stageKeys(rt, nextPause(work, 'keys').keys));
    const shapes = keyShapes(model, S);
    const localKeys = await staged.readback.take(staged.count).finally(() => staged.readback.destroy());
    const tg = now();
    const gathered = await comm.allgather(localKeys);
    keyCollectives += now() - tg;
    const keys = unshuffle(gathered, perm, shapes, comm.rank, n);
    const t1 = now();

    // Up to the gradients pause: query forward, loss, backward (the heads' buckets staged in the
    // middle of it, the backbone's with the loss figures at the end), enqueue of the job's keys.
    const corr = scope(() => {
      const { out } = nextPause(work, 'gradients', keysOn(rt, keys, shapes));
      this.grads.stageLosses([out.loss, out.lossGlobal, out.lossDense]);
      this.grads.stage(false);
      return wantCorrespondence ? out.correspondence : null;
    });
    model.finishStep(plan);
    const correspondence = corr ? ((await corr.data().finally(() => corr.dispose())) as Int32Array) : null;

    const { stats, times } = await this.grads.sync(t1);
    scope(() => runThrough(work)); // SGD on the summed gradients
    rt.flush();
    return {
      step: stepIndex,
      lr,
      loss: stats[0] / W,
      lossGlobal: stats[1] / W,
      lossDense: model.cfg.method === 'densecl' ? stats[2] / W : null,
      ...(correspondence ? { correspondence } : {}),
      sync: { ...times, keyExchange: t1 - t0, keyCollectives },
      keyPermutation: perm,
    };
  }

  destroy(): void {
    this.grads.destroy();
  }
}

/** Overwrites a whole flat store (alignment gaps included) after the commands recorded so far. */
function writeWhole(store: FlatStore, values: Float32Array): void {
  store.rt.flush();
  writeBufferFrom(store.rt, store.buffer, 0, values);
}
