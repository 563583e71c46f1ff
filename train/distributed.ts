// Data-parallel DenseCL / MoCo-v2: one process per GPU, each training on its slice of the job's
// batch. WebGPU exposes no device memory to a collective library, so everything that crosses
// ranks goes GPU -> mapped staging buffer -> host collective -> GPU (engine/staging.ts):
//  - shuffle-BN as in the paper's code: the key views are all-gathered, rank 0's permutation is
//    broadcast, each rank encodes its slice of the shuffled batch, the key outputs are
//    all-gathered and unshuffled on the host; both queues get the whole job batch's keys;
//  - gradients: the flat gradient store is summed in buckets (last parameters first), each
//    bucket's readback, all-reduce and write-back overlapping the other buckets'; the optimiser
//    kernel divides by the number of ranks. The heads' buckets are submitted as soon as their
//    backward is recorded, so their exchange runs while the GPU does the backbone's backward.
// Browser-safe (the communicator is an interface); the model holds no communication code.
import { scope, noGrad, type Runtime, type Tensor, type FlatStore, type Rng } from '../engine/index.js';
import { tensorOn } from '../engine/ops/create.js';
import type { Communicator } from '../engine/comm/communicator.js';
import { Readback, writeBufferFrom } from '../engine/staging.js';
import type { DenseCL, StepKeys } from '../models/densecl.js';
import type { Sgd } from '../engine/ops/sgd.js';

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
}

export interface DataParallelStep {
  out: { loss: number; lossGlobal: number; lossDense: number | null };
  correspondence: Int32Array | null;
  /** The shuffle-BN permutation of the job's key batch that this rank used (rank 0's). */
  permutation: Int32Array;
  times: SyncTimes;
}

interface Bucket {
  /** Elements of the flat gradient store [offset, offset + length). */
  offset: number;
  length: number;
  staging: Readback;
  /** Holds the heads' gradients (complete before the backbone's backward). */
  heads: boolean;
}

/** 4 MiB: a few buckets for ResNet-18 (48 MB of gradients), so their transfers overlap. */
export const DEFAULT_BUCKET_BYTES = 4 << 20;

const now = (): number => performance.now();

export class DataParallel {
  readonly buckets: Bucket[];
  /** Loss, global loss, dense loss of this rank, summed over ranks with the last bucket. */
  private readonly statsStaging: Readback;
  private broadcastDone = false;

  constructor(
    readonly rt: Runtime,
    readonly model: DenseCL,
    readonly sgd: Sgd,
    readonly comm: Communicator,
    bucketBytes = DEFAULT_BUCKET_BYTES,
  ) {
    const grads = model.query.grads;
    const total = grads.flat.size;
    // The heads' parameters come after the backbone's in the store (see DenseCL's specs).
    const headsStart = Math.min(...[...grads.offsets].filter(([name]) => name.startsWith('neck.')).map(([, at]) => at));
    const per = Math.max(1, Math.floor(bucketBytes / 4));
    this.buckets = [];
    // Backward finishes the last layers first, so the buckets run from the end of the store.
    for (const [from, to, heads] of [
      [headsStart, total, true],
      [0, headsStart, false],
    ] as const) {
      for (let end = to; end > from; end -= per) {
        const offset = Math.max(from, end - per);
        const length = end - offset;
        const staging = new Readback(rt, length * 4, `dp.bucket${this.buckets.length}`);
        this.buckets.push({ offset, length, staging, heads });
      }
    }
    this.statsStaging = new Readback(rt, 12, 'dp.stats');
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
  async step(
    xq: Float32Array,
    xk: Float32Array,
    imgSize: number,
    stepIndex: number,
    lr: number,
    rng: Rng,
    wantCorrespondence = false,
  ): Promise<DataParallelStep> {
    if (!this.broadcastDone) await this.broadcastState();
    const { comm, model, rt } = this;
    const W = comm.size;
    const per = 3 * imgSize * imgSize;
    const n = xk.length / per;
    const B = n * W;
    const t0 = now();

    // Shuffle-BN: this rank encodes positions [rank * n, (rank + 1) * n) of the shuffled job batch.
    const allKeys = await comm.allgather(xk);
    const drawn = Int32Array.from(rng.permutation(B));
    const perm = await comm.broadcast(drawn, 0);
    let keyCollectives = now() - t0;
    const slice = new Float32Array(n * per);
    for (let i = 0; i < n; i++) {
      const src = perm[comm.rank * n + i] * per;
      slice.set(allKeys.subarray(src, src + per), i * per);
    }
    const staged = scope(() => {
      const out = model.keyForward(tensorOn(rt, slice, [n, 3, imgSize, imgSize]));
      return stageConcat(rt, [out.features, out.globalEmbedding, out.denseGrid, out.densePooled], 'dp.keys');
    });
    const shapes = keyShapes(model, imgSize);
    const localKeys = await staged.readback.take(staged.count).finally(() => staged.readback.destroy());
    const tg = now();
    const gathered = await comm.allgather(localKeys);
    keyCollectives += now() - tg;
    const keys = unshuffle(gathered, perm, shapes, comm.rank, n);
    const t1 = now();

    // Query forward, loss, backward; the heads' gradient buckets are staged and submitted in the
    // middle of the backward, the backbone's with the loss figures at the end.
    const outs = scope(() => {
      model.query.zeroGrad();
      const up = (v: Float32Array | null, shape: number[]) => (v ? tensorOn(rt, v, shape) : null);
      const stepKeys: StepKeys = {
        own: {
          features: up(keys.own.features, [n, ...shapes.features])!,
          globalEmbedding: up(keys.own.globalEmbedding, [n, shapes.dim])!,
          denseGrid: up(keys.own.denseGrid, [n, ...shapes.denseGrid]),
          densePooled: null,
        },
        enqueue: {
          globalEmbedding: up(keys.all.globalEmbedding, [B, shapes.dim])!,
          densePooled: up(keys.all.densePooled, [B, shapes.dim]),
        },
      };
      const out = model.trainStepWithKeys(tensorOn(rt, xq, [n, 3, imgSize, imgSize]), stepKeys, stepIndex, () =>
        this.stage(true),
      );
      [out.loss, out.lossGlobal, out.lossDense].forEach((t, i) => {
        if (t) copyTo(t, this.statsStaging, i * 4);
      });
      this.stage(false);
      return wantCorrespondence ? out.correspondence : null;
    });
    const correspondence = outs ? ((await outs.data().finally(() => outs.dispose())) as Int32Array) : null;

    const { stats, times } = await this.syncGradients(t1);
    noGrad(() => this.sgd.step(lr, 1 / W));
    rt.flush();
    const dense = model.cfg.method === 'densecl';
    return {
      out: { loss: stats[0] / W, lossGlobal: stats[1] / W, lossDense: dense ? stats[2] / W : null },
      correspondence,
      permutation: perm,
      times: { ...times, keyExchange: t1 - t0, keyCollectives },
    };
  }

  /** Copies the heads' (or the other) buckets to their staging buffers, submits, and asks for the maps. */
  private stage(heads: boolean): void {
    const grads = this.model.query.grads.flat.buffer('dp.grads');
    const mine = this.buckets.filter((b) => b.heads === heads);
    for (const b of mine) b.staging.copyIn(grads.buffer, grads.offset + b.offset * 4, 0, b.length * 4);
    this.rt.flush();
    // Through the runtime, which sleeps through most of the GPU time instead of spinning.
    for (const b of mine) void b.staging.requestMap();
  }

  /**
   * Sums the staged gradient buckets over ranks and writes them back. The maps were requested
   * when each part was submitted (stage); each all-reduce starts as soon as its bucket is on the
   * host (in the same order on every rank, as MPI requires), while later buckets are still being
   * computed or read back.
   */
  private async syncGradients(
    submitted: number,
  ): Promise<{ stats: Float32Array; times: Omit<SyncTimes, 'keyExchange' | 'keyCollectives'> }> {
    const { rt, comm } = this;
    const grads = this.model.query.grads;
    const statsMap = this.statsStaging.requestMap();
    let backboneOnHost = 0;
    let headsStart = 0;
    let headsReduced = 0;
    let allreduce = 0;
    let readback = 0;
    const last = this.buckets.length - 1;
    const stats = new Float32Array(3);
    const reductions: Promise<void>[] = [];
    for (let i = 0; i <= last; i++) {
      const b = this.buckets[i];
      const t = now();
      await b.staging.requestMap();
      if (i === last) await statsMap;
      if (!b.heads && !backboneOnHost) backboneOnHost = now();
      // The last bucket carries this rank's three loss figures, so they are summed for free.
      const host = await b.staging.take(b.length, new Float32Array(b.length + (i === last ? 3 : 0)));
      if (i === last) await this.statsStaging.take(3, host, b.length);
      if (b !== this.buckets.find((x) => x.heads === b.heads)) readback += now() - t;
      const started = now();
      if (b.heads && !headsStart) headsStart = started;
      reductions.push(
        comm.allreduceSum(host).then((sum) => {
          allreduce += now() - started;
          if (b.heads) headsReduced = Math.max(headsReduced, now());
          writeBufferFrom(rt, grads.buffer, b.offset * 4, sum.subarray(0, b.length));
          if (i === last) stats.set(sum.subarray(b.length));
        }),
      );
    }
    await Promise.all(reductions);
    // Until the backbone's first bucket arrived the GPU was still in the backbone's backward.
    const overlapped = Math.max(0, Math.min(headsReduced, backboneOnHost) - headsStart);
    return {
      stats,
      times: {
        computeWait: backboneOnHost - submitted,
        gradSync: now() - backboneOnHost,
        overlapped,
        allreduce,
        readback,
        buckets: this.buckets.length,
      },
    };
  }

  destroy(): void {
    for (const b of this.buckets) b.staging.destroy();
    this.statsStaging.destroy();
  }
}

export interface KeyShapes {
  dim: number;
  /** Per-image shapes of the backbone features [C, S2] and the dense grid [dim, S2] (DenseCL). */
  features: number[];
  denseGrid: number[];
  dense: boolean;
  /** Values per image of the features, global embedding, dense grid and pooled dense embedding (the last two only for DenseCL), in the order they are staged. */
  sizes: number[];
}

function keyShapes(model: DenseCL, imgSize: number): KeyShapes {
  const cells = (imgSize / model.backbone.stride) ** 2;
  const C = model.backbone.outChannels;
  const dim = model.cfg.dim;
  const dense = model.cfg.method === 'densecl';
  const sizes = dense ? [C * cells, dim, dim * cells, dim] : [C * cells, dim];
  return { dim, features: [C, cells], denseGrid: [dim, cells], dense, sizes };
}

/**
 * The gathered key outputs ([rank][part][image] blocks, images in shuffled order) put back in
 * data order: this rank's images' keys for the loss, and every image's global embedding and pooled dense embedding to enqueue.
 */
export function unshuffle(
  gathered: Float32Array,
  perm: Int32Array,
  shapes: KeyShapes,
  rank: number,
  n: number,
): {
  own: { features: Float32Array; globalEmbedding: Float32Array; denseGrid: Float32Array | null };
  all: { globalEmbedding: Float32Array; densePooled: Float32Array | null };
} {
  const B = perm.length;
  const { sizes } = shapes;
  const perRank = n * sizes.reduce((a, s) => a + s, 0);
  if (gathered.length !== perRank * (B / n))
    throw new Error(
      `key exchange: gathered ${gathered.length} values, expected ${perRank * (B / n)} (engine bug: ranks disagree on the key shapes)`,
    );
  const partStart = sizes.map((_, p) => n * sizes.slice(0, p).reduce((a, s) => a + s, 0));
  const where = new Int32Array(B); // image -> its position in the shuffled batch
  perm.forEach((img, j) => (where[img] = j));
  const row = (part: number, img: number): Float32Array => {
    const j = where[img];
    const at = Math.floor(j / n) * perRank + partStart[part] + (j % n) * sizes[part];
    return gathered.subarray(at, at + sizes[part]);
  };
  const collect = (part: number, images: number[]): Float32Array => {
    const out = new Float32Array(images.length * sizes[part]);
    images.forEach((img, i) => out.set(row(part, img), i * sizes[part]));
    return out;
  };
  const mine = Array.from({ length: n }, (_, i) => rank * n + i);
  const everyone = Array.from({ length: B }, (_, i) => i);
  return {
    own: {
      features: collect(0, mine),
      globalEmbedding: collect(1, mine),
      denseGrid: shapes.dense ? collect(2, mine) : null,
    },
    all: { globalEmbedding: collect(1, everyone), densePooled: shapes.dense ? collect(3, everyone) : null },
  };
}

/** Copies the tensors' values, back to back, into a new readback buffer and submits (one readback for all). */
function stageConcat(rt: Runtime, tensors: (Tensor | null)[], label: string): { readback: Readback; count: number } {
  const present = tensors.filter((t): t is Tensor => t !== null);
  const count = present.reduce((a, t) => a + t.size, 0);
  const readback = new Readback(rt, count * 4, label);
  let at = 0;
  for (const t of present) {
    copyTo(t, readback, at * 4);
    at += t.size;
  }
  rt.flush();
  void readback.requestMap();
  return { readback, count };
}

function copyTo(t: Tensor, dst: Readback, dstOffset: number): void {
  const src = t.buffer('dp.copy');
  dst.copyIn(src.buffer, src.offset, dstOffset, t.size * 4);
}

/** Overwrites a whole flat store (alignment gaps included) after the commands recorded so far. */
function writeWhole(store: FlatStore, values: Float32Array): void {
  store.rt.flush();
  writeBufferFrom(store.rt, store.buffer, 0, values);
}
