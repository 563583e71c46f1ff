// The built-in dataset: procedural scenes of 2-5 textured objects on a textured background,
// each with a per-pixel label map. Sample i of a given seed is always the same image, made on the
// fly (no files), so the default run and the evaluations need no download. Pure computation:
// usable in worker threads and in the browser.
//
// A class is a (shape, texture) pair; every shape and most textures appear in two classes, so
// neither alone tells the class, and colours are random per object, so colour never does.
import { rngFor } from './seeds.js';
import type { Rng } from '../../engine/random.js';
import type { RgbImage } from './augment.js';

export type Shape = 'disc' | 'rect' | 'triangle' | 'ring';
export type Texture = 'stripes' | 'dots' | 'checkers' | 'noise' | 'gradient';

/** Label map value k (1..8) is SCENE_CLASSES[k - 1]; 0 is background. */
export const SCENE_CLASSES: readonly { name: string; shape: Shape; texture: Texture }[] = [
  { name: 'striped disc', shape: 'disc', texture: 'stripes' },
  { name: 'dotted disc', shape: 'disc', texture: 'dots' },
  { name: 'checkered rectangle', shape: 'rect', texture: 'checkers' },
  { name: 'striped rectangle', shape: 'rect', texture: 'stripes' },
  { name: 'dotted triangle', shape: 'triangle', texture: 'dots' },
  { name: 'noisy triangle', shape: 'triangle', texture: 'noise' },
  { name: 'checkered ring', shape: 'ring', texture: 'checkers' },
  { name: 'graded ring', shape: 'ring', texture: 'gradient' },
];

export interface SceneOptions {
  /** Which family of scenes; sample i of a seed never changes. */
  seed?: number;
  /** Side of the square images in pixels (96 by default). */
  size?: number;
  /** Number of samples in the dataset. */
  length?: number;
  minObjects?: number;
  maxObjects?: number;
}

export interface SceneObject {
  /** Class as in the label map (1..K). */
  cls: number;
  /** Pixels of this object left visible after occlusion by later objects. */
  visible: number;
}

export interface SceneSample {
  image: RgbImage & { data: Uint8Array };
  /** size*size bytes: 0 background, k = SCENE_CLASSES[k - 1]. */
  labelMap: Uint8Array;
  /** Class of the object with the most visible pixels, 0-based (for linear classification). */
  label: number;
  objects: SceneObject[];
}

type Rgb = [number, number, number];

// A random colour; value spread over the whole range so two colours usually contrast.
function colour(rng: Rng, vlo = 0.1, vhi = 0.95): Rgb {
  const h = rng.next() * 6;
  const s = rng.uniform(0.2, 1);
  const v = rng.uniform(vlo, vhi);
  const i = Math.floor(h);
  const f = h - i;
  const p = v * (1 - s),
    q = v * (1 - s * f),
    t = v * (1 - s * (1 - f));
  const rgb: Rgb = [
    [v, t, p],
    [q, v, p],
    [p, v, t],
    [p, q, v],
    [t, p, v],
    [v, p, q],
  ][i % 6] as Rgb;
  return [rgb[0] * 255, rgb[1] * 255, rgb[2] * 255];
}

// Two colours whose brightness differs enough for the texture to be seen.
function colourPair(rng: Rng): [Rgb, Rgb] {
  const a = colour(rng);
  for (let tries = 0; ; tries++) {
    const b = colour(rng);
    const la = a[0] * 0.3 + a[1] * 0.59 + a[2] * 0.11;
    const lb = b[0] * 0.3 + b[1] * 0.59 + b[2] * 0.11;
    if (Math.abs(la - lb) > 60 || tries > 20) return [a, b];
  }
}

// Hash of two integers and a salt to [0, 1): per-cell noise without tables.
export function hash01(x: number, y: number, salt: number): number {
  let h = Math.imul(x, 0x27d4eb2d) ^ Math.imul(y, 0x165667b1) ^ salt;
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return ((h ^ (h >>> 16)) >>> 0) / 4294967296;
}

/** Texture value in [0, 1] (0 = first colour, 1 = second) at object-frame coordinates (u, v). */
type TextureFn = (u: number, v: number) => number;

function makeTexture(kind: Texture, rng: Rng, unit: number, extent: number): TextureFn {
  switch (kind) {
    case 'stripes': {
      const period = rng.uniform(4, 9) * unit;
      const duty = rng.uniform(0.35, 0.65);
      return (u) => {
        const f = u / period - Math.floor(u / period);
        return f < duty ? 0 : 1;
      };
    }
    case 'checkers': {
      const cell = rng.uniform(3.5, 8) * unit;
      return (u, v) => (Math.floor(u / cell) + Math.floor(v / cell)) & 1;
    }
    case 'dots': {
      const gap = rng.uniform(6, 11) * unit;
      const r2 = (rng.uniform(0.22, 0.38) * gap) ** 2;
      return (u, v) => {
        const fu = u / gap - Math.floor(u / gap) - 0.5;
        const fv = v / gap - Math.floor(v / gap) - 0.5;
        return (fu * fu + fv * fv) * gap * gap < r2 ? 1 : 0;
      };
    }
    case 'noise': {
      const cell = rng.uniform(1.5, 3) * unit;
      const salt = rng.nextU32() | 0;
      return (u, v) => hash01(Math.floor(u / cell), Math.floor(v / cell), salt);
    }
    case 'gradient': {
      const lo = -extent * rng.uniform(0.6, 1);
      const span = extent * rng.uniform(1.2, 2);
      return (u) => Math.min(Math.max((u - lo) / span, 0), 1);
    }
  }
}

/**
 * Inside-test in the object's rotated frame (u, v), and how far from the centre it can reach.
 * Sizes are set so that every shape covers about 2.4 r^2 on average: no shape dominates the
 * "largest object" label by its geometry alone.
 */
function makeShape(kind: Shape, rng: Rng, r: number): { inside: (u: number, v: number) => boolean; reach: number } {
  switch (kind) {
    case 'disc': {
      const rd = 0.88 * r,
        r2 = rd * rd;
      return { inside: (u, v) => u * u + v * v <= r2, reach: rd };
    }
    case 'ring': {
      const inner = r * rng.uniform(0.4, 0.6);
      const r2 = r * r,
        i2 = inner * inner;
      return {
        inside: (u, v) => {
          const d = u * u + v * v;
          return d <= r2 && d >= i2;
        },
        reach: r,
      };
    }
    case 'rect': {
      const a = r * rng.uniform(0.75, 1.05),
        b = r * rng.uniform(0.5, 0.8);
      return { inside: (u, v) => Math.abs(u) <= a && Math.abs(v) <= b, reach: Math.hypot(a, b) };
    }
    case 'triangle': {
      // Three vertices near a circle, 120 degrees apart with some jitter.
      const pts: [number, number][] = [0, 1, 2].map((k) => {
        const ang = (k * 2 * Math.PI) / 3 + rng.uniform(-0.25, 0.25);
        const rr = r * rng.uniform(1.25, 1.5);
        return [rr * Math.cos(ang), rr * Math.sin(ang)];
      });
      const edges = pts.map((p, k) => {
        const q = pts[(k + 1) % 3];
        return [q[1] - p[1], p[0] - q[0], p[0] * (q[1] - p[1]) + p[1] * (p[0] - q[0])];
      });
      const [[ax, ay, ac], [bx, by, bc], [qx, qy, qc]] = edges;
      return {
        inside: (u, v) => ax * u + ay * v <= ac && bx * u + by * v <= bc && qx * u + qy * v <= qc,
        reach: 1.5 * r,
      };
    }
  }
}

/** Procedural scenes; see the file comment. */
export class SceneDataset {
  readonly seed: number;
  readonly size: number;
  readonly length: number;
  readonly minObjects: number;
  readonly maxObjects: number;
  readonly numClasses = SCENE_CLASSES.length;
  readonly classNames = SCENE_CLASSES.map((c) => c.name);

  constructor(opts: SceneOptions = {}) {
    this.seed = opts.seed ?? 0;
    this.size = opts.size ?? 96;
    this.length = opts.length ?? 10000;
    this.minObjects = opts.minObjects ?? 2;
    this.maxObjects = opts.maxObjects ?? 5;
    if (!Number.isInteger(this.size) || this.size < 8)
      throw new Error(`SceneDataset: size ${this.size} must be an integer of at least 8 pixels`);
    if (!Number.isInteger(this.length) || this.length < 1)
      throw new Error(`SceneDataset: length ${this.length} must be a positive integer`);
    if (!(this.minObjects >= 1 && this.maxObjects >= this.minObjects)) {
      throw new Error(
        `SceneDataset: need 1 <= minObjects <= maxObjects, got ${this.minObjects} and ${this.maxObjects}`,
      );
    }
  }

  /** Options that rebuild this dataset in a worker thread: one case of loader.ts's DatasetSpec
   *  (the loader names the datasets, not the other way round). */
  workerSpec(): { kind: 'scenes'; options: SceneOptions } {
    return {
      kind: 'scenes',
      options: {
        seed: this.seed,
        size: this.size,
        length: this.length,
        minObjects: this.minObjects,
        maxObjects: this.maxObjects,
      },
    };
  }

  get(index: number): SceneSample {
    if (!Number.isInteger(index) || index < 0 || index >= this.length) {
      throw new Error(`SceneDataset: index ${index} is outside 0..${this.length - 1}`);
    }
    const S = this.size;
    const unit = S / 96; // texture scales are tuned at 96 pixels
    const rng = rngFor(this.seed, index, 0x5ce4e);
    const data = new Uint8Array(S * S * 3);
    const labelMap = new Uint8Array(S * S);
    const owner = new Int16Array(S * S).fill(-1);
    this.paintBackground(rng, data, unit);

    const n = this.minObjects + rng.int(this.maxObjects - this.minObjects + 1);
    const objects: SceneObject[] = [];
    for (let k = 0; k < n; k++) {
      const cls = 1 + rng.int(SCENE_CLASSES.length);
      const spec = SCENE_CLASSES[cls - 1];
      const r = S * rng.uniform(0.12, 0.28);
      const cx = rng.uniform(0.5 * r, S - 0.5 * r);
      const cy = rng.uniform(0.5 * r, S - 0.5 * r);
      const shapeAngle = rng.uniform(0, 2 * Math.PI);
      const texAngle = rng.uniform(0, Math.PI);
      const { inside, reach } = makeShape(spec.shape, rng, r);
      const texture = makeTexture(spec.texture, rng, unit, r);
      const [c0, c1] = colourPair(rng);
      const cs = Math.cos(shapeAngle),
        ss = Math.sin(shapeAngle);
      const ct = Math.cos(texAngle),
        st = Math.sin(texAngle);
      const x0 = Math.max(0, Math.floor(cx - reach)),
        x1 = Math.min(S - 1, Math.ceil(cx + reach));
      const y0 = Math.max(0, Math.floor(cy - reach)),
        y1 = Math.min(S - 1, Math.ceil(cy + reach));
      for (let y = y0; y <= y1; y++) {
        const dy = y + 0.5 - cy;
        for (let x = x0; x <= x1; x++) {
          const dx = x + 0.5 - cx;
          if (!inside(dx * cs + dy * ss, -dx * ss + dy * cs)) continue;
          const t = texture(dx * ct + dy * st, -dx * st + dy * ct);
          const p = y * S + x;
          data[p * 3] = c0[0] + t * (c1[0] - c0[0]);
          data[p * 3 + 1] = c0[1] + t * (c1[1] - c0[1]);
          data[p * 3 + 2] = c0[2] + t * (c1[2] - c0[2]);
          labelMap[p] = cls;
          owner[p] = k;
        }
      }
      objects.push({ cls, visible: 0 });
    }
    for (let p = 0; p < S * S; p++) if (owner[p] >= 0) objects[owner[p]].visible++;
    let main = 0;
    for (let k = 1; k < objects.length; k++) if (objects[k].visible > objects[main].visible) main = k;
    return { image: { width: S, height: S, data }, labelMap, label: objects[main].cls - 1, objects };
  }

  // Low-frequency "clouds" (two octaves of smoothly interpolated lattice noise) or a soft
  // gradient, between two colours of modest contrast, plus a little grain.
  private paintBackground(rng: Rng, data: Uint8Array, unit: number): void {
    const S = this.size;
    const [c0, c1] = [colour(rng, 0.15, 0.85), colour(rng, 0.15, 0.85)];
    const grain = rng.uniform(2, 10);
    const salt = rng.nextU32() | 0;
    const level = new Float32Array(S * S);
    if (rng.next() < 0.6) {
      for (const [cells, weight] of [
        [3 + rng.int(3), 0.7],
        [7 + rng.int(4), 0.3],
      ] as const) {
        const lattice = Float32Array.from({ length: (cells + 1) * (cells + 1) }, () => rng.next());
        const step = S / cells;
        for (let y = 0; y < S; y++) {
          const gy = y / step,
            iy = Math.floor(gy),
            fy = gy - iy,
            sy = fy * fy * (3 - 2 * fy);
          for (let x = 0; x < S; x++) {
            const gx = x / step,
              ix = Math.floor(gx),
              fx = gx - ix,
              sx = fx * fx * (3 - 2 * fx);
            const a = lattice[iy * (cells + 1) + ix],
              b = lattice[iy * (cells + 1) + ix + 1];
            const c = lattice[(iy + 1) * (cells + 1) + ix],
              d = lattice[(iy + 1) * (cells + 1) + ix + 1];
            level[y * S + x] += weight * ((a + (b - a) * sx) * (1 - sy) + (c + (d - c) * sx) * sy);
          }
        }
      }
    } else {
      const ang = rng.uniform(0, 2 * Math.PI);
      const gx = Math.cos(ang) / S,
        gy = Math.sin(ang) / S;
      for (let y = 0; y < S; y++)
        for (let x = 0; x < S; x++) level[y * S + x] = 0.5 + (x - S / 2) * gx + (y - S / 2) * gy;
    }
    const cell = Math.max(1, Math.round(unit));
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const p = y * S + x;
        const t = level[p];
        const g = (hash01(Math.floor(x / cell), Math.floor(y / cell), salt) - 0.5) * grain;
        data[p * 3] = Math.min(255, Math.max(0, c0[0] + t * (c1[0] - c0[0]) + g));
        data[p * 3 + 1] = Math.min(255, Math.max(0, c0[1] + t * (c1[1] - c0[1]) + g));
        data[p * 3 + 2] = Math.min(255, Math.max(0, c0[2] + t * (c1[2] - c0[2]) + g));
      }
    }
  }
}
