// The gradient sync of a data-parallel step: the flat gradient store summed over ranks in
// buckets (last parameters first), each bucket's readback, all-reduce and write-back overlapping
// the other buckets'. The heads' buckets are submitted as soon as their backward is recorded, so
// their exchange runs while the GPU does the backbone's backward; the rank's loss figures ride
// with the last bucket.
import type { Runtime, Tensor, FlatStore } from '../engine/index.js';
import type { Communicator } from '../engine/comm/communicator.js';
import { Readback, writeBufferFrom } from '../engine/staging.js';
import type { SyncTimes } from './step-strategy.js';

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

export class GradientBuckets {
  readonly buckets: Bucket[];
  /** Loss, global loss, dense loss of this rank, summed over ranks with the last bucket. */
  private readonly statsStaging: Readback;

  /** `headsStart`: the first element of the heads' gradients, which come after the backbone's in `grads`. */
  constructor(
    private readonly rt: Runtime,
    private readonly grads: FlatStore,
    private readonly comm: Communicator,
    headsStart: number,
    bucketBytes = DEFAULT_BUCKET_BYTES,
  ) {
    const per = Math.max(1, Math.floor(bucketBytes / 4));
    this.buckets = [];
    // Backward finishes the last layers first, so the buckets run from the end of the store.
    for (const [from, to, heads] of [
      [headsStart, grads.flat.size, true],
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

  /** Copies the heads' (or the other) buckets to their staging buffers, submits, and asks for the maps. */
  stage(heads: boolean): void {
    const grads = this.grads.flat.buffer('dp.grads');
    const mine = this.buckets.filter((b) => b.heads === heads);
    for (const b of mine) b.staging.copyIn(grads.buffer, grads.offset + b.offset * 4, 0, b.length * 4);
    this.rt.flush();
    // Through the runtime, which sleeps through most of the GPU time instead of spinning.
    for (const b of mine) void b.staging.requestMap();
  }

  /**
   * Asks for every bucket's map (those already asked for keep their request): after a replayed
   * step part, whose staging copies were submitted without the host in between.
   */
  requestMaps(): void {
    for (const b of this.buckets) void b.staging.requestMap();
  }

  /** Records the copy of this rank's loss, global loss and dense loss (when present), summed by sync(). */
  stageLosses(losses: (Tensor | null)[]): void {
    losses.forEach((t, i) => {
      if (t) this.statsStaging.copyTensor(t, i * 4);
    });
  }

  /**
   * Sums the staged gradient buckets over ranks and writes them back; returns the loss figures
   * summed over ranks. The maps were requested when each part was submitted (stage); each
   * all-reduce starts as soon as its bucket is on the host (in the same order on every rank, as
   * MPI requires), while later buckets are still being computed or read back. `submitted`: when
   * the query forward and backward were submitted.
   */
  async sync(
    submitted: number,
  ): Promise<{ stats: Float32Array; times: Omit<SyncTimes, 'keyExchange' | 'keyCollectives' | 'issue'> }> {
    const { rt, comm, grads } = this;
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
