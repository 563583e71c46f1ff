import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { assertClose } from './helpers.js';
import { Rng } from '../engine/random.js';
import {
  adjustBrightness,
  adjustContrast,
  adjustSaturation,
  adjustHue,
  toGrayscale,
  gaussianBlur,
  hflip,
  normalize,
  resizedCrop,
  randomResizedCropBox,
  augmentView,
  blurKernelSize,
  viewToSource,
  cropLabels,
  plainView,
  MOCO_V2,
  type RgbImage,
  type AugmentConfig,
} from '../train/data/augment.js';

interface Case {
  name: string;
  op: string;
  params: Record<string, any>;
  shape: number[];
  out: number[];
}
const fx = JSON.parse(
  readFileSync(fileURLToPath(new URL('../../test/fixtures/augment.json', import.meta.url)), 'utf8'),
) as {
  input: { shape: number[]; data: number[] };
  cases: Case[];
  crop_fallback: { height: number; width: number; scale: [number, number]; box: object }[];
};
const [C, H, W] = fx.input.shape;
const plane = H * W;
const input = (): Float32Array => Float32Array.from(fx.input.data);

// The fixture image as HWC, as decoders deliver images.
function hwc(chw: Float32Array): RgbImage {
  const data = new Float32Array(H * W * 3);
  for (let c = 0; c < 3; c++) for (let i = 0; i < plane; i++) data[i * 3 + c] = chw[c * plane + i];
  return { width: W, height: H, data };
}

const t = suite('augment');

t('colour, blur, flip and normalisation match torchvision functional ops', () => {
  let checked = 0;
  for (const c of fx.cases) {
    const x = input();
    const p = c.params;
    switch (c.op) {
      case 'brightness':
        adjustBrightness(x, plane, p.factor);
        break;
      case 'contrast':
        adjustContrast(x, plane, p.factor);
        break;
      case 'saturation':
        adjustSaturation(x, plane, p.factor);
        break;
      case 'hue':
        adjustHue(x, plane, p.factor);
        break;
      case 'grayscale':
        toGrayscale(x, plane);
        break;
      case 'blur':
        gaussianBlur(x, C, H, W, p.kernel, p.sigma);
        break;
      case 'hflip':
        hflip(x, C, H, W);
        break;
      case 'normalize':
        normalize(x, plane, p.mean, p.std);
        break;
      case 'jitter':
        for (const op of p.order as number[]) {
          if (op === 0) adjustBrightness(x, plane, p.brightness);
          else if (op === 1) adjustContrast(x, plane, p.contrast);
          else if (op === 2) adjustSaturation(x, plane, p.saturation);
          else adjustHue(x, plane, p.hue);
        }
        break;
      default:
        continue;
    }
    assertClose(x, c.out, 0, 1e-4, c.name);
    checked++;
  }
  assert.is(checked, 17);
});

t('resized crop matches torchvision bilinear resize, with and without antialias', () => {
  const img = hwc(input());
  let checked = 0;
  for (const c of fx.cases.filter((c) => c.op === 'resized_crop')) {
    const [oh, ow] = c.params.size;
    const out = resizedCrop(img, c.params.box, oh, ow, c.params.antialias);
    assertClose(out, c.out, 0, 1e-5, c.name);
    checked++;
  }
  assert.is(checked, 10);
  // Bytes in, the same as floats in scaled by 1/255.
  const bytes = Uint8Array.from({ length: 8 * 6 * 3 }, (_, i) => (i * 37) % 256);
  const asFloat = { width: 6, height: 8, data: Float32Array.from(bytes, (v) => v / 255) };
  const box = { top: 1, left: 1, height: 5, width: 4 };
  assertClose(
    resizedCrop({ width: 6, height: 8, data: bytes }, box, 7, 3, true),
    resizedCrop(asFloat, box, 7, 3, true),
    0,
    1e-6,
    'u8 vs f32',
  );
});

t('RandomResizedCrop falls back to a centre crop as torchvision does', () => {
  for (const f of fx.crop_fallback) {
    assert.equal(randomResizedCropBox(new Rng(1), f.height, f.width, f.scale), f.box, `${f.height}x${f.width}`);
  }
});

t('RandomResizedCrop boxes respect the scale and ratio ranges and the image', () => {
  const rng = new Rng(5);
  let areaSum = 0;
  for (let i = 0; i < 2000; i++) {
    const b = randomResizedCropBox(rng, 96, 128);
    assert.ok(b.top >= 0 && b.left >= 0 && b.top + b.height <= 96 && b.left + b.width <= 128, JSON.stringify(b));
    const frac = (b.width * b.height) / (96 * 128);
    // Rounding to whole pixels moves area and ratio a little beyond the nominal ranges.
    assert.ok(frac > 0.19 && frac <= 1, `area fraction ${frac}`);
    const r = b.width / b.height;
    assert.ok(r > 0.74 && r < 1.35, `ratio ${r}`);
    areaSum += frac;
  }
  // Uniform area fraction on [0.2, 1] has mean 0.6; rejected large tries pull it down a little.
  assert.ok(areaSum / 2000 > 0.5 && areaSum / 2000 < 0.62, `mean area fraction ${areaSum / 2000}`);
});

t('blur kernel: 23 at 224, widened to 3 sigma on small views', () => {
  assert.is(blurKernelSize(224, 2.0), 23);
  assert.is(blurKernelSize(224, 0.1), 23);
  assert.is(blurKernelSize(64, 0.5), 7);
  assert.is(blurKernelSize(64, 2.0), 13);
  assert.is(blurKernelSize(96, 1.0), 11);
});

// A smooth synthetic source, large enough to be cropped.
function source(w: number, h: number, seed: number): RgbImage {
  const r = new Rng(seed);
  const data = new Uint8Array(w * h * 3);
  for (let i = 0; i < data.length; i++) data[i] = r.int(256);
  return { width: w, height: h, data };
}

t('augmentView is a pure function of the image and the generator state', () => {
  const img = source(50, 40, 3);
  const a = augmentView(img, new Rng(11), 32);
  const b = augmentView(img, new Rng(11), 32);
  assert.equal(a.params, b.params);
  assert.ok(Buffer.from(a.view.buffer).equals(Buffer.from(b.view.buffer)), 'same bytes');
  const c = augmentView(img, new Rng(12), 32);
  assert.not.equal(c.params.box, a.params.box);
  // Written in place at an offset inside a larger batch buffer, identically.
  const batch = new Float32Array(2 * 3 * 32 * 32);
  augmentView(img, new Rng(11), 32, MOCO_V2, batch, 3 * 32 * 32);
  assert.ok(batch.subarray(0, 3 * 32 * 32).every((v) => v === 0));
  assert.equal(Array.from(batch.subarray(3 * 32 * 32)), Array.from(a.view));
});

t('augmentView draws each option at its probability', () => {
  const img = source(40, 40, 4);
  const rng = new Rng(21);
  const n = 600;
  let jit = 0,
    grayN = 0,
    blur = 0,
    flip = 0;
  for (let i = 0; i < n; i++) {
    const { params } = augmentView(img, rng, 16);
    jit += params.jitter ? 1 : 0;
    grayN += params.grayscale ? 1 : 0;
    blur += params.blurSigma !== null ? 1 : 0;
    flip += params.flip ? 1 : 0;
    if (params.jitter) {
      assert.equal([...params.jitter.order].sort(), [0, 1, 2, 3]);
      assert.ok(params.jitter.brightness >= 0.6 && params.jitter.brightness <= 1.4);
      assert.ok(Math.abs(params.jitter.hue) <= 0.1);
    }
    if (params.blurSigma !== null) assert.ok(params.blurSigma >= 0.1 && params.blurSigma <= 2);
  }
  // 4-sigma bands around the expected counts.
  const near = (k: number, p: number, what: string) =>
    assert.ok(Math.abs(k - n * p) < 4 * Math.sqrt(n * p * (1 - p)), `${what}: ${k} of ${n}`);
  near(jit, 0.8, 'jitter');
  near(grayN, 0.2, 'grayscale');
  near(blur, 0.5, 'blur');
  near(flip, 0.5, 'flip');
});

const geometryOnly: AugmentConfig = {
  ...MOCO_V2,
  jitterP: 0,
  grayscaleP: 0,
  blurP: 0,
  mean: [0, 0, 0],
  std: [1, 1, 1],
};

t('view geometry: the crop box and flip say where each view pixel comes from', () => {
  // Red encodes the source column and green the row, so each view pixel reveals its origin.
  const w = 60,
    h = 45;
  const data = new Float32Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      data[(y * w + x) * 3] = x / w;
      data[(y * w + x) * 3 + 1] = y / h;
    }
  const img = { width: w, height: h, data };
  const rng = new Rng(8);
  let flips = 0;
  for (let k = 0; k < 40; k++) {
    const S = 24;
    const { view, params } = augmentView(img, rng, S, { ...geometryOnly, antialias: false });
    flips += params.flip ? 1 : 0;
    for (const [x, y] of [
      [0, 0],
      [S - 1, 0],
      [5, 17],
      [S - 1, S - 1],
    ]) {
      const [sx, sy] = viewToSource(params, x, y);
      // Bilinear between pixel centres: value = (coordinate - 0.5) / size, clamped at the border.
      const ex = Math.min(Math.max(sx - 0.5, params.box.left), params.box.left + params.box.width - 1) / w;
      const ey = Math.min(Math.max(sy - 0.5, params.box.top), params.box.top + params.box.height - 1) / h;
      assertClose([view[y * S + x], view[S * S + y * S + x]], [ex, ey], 0, 1e-5, `view ${k} pixel ${x},${y}`);
    }
  }
  assert.ok(flips > 5 && flips < 35, `flips ${flips}`);
});

t('cropLabels follows the view: labels agree with the pixels they label', () => {
  // Blocks of constant colour, one label each: wherever the label map is uniform around a view
  // pixel's source position, the view pixel must have exactly its label's colour.
  const w = 64,
    h = 48;
  const labels = new Uint8Array(w * h);
  const data = new Float32Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const l = Math.floor(x / 16) + 4 * Math.floor(y / 16);
      labels[y * w + x] = l;
      data[(y * w + x) * 3] = l / 16;
    }
  const img = { width: w, height: h, data };
  const rng = new Rng(9);
  const S = 20;
  // Without antialias the two bilinear taps lie within one source pixel of the nearest one.
  const cfg = { ...geometryOnly, antialias: false };
  let interior = 0;
  let flips = 0;
  for (let k = 0; k < 30; k++) {
    const { view, params } = augmentView(img, rng, S, cfg);
    flips += params.flip ? 1 : 0;
    const lv = cropLabels(labels, params);
    for (let y = 0; y < S; y++)
      for (let x = 0; x < S; x++) {
        const [sx, sy] = viewToSource(params, x, y);
        const cx = Math.floor(sx),
          cy = Math.floor(sy);
        const l = labels[cy * w + cx];
        assert.is(lv[y * S + x], l, `label of view ${k} pixel (${x},${y})`);
        let uniform = true;
        for (let dy = -1; dy <= 1; dy++)
          for (let dx = -1; dx <= 1; dx++) {
            const yy = Math.min(Math.max(cy + dy, 0), h - 1),
              xx = Math.min(Math.max(cx + dx, 0), w - 1);
            uniform &&= labels[yy * w + xx] === l;
          }
        if (uniform) {
          assert.ok(
            Math.abs(view[y * S + x] - l / 16) < 1e-5,
            `view ${k} (${x},${y}) label ${l} value ${view[y * S + x] * 16}`,
          );
          interior++;
        }
      }
    // A flipped view's labels are the mirror of the unflipped view's.
    const mirrored = cropLabels(labels, { ...params, flip: !params.flip });
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) assert.is(lv[y * S + x], mirrored[y * S + S - 1 - x]);
  }
  assert.ok(flips > 3 && flips < 27, `flips ${flips}`);
  assert.ok(interior > 3000, `only ${interior} interior pixels checked`);
});

t('plainView: the whole image resized and normalised; labels follow', () => {
  const img = hwc(input());
  const { view, params } = plainView(img, 8);
  const raw = resizedCrop(img, { top: 0, left: 0, height: H, width: W }, 8, 8, true);
  normalize(raw, 64, MOCO_V2.mean, MOCO_V2.std);
  assert.equal(Array.from(view), Array.from(raw));
  const labels = Uint8Array.from({ length: H * W }, (_, i) => i % W);
  // Column x of the 8-wide view samples source column floor((x + 0.5) * 12 / 8).
  assert.equal(Array.from(cropLabels(labels, params).subarray(0, 8)), [0, 2, 3, 5, 6, 8, 9, 11]);
});

t.run();
