// The batch loader: for each step, two augmented views (query and key) of a batch of images.
//
// Determinism: the epoch's order comes from (seed, epoch) and each view's augmentation from
// (seed, epoch, image index, view), so the batches do not depend on how many workers made them
// or in which order they finished. The sampler state (seed, epoch, position) is all a resumed
// run needs to continue with the very next batch.
//
// Browser-safe: Node modules (worker_threads, fs, os) are imported only when workers are used.
import { augmentView, cropLabels, MOCO_V2, type AugmentConfig, type RgbImage, type ViewParams } from './augment.js';
import { rngFor } from './seeds.js';
import type { SceneOptions } from './scenes.js';
import type { FolderSpec } from './folder.js';

export interface Sample {
  image: RgbImage;
  /** Class for linear evaluation; -1 when unknown. */
  label: number;
  /** Per-pixel labels (image.height x image.width), when the dataset has them. */
  labelMap?: Uint8Array;
}

/** How a worker thread rebuilds the dataset. */
export type DatasetSpec = { kind: 'scenes'; options: SceneOptions } | { kind: 'folder'; spec: FolderSpec };

export interface LoaderDataset {
  readonly length: number;
  get(index: number): Sample | Promise<Sample>;
  /** Path or name of sample i, for warnings. */
  path?(index: number): string;
  /** Needed only to use worker threads. */
  workerSpec?(): DatasetSpec;
}

export interface SamplerState {
  seed: number;
  epoch: number;
  /** Batches of this epoch already handed out. */
  position: number;
}

/**
 * How views come out: normalised floats, or bytes 0..255 before the normalisation (4x smaller to
 * pass between threads and to upload; the Trainer normalises them on the GPU).
 */
export type PixelFormat = 'floats' | 'bytes';
/** A batch of views, as floats or as bytes. */
export type ViewBatch = Float32Array | Uint8Array;
export type ViewsOf<P extends PixelFormat> = P extends 'bytes' ? Uint8Array : Float32Array;

export interface LoaderOptions<P extends PixelFormat = 'floats'> {
  batchSize: number;
  /** Side of the square views. */
  size: number;
  seed: number;
  augment?: AugmentConfig;
  /** Worker threads for decoding and augmentation; 0 works in this thread; 'auto' = min(2, cores). */
  workers?: number | 'auto';
  /** Batches prepared ahead of the one being used (default workers + 1, at least 2). */
  prefetch?: number;
  /**
   * Data-parallel slicing: the job's batch is batchSize * worldSize images and this process makes
   * the rank-th contiguous slice of batchSize of each, so the job's batches (and the sampler
   * state) are the same for any number of processes with the same job batch.
   */
  rank?: number;
  worldSize?: number;
  /** Also crop each view's label map with the view's geometry (datasets with label maps). */
  withLabelMaps?: boolean;
  /** Continue from a saved sampler state. */
  resume?: SamplerState;
  /** 'floats' (default) or 'bytes': see PixelFormat. */
  pixels?: P;
  onWarning?: (message: string) => void;
  /** The bundled worker entry (default: data-worker.mjs next to this bundle). */
  workerUrl?: URL;
}

export interface Batch<V extends ViewBatch = Float32Array> {
  epoch: number;
  /** Index of this batch within the epoch, and over the whole run. */
  position: number;
  step: number;
  /** [B, 3, S, S] each: normalised floats, or bytes with pixels: 'bytes'. */
  q: V;
  k: V;
  indices: Int32Array;
  labels: Int32Array;
  geometry: { q: ViewParams[]; k: ViewParams[] };
  /** [B, S, S] each, with withLabelMaps. */
  qLabelMaps?: Uint8Array;
  kLabelMaps?: Uint8Array;
}

export interface LoadFailure {
  index: number;
  path: string;
  reason: string;
}

/** The per-batch settings that a worker needs. */
export interface BatchConfig {
  seed: number;
  size: number;
  augment: AugmentConfig;
  withLabelMaps: boolean;
  pixels: PixelFormat;
}

export interface BatchJob {
  epoch: number;
  indices: Int32Array;
}

export type BatchResult = Omit<Batch<ViewBatch>, 'epoch' | 'position' | 'step' | 'indices'> & {
  failures: LoadFailure[];
};

// A sample that fails to load is replaced by the next index that loads: a choice that depends
// only on the files, so it is the same in every worker.
const MAX_CONSECUTIVE_FAILURES = 50;

function describeFailure(ds: LoaderDataset, index: number, e: unknown): LoadFailure {
  const path = ds.path ? ds.path(index) : `sample ${index}`;
  // A decode error carries its reason apart from the path, which the warning names anyway.
  const reason = (e as { reason?: unknown })?.reason;
  return {
    index,
    path,
    reason: typeof reason === 'string' ? reason : ((e as Error)?.message ?? String(e)).split('\n')[0],
  };
}

function tooManyFailures(failures: LoadFailure[]): Error {
  return new Error(
    `${failures.length} images in a row failed to load, the last ${failures[failures.length - 1].path} (${failures[failures.length - 1].reason}); is the data folder intact?`,
  );
}

async function loadAsync(ds: LoaderDataset, index: number, failures: LoadFailure[]): Promise<Sample> {
  const local: LoadFailure[] = [];
  for (let k = 0; k < MAX_CONSECUTIVE_FAILURES; k++) {
    const i = (index + k) % ds.length;
    try {
      const s = await ds.get(i);
      failures.push(...local);
      return s;
    } catch (e) {
      local.push(describeFailure(ds, i, e));
    }
  }
  throw tooManyFailures(local);
}

function loadSync(ds: LoaderDataset, index: number, failures: LoadFailure[]): Sample {
  for (let k = 0; k < MAX_CONSECUTIVE_FAILURES; k++) {
    const i = (index + k) % ds.length;
    let s: Sample | Promise<Sample>;
    try {
      s = ds.get(i);
    } catch (e) {
      failures.push(describeFailure(ds, i, e));
      continue;
    }
    if (s instanceof Promise)
      throw new Error(
        'this dataset loads asynchronously (image files); use `await loader.next()` instead of nextSync()',
      );
    return s;
  }
  throw tooManyFailures(failures.slice(-MAX_CONSECUTIVE_FAILURES));
}

function augmentBatch(samples: Sample[], job: BatchJob, cfg: BatchConfig, failures: LoadFailure[]): BatchResult {
  const B = samples.length;
  const S = cfg.size;
  const per = 3 * S * S;
  const bytes = cfg.pixels === 'bytes';
  const q = bytes ? new Uint8Array(B * per) : new Float32Array(B * per);
  const k = bytes ? new Uint8Array(B * per) : new Float32Array(B * per);
  // Byte views are augmented unnormalised (mean 0, std 1: values in [0, 1]) into one float view, then rounded.
  const augment = bytes
    ? { ...cfg.augment, mean: [0, 0, 0] as [number, number, number], std: [1, 1, 1] as [number, number, number] }
    : cfg.augment;
  const scratch = bytes ? new Float32Array(per) : null;
  const view = (image: Sample['image'], rng: ReturnType<typeof rngFor>, into: ViewBatch, at: number): ViewParams => {
    if (!scratch) return augmentView(image, rng, S, augment, into as Float32Array, at).params;
    const { params } = augmentView(image, rng, S, augment, scratch, 0);
    toBytes(scratch, into as Uint8Array, at);
    return params;
  };
  const labels = new Int32Array(B);
  const geometry: BatchResult['geometry'] = { q: [], k: [] };
  const qLabelMaps = cfg.withLabelMaps ? new Uint8Array(B * S * S) : undefined;
  const kLabelMaps = cfg.withLabelMaps ? new Uint8Array(B * S * S) : undefined;
  for (let b = 0; b < B; b++) {
    const s = samples[b];
    const idx = job.indices[b];
    const vq = view(s.image, rngFor(cfg.seed, job.epoch, idx, 0), q, b * per);
    const vk = view(s.image, rngFor(cfg.seed, job.epoch, idx, 1), k, b * per);
    geometry.q.push(vq);
    geometry.k.push(vk);
    labels[b] = s.label;
    if (qLabelMaps && kLabelMaps) {
      if (!s.labelMap)
        throw new Error(`withLabelMaps: sample ${idx} has no label map (only the built-in scenes have them)`);
      cropLabels(s.labelMap, vq, qLabelMaps, b * S * S);
      cropLabels(s.labelMap, vk, kLabelMaps, b * S * S);
    }
  }
  return { q, k, labels, geometry, qLabelMaps, kLabelMaps, failures };
}

/** Values in [0, 1] as bytes 0..255 (rounded to nearest, clamped), written at `at`. */
export function toBytes(x: Float32Array, out: Uint8Array, at: number): void {
  for (let i = 0; i < x.length; i++) out[at + i] = Math.min(255, Math.max(0, Math.round(x[i] * 255)));
}

/** Loads and augments one batch (used in this thread and in the workers alike). */
export async function computeBatch(ds: LoaderDataset, job: BatchJob, cfg: BatchConfig): Promise<BatchResult> {
  const failures: LoadFailure[] = [];
  const samples = await Promise.all(Array.from(job.indices, (i) => loadAsync(ds, i, failures)));
  failures.sort((a, b) => a.index - b.index);
  return augmentBatch(samples, job, cfg, failures);
}

export function computeBatchSync(ds: LoaderDataset, job: BatchJob, cfg: BatchConfig): BatchResult {
  const failures: LoadFailure[] = [];
  const samples = Array.from(job.indices, (i) => loadSync(ds, i, failures));
  return augmentBatch(samples, job, cfg, failures);
}

/** Epoch orders: a seeded permutation per epoch cut into whole job batches, each sliced across ranks. */
export class EpochSampler {
  /** Images per batch of the whole job (all ranks). */
  readonly jobBatch: number;
  readonly batchesPerEpoch: number;
  private cache = new Map<number, Int32Array>();

  constructor(
    readonly length: number,
    readonly batchSize: number,
    readonly seed: number,
    readonly rank = 0,
    readonly worldSize = 1,
  ) {
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new Error(`batch size ${batchSize} must be a positive integer`);
    if (!Number.isInteger(worldSize) || worldSize < 1 || !Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
      throw new Error(`rank ${rank} / worldSize ${worldSize}: need 0 <= rank < worldSize`);
    }
    this.jobBatch = batchSize * worldSize;
    // The epoch's last few images (fewer than a job batch) go unused.
    this.batchesPerEpoch = Math.floor(length / this.jobBatch);
    if (this.batchesPerEpoch < 1) {
      const share = worldSize > 1 ? ` (${batchSize} per rank over ${worldSize} ranks)` : '';
      throw new Error(
        `batch size ${this.jobBatch}${share} is larger than the dataset: ${length} images; use a smaller --batch-size or more images`,
      );
    }
  }

  /** Image indices of this rank's slice of batch `position` of `epoch`. */
  batch(epoch: number, position: number): Int32Array {
    let order = this.cache.get(epoch);
    if (!order) {
      order = Int32Array.from(rngFor(this.seed, epoch, 0x0de4).permutation(this.length));
      if (this.cache.size >= 2) this.cache.delete(Math.min(...this.cache.keys()));
      this.cache.set(epoch, order);
    }
    const start = position * this.jobBatch + this.rank * this.batchSize;
    return order.slice(start, start + this.batchSize);
  }
}

interface Pending {
  epoch: number;
  position: number;
  indices: Int32Array;
  result: Promise<BatchResult>;
}

// A few worker threads, each given whole batches; results come back with their buffers
// transferred, not copied.
class WorkerPool {
  private workers: { w: import('node:worker_threads').Worker; busy: number }[] = [];
  private jobs = new Map<number, { resolve: (r: BatchResult) => void; reject: (e: Error) => void; worker: number }>();
  private nextId = 0;
  private failed: Error | null = null;

  static async start(n: number, url: URL, dataset: DatasetSpec, cfg: BatchConfig): Promise<WorkerPool> {
    const { Worker } = await import('node:worker_threads');
    const { existsSync } = await import('node:fs');
    const { fileURLToPath } = await import('node:url');
    if (url.protocol === 'file:' && !existsSync(fileURLToPath(url))) {
      throw new Error(
        `data worker bundle not found at ${fileURLToPath(url)}: build it with \`node scripts/build.mjs\` (it bundles train/data/worker.ts), or use workers: 0`,
      );
    }
    const pool = new WorkerPool();
    for (let i = 0; i < n; i++) {
      const w = new Worker(url, { workerData: { dataset, cfg } });
      w.on('message', (m: { id: number; ok: boolean; result?: BatchResult; message?: string }) => pool.settle(m));
      w.on('error', (e: Error) => pool.fail(new Error(`data worker ${i} failed: ${e.message}`)));
      w.on('exit', (code) => {
        if (code !== 0) pool.fail(new Error(`data worker ${i} exited with code ${code}`));
      });
      pool.workers.push({ w, busy: 0 });
    }
    return pool;
  }

  run(job: BatchJob): Promise<BatchResult> {
    if (this.failed) return Promise.reject(this.failed);
    let pick = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.workers[i].busy < this.workers[pick].busy) pick = i;
    const id = this.nextId++;
    this.workers[pick].busy++;
    return new Promise((resolve, reject) => {
      this.jobs.set(id, { resolve, reject, worker: pick });
      this.workers[pick].w.postMessage({ id, epoch: job.epoch, indices: job.indices });
    });
  }

  private settle(m: { id: number; ok: boolean; result?: BatchResult; message?: string }): void {
    const job = this.jobs.get(m.id);
    if (!job) return;
    this.jobs.delete(m.id);
    this.workers[job.worker].busy--;
    if (m.ok) job.resolve(m.result!);
    else job.reject(new Error(m.message));
  }

  private fail(e: Error): void {
    this.failed ??= e;
    for (const j of this.jobs.values()) j.reject(e);
    this.jobs.clear();
  }

  async close(): Promise<void> {
    this.fail(new Error('the data loader was closed'));
    const ws = this.workers;
    this.workers = [];
    await Promise.all(ws.map(({ w }) => w.terminate()));
  }
}

/** The settings a batch is made with, from the loader's options (the same in every worker). */
function batchConfig(opts: LoaderOptions<PixelFormat>): BatchConfig {
  return {
    seed: opts.seed,
    size: opts.size,
    augment: opts.augment ?? MOCO_V2,
    withLabelMaps: opts.withLabelMaps ?? false,
    pixels: opts.pixels ?? 'floats',
  };
}

export class BatchLoader<V extends ViewBatch = Float32Array> {
  readonly sampler: EpochSampler;
  readonly batchSize: number;
  readonly size: number;
  /** Every image that failed to load so far (each named once in a warning). */
  readonly failures: LoadFailure[] = [];
  private epoch: number;
  private position: number;
  private schedEpoch: number;
  private schedPosition: number;
  private queue: Pending[] = [];
  private warned = new Set<number>();
  private warnedSmall = false;
  private warn: (m: string) => void;
  private cfg: BatchConfig;
  private prefetch: number;

  private constructor(
    private dataset: LoaderDataset,
    opts: LoaderOptions<PixelFormat>,
    private pool: WorkerPool | null,
  ) {
    const rank = opts.rank ?? 0;
    const worldSize = opts.worldSize ?? 1;
    this.sampler = new EpochSampler(dataset.length, opts.batchSize, opts.seed, rank, worldSize);
    this.batchSize = opts.batchSize;
    this.size = opts.size;
    this.cfg = batchConfig(opts);
    this.epoch = opts.resume?.epoch ?? 0;
    this.position = opts.resume?.position ?? 0;
    this.schedEpoch = this.epoch;
    this.schedPosition = this.position;
    this.warn = opts.onWarning ?? ((m) => console.warn(`warning: ${m}`));
    this.prefetch = opts.prefetch ?? Math.max(2, (pool ? (opts.workers as number) : 0) + 1);
  }

  static async create<P extends PixelFormat = 'floats'>(
    dataset: LoaderDataset,
    opts: LoaderOptions<P>,
  ): Promise<BatchLoader<ViewsOf<P>>> {
    if (!Number.isInteger(opts.size) || opts.size < 1)
      throw new Error(`view size ${opts.size} must be a positive integer`);
    if (opts.pixels !== undefined && opts.pixels !== 'floats' && opts.pixels !== 'bytes')
      throw new Error(`pixels '${opts.pixels}' must be 'floats' or 'bytes'`);
    if (opts.resume && opts.resume.seed !== opts.seed) {
      throw new Error(
        `resume: the saved sampler state has seed ${opts.resume.seed} but the loader was given seed ${opts.seed}`,
      );
    }
    // Validates batch size against the dataset before any thread starts.
    new EpochSampler(dataset.length, opts.batchSize, opts.seed, opts.rank ?? 0, opts.worldSize ?? 1);
    let workers = opts.workers ?? 0;
    if (workers === 'auto') {
      const os = await import('node:os');
      workers = Math.min(2, os.availableParallelism());
    }
    if (!Number.isInteger(workers) || workers < 0) throw new Error(`workers ${workers} must be a non-negative integer`);
    let pool: WorkerPool | null = null;
    if (workers > 0) {
      if (!dataset.workerSpec)
        throw new Error('this dataset cannot be rebuilt in a worker thread (no workerSpec()); use workers: 0');
      pool = await WorkerPool.start(
        workers,
        opts.workerUrl ?? new URL('./data-worker.mjs', import.meta.url),
        dataset.workerSpec(),
        batchConfig(opts),
      );
    }
    return new BatchLoader<ViewsOf<P>>(dataset, { ...opts, workers }, pool);
  }

  get batchesPerEpoch(): number {
    return this.sampler.batchesPerEpoch;
  }

  /** Where the next batch handed out comes from; save it to resume. */
  state(): SamplerState {
    return { seed: this.cfg.seed, epoch: this.epoch, position: this.position };
  }

  private schedule(): void {
    while (this.queue.length < this.prefetch) {
      const epoch = this.schedEpoch;
      const position = this.schedPosition;
      const indices = this.sampler.batch(epoch, position);
      const job = { epoch, indices };
      const result = this.pool ? this.pool.run(job) : computeBatch(this.dataset, job, this.cfg);
      result.catch(() => {}); // reported when this batch is asked for
      this.queue.push({ epoch, position, indices, result });
      if (++this.schedPosition === this.sampler.batchesPerEpoch) {
        this.schedPosition = 0;
        this.schedEpoch++;
      }
    }
  }

  private finish(p: Pick<Pending, 'epoch' | 'position' | 'indices'>, r: BatchResult): Batch<V> {
    for (const f of r.failures) {
      if (this.warned.has(f.index)) continue;
      this.warned.add(f.index);
      this.failures.push(f);
      this.warn(
        `skipped unreadable image ${f.path} (${f.reason}); the next image takes its place (${this.failures.length} skipped so far)`,
      );
    }
    if (!this.warnedSmall) {
      const b = r.geometry.q.findIndex((g) => Math.min(g.srcWidth, g.srcHeight) < this.size);
      if (b >= 0) {
        this.warnedSmall = true;
        const g = r.geometry.q[b];
        const name = this.dataset.path ? this.dataset.path(p.indices[b]) : `sample ${p.indices[b]}`;
        this.warn(
          `some images are smaller than the ${this.size}x${this.size} views and are upscaled (first seen: ${name}, ${g.srcWidth}x${g.srcHeight})`,
        );
      }
    }
    this.position = p.position + 1;
    this.epoch = p.epoch;
    if (this.position === this.sampler.batchesPerEpoch) {
      this.position = 0;
      this.epoch++;
    }
    const { failures: _, ...rest } = r;
    // The views are of the loader's pixel format (cfg.pixels, fixed when it was created).
    return {
      ...rest,
      epoch: p.epoch,
      position: p.position,
      step: p.epoch * this.sampler.batchesPerEpoch + p.position,
      indices: p.indices,
    } as Batch<V>;
  }

  /** The next batch; the following ones are being prepared meanwhile. */
  async next(): Promise<Batch<V>> {
    this.schedule();
    const p = this.queue.shift()!;
    const r = await p.result;
    this.schedule();
    return this.finish(p, r);
  }

  /** The next batch, made in this thread (browser; datasets that load synchronously). */
  nextSync(): Batch<V> {
    if (this.pool || this.queue.length)
      throw new Error('nextSync() works only with workers: 0 and without mixing in next()');
    const p = { epoch: this.epoch, position: this.position, indices: this.sampler.batch(this.epoch, this.position) };
    const batch = this.finish(p, computeBatchSync(this.dataset, p, this.cfg));
    this.schedEpoch = this.epoch;
    this.schedPosition = this.position;
    return batch;
  }

  async close(): Promise<void> {
    this.queue = [];
    await this.pool?.close();
  }
}
