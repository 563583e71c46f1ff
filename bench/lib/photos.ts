// A folder of photo-like JPEGs for the loader benchmark, made once and kept in the temp folder.
//
// What they are: the built-in procedural scenes (textured objects on cloudy backgrounds) drawn
// at 500x500 and cut to ImageNet's common sizes (500x375 mostly, some 500x333, 375x500 and
// 500x500), with photo-like detail laid over every pixel (fractal value noise: uneven lighting
// and surface texture; strong per-pixel grain), saved as baseline JPEG, quality 90, 4:2:0
// chroma. The detail matters: JPEG decode time grows with the entropy-coded data, and the flat
// synthetic colours alone make 37 KB files, where ImageNet's average about 110 KB; with it they
// average about 85 KB.
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SceneDataset, hash01 } from '../../train/data/scenes.js';
import { rngFor } from '../../train/data/seeds.js';
import { loadSharp } from '../../train/data/sharp.js';

export interface PhotoFolderOptions {
  count: number;
  seed?: number;
  /** JPEG quality, 1..100 (default 90). */
  quality?: number;
}

export interface PhotoFolder {
  dir: string;
  count: number;
  bytes: number;
}

// Width x height of photo i: ImageNet's common shapes, landscape 500x375 most often.
const SHAPES: readonly [number, number][] = [
  [500, 375],
  [500, 375],
  [500, 375],
  [500, 333],
  [375, 500],
  [500, 500],
];

export function photoSize(i: number): { width: number; height: number } {
  const [width, height] = SHAPES[i % SHAPES.length];
  return { width, height };
}

export const photoName = (i: number): string => `photo_${String(i).padStart(5, '0')}.jpg`;

// Detail laid over every pixel: value noise summed over octaves of 32..2 px cells, scaling the
// pixel by up to +-DETAIL/256, plus grain of GRAIN levels peak to peak (chosen for the file size).
const DETAIL = 60;
const GRAIN = 45;
const OCTAVES = [32, 16, 8, 4, 2];

// Smoothly interpolated lattice noise in [-0.5, 0.5) at pixel (x, y) for cells of `cell` px.
function valueNoise(x: number, y: number, cell: number, salt: number): number {
  const gx = x / cell,
    gy = y / cell;
  const ix = Math.floor(gx),
    iy = Math.floor(gy);
  const fx = gx - ix,
    fy = gy - iy;
  const sx = fx * fx * (3 - 2 * fx),
    sy = fy * fy * (3 - 2 * fy);
  const a = hash01(ix, iy, salt),
    b = hash01(ix + 1, iy, salt);
  const c = hash01(ix, iy + 1, salt),
    d = hash01(ix + 1, iy + 1, salt);
  const top = a + (b - a) * sx;
  return top + (c + (d - c) * sx - top) * sy - 0.5;
}

function addDetail(data: Uint8Array, side: number, seed: number, i: number): void {
  const rng = rngFor(seed, i, 0x9a1a);
  const salts = OCTAVES.map(() => rng.nextU32() | 0);
  const norm = DETAIL / OCTAVES.length;
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      let d = 0;
      for (let o = 0; o < OCTAVES.length; o++) d += valueNoise(x, y, OCTAVES[o], salts[o]);
      d *= norm;
      const p = (y * side + x) * 3;
      for (let c = 0; c < 3; c++)
        data[p + c] = Math.min(255, Math.max(0, data[p + c] * (1 + d / 128) + (rng.next() - 0.5) * GRAIN));
    }
  }
}

/** Writes `count` photos into `dir` (which must exist). */
export async function writePhotos(dir: string, opts: PhotoFolderOptions): Promise<void> {
  const { count, seed = 0, quality = 90 } = opts;
  if (!Number.isInteger(count) || count < 1) throw new Error(`photo folder: count ${count} must be a positive integer`);
  if (!Number.isInteger(quality) || quality < 1 || quality > 100)
    throw new Error(`photo folder: JPEG quality ${quality} must be an integer in 1..100`);
  const sharp = await loadSharp();
  const scenes = new SceneDataset({ seed, size: 500, length: count });
  for (let i = 0; i < count; i++) {
    const { width, height } = photoSize(i);
    const { data } = scenes.get(i).image;
    addDetail(data, 500, seed, i);
    const left = (500 - width) >> 1;
    const top = (500 - height) >> 1;
    await sharp(data, { raw: { width: 500, height: 500, channels: 3 } })
      .extract({ left, top, width, height })
      .jpeg({ quality, chromaSubsampling: '4:2:0', mozjpeg: false })
      .toFile(join(dir, photoName(i)));
  }
}

/**
 * The photo folder for these options under the temp folder, made on first use (into a
 * temporary name, renamed when complete, so an interrupted run is never taken for a finished one).
 */
export async function cachedPhotoFolder(
  opts: PhotoFolderOptions,
  root = join(tmpdir(), 'densecl-bench-photos'),
): Promise<PhotoFolder & { made: boolean }> {
  const { count, seed = 0, quality = 90 } = opts;
  const dir = join(root, `v1-n${count}-q${quality}-s${seed}`);
  let made = false;
  if (!existsSync(dir)) {
    mkdirSync(root, { recursive: true });
    const partial = `${dir}.partial-${process.pid}`;
    rmSync(partial, { recursive: true, force: true });
    mkdirSync(partial);
    try {
      await writePhotos(partial, { count, seed, quality });
      renameSync(partial, dir);
    } catch (e) {
      rmSync(partial, { recursive: true, force: true });
      // Another process may have finished the same folder first.
      if (!existsSync(dir)) throw e;
    }
    made = true;
  }
  const files = readdirSync(dir).filter((f) => f.endsWith('.jpg'));
  const bytes = files.reduce((s, f) => s + statSync(join(dir, f)).size, 0);
  return { dir, count: files.length, bytes, made };
}
