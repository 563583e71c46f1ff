// Shuffle-BN across the ranks of a data-parallel job, as in the paper's code: the key views are
// all-gathered and rank 0's permutation broadcast (by the caller), each rank encodes its slice of
// the shuffled batch, the key outputs are read back, all-gathered and put back in data order on
// the host, and uploaded as the step's keys; both queues get the whole job batch's keys. The
// uploads are named inputs, so a captured step part replays with the next step's keys.
import { inputOn } from '../engine/ops/create.js';
import type { Readback } from '../engine/staging.js';
import type { StepValues } from '../engine/capture.js';
import type { Runtime, Tensor } from '../engine/index.js';
import type { DenseCL, KeyOutputs, StepKeys } from '../models/densecl.js';

/** This rank's key views: positions [rank * n, (rank + 1) * n) of the job's key batch (`all`, [B, per]) shuffled by `perm`. */
export function shuffledSlice(all: Float32Array, perm: Int32Array, rank: number, n: number): Float32Array {
  const per = all.length / perm.length;
  const slice = new Float32Array(n * per);
  for (let i = 0; i < n; i++) {
    const src = perm[rank * n + i] * per;
    slice.set(all.subarray(src, src + per), i * per);
  }
  return slice;
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

/** The shapes of the key outputs a rank stages, for a model at views of side `imgSize`. */
export function keyShapes(model: DenseCL, imgSize: number): KeyShapes {
  const cells = (imgSize / model.backbone.stride) ** 2;
  const C = model.backbone.outChannels;
  const dim = model.cfg.dim;
  const dense = model.cfg.method === 'densecl';
  const sizes = dense ? [C * cells, dim, dim * cells, dim] : [C * cells, dim];
  return { dim, features: [C, cells], denseGrid: [dim, cells], dense, sizes };
}

/** The job's keys on the host in data order: this rank's images' for the loss, every image's to enqueue. */
export interface HostKeys {
  own: { features: Float32Array; globalEmbedding: Float32Array; denseGrid: Float32Array | null };
  all: { globalEmbedding: Float32Array; densePooled: Float32Array | null };
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
): HostKeys {
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

/** The job's keys as named uploads (a captured step's inputs): name, values, shape; the dense ones only for DenseCL. */
function keyUploads(keys: HostKeys, shapes: KeyShapes): { name: string; data: Float32Array; shape: number[] }[] {
  const n = keys.own.globalEmbedding.length / shapes.dim; // this rank's images
  const B = keys.all.globalEmbedding.length / shapes.dim; // the job's
  const uploads = [
    { name: 'keys.features', data: keys.own.features, shape: [n, ...shapes.features] },
    { name: 'keys.global', data: keys.own.globalEmbedding, shape: [n, shapes.dim] },
    { name: 'keys.dense', data: keys.own.denseGrid, shape: [n, ...shapes.denseGrid] },
    { name: 'keys.enqueue', data: keys.all.globalEmbedding, shape: [B, shapes.dim] },
    { name: 'keys.enqueue2', data: keys.all.densePooled, shape: [B, shapes.dim] },
  ];
  return uploads.filter((u): u is { name: string; data: Float32Array; shape: number[] } => u.data !== null);
}

/** The job's keys uploaded as a step takes them, each a named input (keyValues gives a replay the same names). */
export function keysOn(rt: Runtime, keys: HostKeys, shapes: KeyShapes): StepKeys {
  const up = new Map(keyUploads(keys, shapes).map((u) => [u.name, inputOn(rt, u.name, u.data, u.shape)]));
  return {
    own: {
      features: up.get('keys.features')!,
      globalEmbedding: up.get('keys.global')!,
      denseGrid: up.get('keys.dense') ?? null,
      densePooled: null,
    },
    enqueue: { globalEmbedding: up.get('keys.enqueue')!, densePooled: up.get('keys.enqueue2') ?? null },
  };
}

/** The job's keys as a replayed step takes them (the inputs keysOn names). */
export function keyValues(keys: HostKeys, shapes: KeyShapes): StepValues {
  return Object.fromEntries(keyUploads(keys, shapes).map((u) => [u.name, u.data]));
}

/** How many values a rank stages of its key outputs (stageKeys). */
export function keyCount(shapes: KeyShapes, n: number): number {
  return n * shapes.sizes.reduce((a, s) => a + s, 0);
}

/**
 * Records the copies of the key outputs' values, back to back in KeyShapes.sizes order, into
 * `readback` (submitted with the step's part; the caller asks for the map after it).
 */
export function stageKeys(out: KeyOutputs, readback: Readback): void {
  const present = [out.features, out.globalEmbedding, out.denseGrid, out.densePooled].filter(
    (t): t is Tensor => t !== null,
  );
  let at = 0;
  for (const t of present) {
    readback.copyTensor(t, at * 4);
    at += t.size;
  }
}
