// The MoCo-v2 augmentation pipeline for one view, on the CPU, seeded. Pure computation (no
// Node APIs), so it runs in worker threads and in the browser alike.
//
// Pixel operations follow torchvision 0.14's functional ops on float tensors (checked against
// them in test/augment.test.ts with fixtures from scripts/make_augment_fixtures.py). The
// working image is planar CHW float32 in [0, 1], so the output needs no transpose.
// Differences from MoCo's PIL pipeline, on purpose: values stay float between steps (PIL rounds
// to 8 bits after every op), the blur is a true Gaussian with a finite kernel (PIL's is an
// approximation by box filters), and hue/saturation use torchvision's tensor formulas.
import type { Rng } from '../../engine/random.js';

/** An RGB image, row-major HWC: bytes 0..255 (as decoded) or floats in [0, 1]. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array | Float32Array;
}

/** A crop in source pixels, as torchvision's (top, left, height, width). */
export interface CropBox {
  top: number;
  left: number;
  height: number;
  width: number;
}

export interface AugmentConfig {
  /** RandomResizedCrop area fraction and aspect-ratio ranges. */
  scale: [number, number];
  ratio: [number, number];
  /** Antialiased bilinear resize (as PIL and torchvision's antialias=True) when shrinking. */
  antialias: boolean;
  /** ColorJitter strengths (brightness, contrast, saturation, hue) and its probability. */
  jitter: [number, number, number, number];
  jitterP: number;
  grayscaleP: number;
  /** Gaussian blur sigma range (pixels of the output view) and probability. */
  blurSigma: [number, number];
  blurP: number;
  flipP: number;
  mean: [number, number, number];
  std: [number, number, number];
}

/** MoCo-v2 / DenseCL settings (facebookresearch/moco main_moco.py with --aug-plus). */
export const MOCO_V2: AugmentConfig = {
  scale: [0.2, 1.0],
  ratio: [3 / 4, 4 / 3],
  antialias: true,
  jitter: [0.4, 0.4, 0.4, 0.1],
  jitterP: 0.8,
  grayscaleP: 0.2,
  blurSigma: [0.1, 2.0],
  blurP: 0.5,
  flipP: 0.5,
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
};

/** Everything random that was applied to one view: enough to redo it or map its pixels. */
export interface ViewParams {
  /** Source image size, and the crop taken from it. */
  srcWidth: number;
  srcHeight: number;
  box: CropBox;
  /** Output side (views are square). */
  size: number;
  /** Flipped left-right after the crop. */
  flip: boolean;
  /** Colour jitter applied in `order` (0 brightness, 1 contrast, 2 saturation, 3 hue), or null. */
  jitter: { order: number[]; brightness: number; contrast: number; saturation: number; hue: number } | null;
  grayscale: boolean;
  /** Blur sigma, or null when not blurred. */
  blurSigma: number | null;
}

// Python's round(): halves go to the even neighbour. torchvision's crop sizes depend on it.
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * torchvision's RandomResizedCrop.get_params: up to 10 tries of a random area fraction and
 * log-uniform aspect ratio that fit the image, else a centre crop clamped to the ratio range.
 */
export function randomResizedCropBox(
  rng: Rng,
  srcHeight: number,
  srcWidth: number,
  scale: [number, number] = MOCO_V2.scale,
  ratio: [number, number] = MOCO_V2.ratio,
): CropBox {
  const area = srcHeight * srcWidth;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logLo, logHi));
    const w = roundHalfEven(Math.sqrt(target * aspect));
    const h = roundHalfEven(Math.sqrt(target / aspect));
    if (w > 0 && w <= srcWidth && h > 0 && h <= srcHeight) {
      return { top: rng.int(srcHeight - h + 1), left: rng.int(srcWidth - w + 1), height: h, width: w };
    }
  }
  const inRatio = srcWidth / srcHeight;
  let w = srcWidth;
  let h = srcHeight;
  if (inRatio < Math.min(...ratio)) h = roundHalfEven(w / Math.min(...ratio));
  else if (inRatio > Math.max(...ratio)) w = roundHalfEven(h * Math.max(...ratio));
  return { top: Math.floor((srcHeight - h) / 2), left: Math.floor((srcWidth - w) / 2), height: h, width: w };
}

interface Taps {
  start: Int32Array; // first source index per output index
  count: Int32Array; // number of taps per output index
  stride: number; // taps stored per output index
  weight: Float32Array; // [out * stride + tap]
}

/**
 * 1-D bilinear resampling weights from `inSize` to `outSize` (align_corners=False). Without
 * antialias: PyTorch's upsample_bilinear (two taps, source index clamped at 0). With antialias:
 * the triangle filter stretched by the shrink factor and normalised, as PIL and PyTorch's
 * antialiased bilinear do; the same as without when enlarging.
 */
function bilinearTaps(inSize: number, outSize: number, antialias: boolean): Taps {
  const scale = inSize / outSize;
  if (!antialias) {
    const t: Taps = {
      start: new Int32Array(outSize),
      count: new Int32Array(outSize),
      stride: 2,
      weight: new Float32Array(outSize * 2),
    };
    for (let i = 0; i < outSize; i++) {
      const src = Math.max(scale * (i + 0.5) - 0.5, 0);
      const i0 = Math.floor(src);
      const lambda = src - i0;
      t.start[i] = i0;
      t.count[i] = i0 < inSize - 1 ? 2 : 1;
      t.weight[2 * i] = t.count[i] === 2 ? 1 - lambda : 1;
      t.weight[2 * i + 1] = lambda;
    }
    return t;
  }
  const support = Math.max(scale, 1);
  const invScale = scale >= 1 ? 1 / scale : 1;
  const stride = Math.ceil(support) * 2 + 1;
  const t: Taps = {
    start: new Int32Array(outSize),
    count: new Int32Array(outSize),
    stride,
    weight: new Float32Array(outSize * stride),
  };
  for (let i = 0; i < outSize; i++) {
    const center = scale * (i + 0.5);
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const n = Math.min(Math.trunc(center + support + 0.5), inSize) - lo;
    let total = 0;
    for (let j = 0; j < n; j++) total += Math.max(0, 1 - Math.abs((j + lo - center + 0.5) * invScale));
    for (let j = 0; j < n; j++)
      t.weight[i * stride + j] = total > 0 ? Math.max(0, 1 - Math.abs((j + lo - center + 0.5) * invScale)) / total : 0;
    t.start[i] = lo;
    t.count[i] = n;
  }
  return t;
}

/**
 * Crops `box` from `src` (HWC) and resizes it bilinearly to outHeight x outWidth, as
 * torchvision's resized_crop on a tensor. Returns planar CHW floats in [0, 1] (into `out` when
 * given, at `offset`).
 */
export function resizedCrop(
  src: RgbImage,
  box: CropBox,
  outHeight: number,
  outWidth: number,
  antialias: boolean,
  out?: Float32Array,
  offset = 0,
): Float32Array {
  const { top, left, height: bh, width: bw } = box;
  if (top < 0 || left < 0 || bh < 1 || bw < 1 || top + bh > src.height || left + bw > src.width) {
    throw new Error(`resizedCrop: box ${JSON.stringify(box)} is not inside the ${src.width}x${src.height} image`);
  }
  if (src.data.length !== src.width * src.height * 3) {
    throw new Error(
      `resizedCrop: image data has ${src.data.length} values, expected ${src.width}*${src.height}*3 (RGB, HWC)`,
    );
  }
  const dst = out ?? new Float32Array(3 * outHeight * outWidth);
  const unit = src.data instanceof Uint8Array ? 1 / 255 : 1;
  const tx = bilinearTaps(bw, outWidth, antialias);
  const ty = bilinearTaps(bh, outHeight, antialias);
  // Horizontal pass over the crop's rows: rows[(y * outWidth + x) * 3 + c].
  const rows = new Float32Array(bh * outWidth * 3);
  const data = src.data;
  for (let y = 0; y < bh; y++) {
    const rowBase = ((top + y) * src.width + left) * 3;
    for (let x = 0; x < outWidth; x++) {
      let r = 0;
      let g = 0;
      let b = 0;
      const s0 = tx.start[x];
      const wBase = x * tx.stride;
      for (let k = 0; k < tx.count[x]; k++) {
        const w = tx.weight[wBase + k];
        const p = rowBase + (s0 + k) * 3;
        r += w * data[p];
        g += w * data[p + 1];
        b += w * data[p + 2];
      }
      const o = (y * outWidth + x) * 3;
      rows[o] = r * unit;
      rows[o + 1] = g * unit;
      rows[o + 2] = b * unit;
    }
  }
  const plane = outHeight * outWidth;
  for (let y = 0; y < outHeight; y++) {
    const s0 = ty.start[y];
    const wBase = y * ty.stride;
    for (let x = 0; x < outWidth; x++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let k = 0; k < ty.count[y]; k++) {
        const w = ty.weight[wBase + k];
        const p = ((s0 + k) * outWidth + x) * 3;
        r += w * rows[p];
        g += w * rows[p + 1];
        b += w * rows[p + 2];
      }
      const o = offset + y * outWidth + x;
      dst[o] = r;
      dst[o + plane] = g;
      dst[o + 2 * plane] = b;
    }
  }
  return dst;
}

// The colour ops below work in place on a planar CHW RGB image of `plane` pixels per channel
// starting at `offset`, like torchvision's adjust_* on a float tensor (results clamped to [0, 1]).

const clamp01 = (v: number): number => Math.min(Math.max(v, 0), 1);
const gray = (r: number, g: number, b: number): number => Math.fround(0.2989 * r + 0.587 * g + 0.114 * b);

/** torchvision adjust_brightness: blend with black. */
export function adjustBrightness(x: Float32Array, plane: number, factor: number, offset = 0): void {
  for (let i = offset; i < offset + 3 * plane; i++) x[i] = clamp01(factor * x[i]);
}

/** torchvision adjust_contrast: blend with the mean of the grayscale image. */
export function adjustContrast(x: Float32Array, plane: number, factor: number, offset = 0): void {
  let sum = 0;
  for (let i = offset; i < offset + plane; i++) sum += gray(x[i], x[i + plane], x[i + 2 * plane]);
  const m = (1 - factor) * (sum / plane);
  for (let i = offset; i < offset + 3 * plane; i++) x[i] = clamp01(factor * x[i] + m);
}

/** torchvision adjust_saturation: blend with the grayscale image. */
export function adjustSaturation(x: Float32Array, plane: number, factor: number, offset = 0): void {
  for (let i = offset; i < offset + plane; i++) {
    const l = (1 - factor) * gray(x[i], x[i + plane], x[i + 2 * plane]);
    x[i] = clamp01(factor * x[i] + l);
    x[i + plane] = clamp01(factor * x[i + plane] + l);
    x[i + 2 * plane] = clamp01(factor * x[i + 2 * plane] + l);
  }
}

/** torchvision adjust_hue: rotate the hue in HSV space by `factor` turns (|factor| <= 0.5). */
export function adjustHue(x: Float32Array, plane: number, factor: number, offset = 0): void {
  for (let i = offset; i < offset + plane; i++) {
    const r = x[i];
    const g = x[i + plane];
    const b = x[i + 2 * plane];
    const maxc = Math.max(r, g, b);
    const minc = Math.min(r, g, b);
    const cr = maxc - minc;
    const s = cr / (cr === 0 ? 1 : maxc);
    const div = cr === 0 ? 1 : cr;
    const rc = (maxc - r) / div;
    const gc = (maxc - g) / div;
    const bc = (maxc - b) / div;
    // The same branch order as torchvision: red wins ties, then green.
    let h = maxc === r ? bc - gc : maxc === g ? 2 + rc - bc : 4 + gc - rc;
    h = (h / 6 + 1) % 1;
    h = (((h + factor) % 1) + 1) % 1;
    const h6 = h * 6;
    const sector = Math.floor(h6);
    const f = h6 - sector;
    const p = clamp01(maxc * (1 - s));
    const q = clamp01(maxc * (1 - s * f));
    const t = clamp01(maxc * (1 - s * (1 - f)));
    const v = maxc;
    let R: number, G: number, B: number;
    const sec = sector % 6;
    // The six sectors of the hue circle: which of v, p, q, t each channel takes.
    switch (sec) {
      case 0:
        R = v;
        G = t;
        B = p;
        break;
      case 1:
        R = q;
        G = v;
        B = p;
        break;
      case 2:
        R = p;
        G = v;
        B = t;
        break;
      case 3:
        R = p;
        G = q;
        B = v;
        break;
      case 4:
        R = t;
        G = p;
        B = v;
        break;
      default:
        R = v;
        G = p;
        B = q;
    }
    x[i] = R;
    x[i + plane] = G;
    x[i + 2 * plane] = B;
  }
}

/** torchvision rgb_to_grayscale with three output channels. */
export function toGrayscale(x: Float32Array, plane: number, offset = 0): void {
  for (let i = offset; i < offset + plane; i++) {
    const l = gray(x[i], x[i + plane], x[i + 2 * plane]);
    x[i] = l;
    x[i + plane] = l;
    x[i + 2 * plane] = l;
  }
}

/**
 * The blur kernel side used for a view of side `size`: a tenth of the side, made odd (23 at 224,
 * as SimCLR and torchvision-based MoCo-v2 ports use), widened to reach 3 sigma so that small
 * views (7 at 64) still get a whole Gaussian rather than a truncated, weaker one.
 */
export function blurKernelSize(size: number, sigma: number): number {
  let k = Math.round(0.1 * size);
  if (k % 2 === 0) k += 1;
  return Math.max(k, 2 * Math.ceil(3 * sigma) + 1);
}

// Mirror index without repeating the edge (PyTorch's "reflect" padding), for any distance.
function reflect(i: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * (n - 1);
  let m = i % period;
  if (m < 0) m += period;
  return m < n ? m : period - m;
}

/**
 * torchvision gaussian_blur on a CHW image of `channels` planes, height x width: a separable
 * normalised Gaussian of `kernelSize` taps, reflect padding. In place.
 */
export function gaussianBlur(
  x: Float32Array,
  channels: number,
  height: number,
  width: number,
  kernelSize: number,
  sigma: number,
  offset = 0,
): void {
  if (kernelSize % 2 !== 1) throw new Error(`gaussianBlur: kernel size ${kernelSize} must be odd`);
  const r = (kernelSize - 1) / 2;
  // Symmetric weights w[d] for distance d, normalised over all kernelSize taps as torchvision
  // does; taps below 1e-7 of the total are then skipped (changes results by < 3e-6), which
  // halves the work for the small sigmas that a 23-tap kernel mostly carries.
  const w = new Float64Array(r + 1);
  let total = 0;
  for (let d = 0; d <= r; d++) {
    w[d] = Math.exp(-0.5 * (d / sigma) ** 2);
    total += d === 0 ? w[d] : 2 * w[d];
  }
  let R = r;
  for (let d = 0; d <= r; d++) w[d] /= total;
  while (R > 0 && w[R] < 1e-7) R--;
  const w0 = w[0];
  const plane = height * width;
  const tmp = new Float32Array(plane);
  const padded = new Float32Array(width + 2 * R);
  const acc = new Float64Array(width);
  const rowOf = Int32Array.from({ length: height + 2 * R }, (_, i) => reflect(i - R, height));
  for (let c = 0; c < channels; c++) {
    const base = offset + c * plane;
    // Horizontal pass, one reflect-padded row at a time.
    for (let y = 0; y < height; y++) {
      const row = base + y * width;
      for (let i = 0; i < width + 2 * R; i++) padded[i] = x[row + reflect(i - R, width)];
      for (let xx = 0; xx < width; xx++) {
        const ctr = xx + R;
        let sum = w0 * padded[ctr];
        for (let d = 1; d <= R; d++) sum += w[d] * (padded[ctr - d] + padded[ctr + d]);
        tmp[y * width + xx] = sum;
      }
    }
    // Vertical pass over whole rows (contiguous memory).
    for (let y = 0; y < height; y++) {
      const mid = rowOf[y + R] * width;
      for (let xx = 0; xx < width; xx++) acc[xx] = w0 * tmp[mid + xx];
      for (let d = 1; d <= R; d++) {
        const wd = w[d];
        const up = rowOf[y + R - d] * width;
        const down = rowOf[y + R + d] * width;
        for (let xx = 0; xx < width; xx++) acc[xx] += wd * (tmp[up + xx] + tmp[down + xx]);
      }
      const row = base + y * width;
      for (let xx = 0; xx < width; xx++) x[row + xx] = acc[xx];
    }
  }
}

/** Mirrors each of `channels` planes left-right, in place. */
export function hflip(x: Float32Array, channels: number, height: number, width: number, offset = 0): void {
  for (let row = 0; row < channels * height; row++) {
    const a = offset + row * width;
    for (let i = 0, j = width - 1; i < j; i++, j--) {
      const v = x[a + i];
      x[a + i] = x[a + j];
      x[a + j] = v;
    }
  }
}

/** (x - mean[c]) / std[c] per channel, in place. */
/**
 * Byte views (0..255, CHW images of `plane` pixels per channel, as the loader's pixels: 'bytes'
 * hands them out) as the normalised floats augmentView would have made.
 */
export function viewsFromBytes(
  bytes: Uint8Array,
  plane: number,
  mean: readonly number[],
  std: readonly number[],
): Float32Array {
  const x = Float32Array.from(bytes, (v) => v / 255);
  for (let at = 0; at < x.length; at += 3 * plane) normalize(x, plane, mean, std, at);
  return x;
}

export function normalize(
  x: Float32Array,
  plane: number,
  mean: readonly number[],
  std: readonly number[],
  offset = 0,
): void {
  for (let c = 0; c < 3; c++) {
    const m = mean[c];
    const inv = 1 / std[c];
    for (let i = offset + c * plane; i < offset + (c + 1) * plane; i++) x[i] = (x[i] - m) * inv;
  }
}

/**
 * One augmented view of `src`: random resized crop to size x size, colour jitter, grayscale,
 * blur, flip, normalisation, in MoCo-v2's order. Writes 3*size*size floats (CHW) into `out` at
 * `offset` and returns what was drawn. The draws come only from `rng`, so a view is a pure
 * function of the image and the generator's state.
 */
export function augmentView(
  src: RgbImage,
  rng: Rng,
  size: number,
  cfg: AugmentConfig = MOCO_V2,
  out?: Float32Array,
  offset = 0,
): { view: Float32Array; params: ViewParams } {
  const view = out ?? new Float32Array(3 * size * size);
  const plane = size * size;
  const box = randomResizedCropBox(rng, src.height, src.width, cfg.scale, cfg.ratio);
  resizedCrop(src, box, size, size, cfg.antialias, view, offset);

  let jitter: ViewParams['jitter'] = null;
  if (rng.next() < cfg.jitterP) {
    const [bj, cj, sj, hj] = cfg.jitter;
    const order = rng.permutation(4);
    jitter = {
      order,
      brightness: rng.uniform(Math.max(0, 1 - bj), 1 + bj),
      contrast: rng.uniform(Math.max(0, 1 - cj), 1 + cj),
      saturation: rng.uniform(Math.max(0, 1 - sj), 1 + sj),
      hue: rng.uniform(-hj, hj),
    };
    for (const op of order) {
      if (op === 0) adjustBrightness(view, plane, jitter.brightness, offset);
      else if (op === 1) adjustContrast(view, plane, jitter.contrast, offset);
      else if (op === 2) adjustSaturation(view, plane, jitter.saturation, offset);
      else adjustHue(view, plane, jitter.hue, offset);
    }
  }
  const grayscale = rng.next() < cfg.grayscaleP;
  if (grayscale) toGrayscale(view, plane, offset);
  let blurSigma: number | null = null;
  if (rng.next() < cfg.blurP) {
    blurSigma = rng.uniform(cfg.blurSigma[0], cfg.blurSigma[1]);
    gaussianBlur(view, 3, size, size, blurKernelSize(size, blurSigma), blurSigma, offset);
  }
  const flip = rng.next() < cfg.flipP;
  if (flip) hflip(view, 3, size, size, offset);
  normalize(view, plane, cfg.mean, cfg.std, offset);
  return {
    view,
    params: { srcWidth: src.width, srcHeight: src.height, box, size, flip, jitter, grayscale, blurSigma },
  };
}

/**
 * The whole image resized to size x size and normalised, without random changes: the input for
 * evaluation. Its params let cropLabels resize a label map to match.
 */
export function plainView(
  src: RgbImage,
  size: number,
  cfg: AugmentConfig = MOCO_V2,
  out?: Float32Array,
  offset = 0,
): { view: Float32Array; params: ViewParams } {
  const view = out ?? new Float32Array(3 * size * size);
  const box = { top: 0, left: 0, height: src.height, width: src.width };
  resizedCrop(src, box, size, size, cfg.antialias, view, offset);
  normalize(view, size * size, cfg.mean, cfg.std, offset);
  return {
    view,
    params: {
      srcWidth: src.width,
      srcHeight: src.height,
      box,
      size,
      flip: false,
      jitter: null,
      grayscale: false,
      blurSigma: null,
    },
  };
}

/**
 * Where the centre of view pixel (x, y) comes from in the source image, in continuous source
 * coordinates (pixel k spans [k, k+1)).
 */
export function viewToSource(p: ViewParams, x: number, y: number): [number, number] {
  const vx = p.flip ? p.size - 1 - x : x;
  return [p.box.left + ((vx + 0.5) * p.box.width) / p.size, p.box.top + ((y + 0.5) * p.box.height) / p.size];
}

/**
 * The view's geometry applied to a per-pixel label map (srcHeight x srcWidth, one byte per
 * pixel): nearest source pixel under each view pixel's centre, then the flip. size x size bytes.
 */
export function cropLabels(labels: Uint8Array, p: ViewParams, out?: Uint8Array, offset = 0): Uint8Array {
  if (labels.length !== p.srcWidth * p.srcHeight) {
    throw new Error(`cropLabels: label map has ${labels.length} values, expected ${p.srcWidth}x${p.srcHeight}`);
  }
  const dst = out ?? new Uint8Array(p.size * p.size);
  const cols = new Int32Array(p.size);
  for (let x = 0; x < p.size; x++) {
    const [sx] = viewToSource(p, x, 0);
    cols[x] = Math.min(Math.floor(sx), p.box.left + p.box.width - 1);
  }
  for (let y = 0; y < p.size; y++) {
    const sy = Math.min(Math.floor(viewToSource(p, 0, y)[1]), p.box.top + p.box.height - 1);
    for (let x = 0; x < p.size; x++) dst[offset + y * p.size + x] = labels[sy * p.srcWidth + cols[x]];
  }
  return dst;
}
