// The evaluations: metrics on a hand-computed example, probes on features whose answer is known,
// both commands end to end on tiny data with a tiny backbone (and refusing a backbone of another
// architecture), the PASCAL VOC reader (palette indices, missing and mismatched label maps) and
// the Fashion-MNIST IDX reader.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync, gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { gpu, rejects } from './helpers.js';
import { runtime, Rng } from '../engine/index.js';
import { ConfusionMatrix } from '../train/eval/metrics.js';
import { linearProbe, LINEAR_PROBE_DEFAULTS } from '../train/eval/linear-probe.js';
import { segProbe, SEG_PROBE_DEFAULTS } from '../train/eval/seg-probe.js';
import type { FeatureSet } from '../train/eval/features.js';
import { decodeIndexPng } from '../train/eval/png-index.js';
import { loadFashionMnist, parseIdx } from '../train/eval/fashion-mnist.js';
import { openClassificationData, openSegmentationData } from '../train/eval/datasets.js';
import { evalLinear, evalSeg, EVAL_LINEAR_DEFAULTS, EVAL_SEG_DEFAULTS } from '../cli/eval.js';
import { exportRandomInit, replicate, replicateOptions, REPLICATE_DEFAULTS } from '../cli/replicate.js';

const t = suite('evaluation');
const root = mkdtempSync(join(tmpdir(), 'eval-test-'));
t.after(() => rmSync(root, { recursive: true, force: true }));
const tiny = { arch: 'resnet18' as const, width: 1 / 16, smallStem: true };
let backbone = '';

t.before(async () => {
  await gpu();
  backbone = await exportRandomInit(runtime(), tiny, 3, join(root, 'tiny', 'backbone_torchvision.safetensors'));
});

t('mIoU and accuracy from a hand-computed confusion matrix', () => {
  const cm = new ConfusionMatrix(4, 255);
  // true:  0 0 1 1 2 255 ; predicted: 0 1 1 1 0 2 (the ignored pixel does not count)
  cm.add([0, 0, 1, 1, 2, 255], [0, 1, 1, 1, 0, 2]);
  // class 0: TP 1, FN 1, FP 1 -> 1/3; class 1: TP 2, FP 1 -> 2/3; class 2: TP 0, FN 1 -> 0;
  // class 3 appears nowhere: no IoU, left out of the mean.
  const iou = cm.iou();
  assert.ok(Math.abs(iou[0]! - 1 / 3) < 1e-12 && Math.abs(iou[1]! - 2 / 3) < 1e-12 && iou[2] === 0);
  assert.is(iou[3], null);
  assert.ok(Math.abs(cm.meanIoU() - 1 / 3) < 1e-12);
  assert.ok(Math.abs(cm.accuracy() - 3 / 5) < 1e-12);
  assert.throws(() => cm.add([7], [0]), /label 7 at 0 is outside 0\.\.3/);
});

/** Features where class k lights up channel k (plus noise): a probe must find it. */
function separable(count: number, classes: number, C: number, side: number, seed: number): FeatureSet {
  const rng = new Rng(seed);
  const size = side * 4;
  const plane = side * side;
  const maps = new Float32Array(count * C * plane);
  const labels = new Int32Array(count);
  const labelMaps = new Uint8Array(count * size * size);
  for (let i = 0; i < count; i++) {
    labels[i] = rng.int(classes);
    for (let cell = 0; cell < plane; cell++) {
      const k = (labels[i] + (cell % 2)) % classes; // two classes per image, in a checker of cells
      for (let c = 0; c < C; c++) maps[(i * C + c) * plane + cell] = (c === k ? 2 : 0) + 0.3 * rng.normal();
      const [cy, cx] = [Math.floor(cell / side), cell % side];
      for (let y = 0; y < 4; y++)
        for (let x = 0; x < 4; x++) labelMaps[i * size * size + (cy * 4 + y) * size + cx * 4 + x] = k;
    }
    labelMaps[i * size * size] = 255; // an ignored pixel
  }
  const pooled = new Float32Array(count * C);
  for (let i = 0; i < count; i++)
    for (let c = 0; c < C; c++) pooled[i * C + c] = maps[(i * C + c) * plane] * 2 - maps[(i * C + c) * plane + 1];
  return { count, channels: C, side, pooled, maps, labels, labelMaps, size };
}

t('the probes learn what is plainly in the features', async () => {
  const rt = runtime();
  const train = separable(96, 4, 8, 2, 1);
  const val = separable(48, 4, 8, 2, 2);
  const lin = await linearProbe(rt, train, val, 4, { ...LINEAR_PROBE_DEFAULTS, epochs: 30, batchSize: 32 });
  assert.ok(lin.top1 >= 0.95, `linear probe on separable features: top-1 ${lin.top1}`);
  assert.ok(lin.losses[lin.losses.length - 1] < lin.losses[0], 'the probe loss falls');
  const seg = await segProbe(rt, train, val, 4, {
    ...SEG_PROBE_DEFAULTS,
    epochs: 8,
    batchSize: 16,
    keepPredictions: 2,
  });
  assert.ok(seg.mIoU >= 0.6, `segmentation probe on separable maps: mIoU ${seg.mIoU}`);
  assert.is(seg.predictions.length, 2 * 8 * 8);
});

t('eval linear and eval seg run end to end on the built-in scenes', async () => {
  const rt = runtime();
  const common = { ...tiny, backbone, imgSize: 16, trainImages: 32, valImages: 16, featureBatch: 16, quiet: true };
  const lin = await evalLinear(
    { ...EVAL_LINEAR_DEFAULTS, ...common, epochs: 3, batchSize: 16, out: join(root, 'lin') },
    rt,
  );
  assert.ok(lin.top1 >= 0 && lin.top1 <= 1 && lin.losses.every(Number.isFinite), `top-1 ${lin.top1}`);
  assert.ok(existsSync(join(root, 'lin', 'results.md')));
  const seg = await evalSeg(
    { ...EVAL_SEG_DEFAULTS, ...common, epochs: 2, batchSize: 8, pictureImages: 3, out: join(root, 'seg') },
    rt,
  );
  assert.ok(seg.mIoU > 0 && seg.mIoU <= 1, `mIoU ${seg.mIoU}`);
  assert.is(seg.iou.length, 9, 'background and the 8 scene classes');
  const meta = await sharp(seg.picture).metadata();
  assert.ok(meta.width! > 3 * 96 && meta.height! > 3 * 96, `picture ${meta.width}x${meta.height}`);
  const saved = JSON.parse(readFileSync(join(root, 'seg', 'results.json'), 'utf8'));
  assert.ok(Math.abs(saved.mIoU - seg.mIoU) < 1e-12);
});

t('both evaluations refuse a backbone of another architecture', async () => {
  const rt = runtime();
  const wrong = { ...tiny, width: 1 / 8, backbone, imgSize: 16, trainImages: 8, valImages: 8, quiet: true };
  await rejects(
    () => evalLinear({ ...EVAL_LINEAR_DEFAULTS, ...wrong, out: join(root, 'x') }, rt),
    /does not match resnet18 \(width 0\.125, small stem\): 'conv1\.weight' is F32\[4, 3, 3, 3\], the model needs F32\[8, 3, 3, 3\]/,
  );
  await rejects(
    () => evalSeg({ ...EVAL_SEG_DEFAULTS, ...wrong, out: join(root, 'x') }, rt),
    /does not match resnet18 \(width 0\.125/,
  );
  await rejects(
    () => evalSeg({ ...EVAL_SEG_DEFAULTS, ...wrong, width: 1 / 16, smallStem: false, out: join(root, 'x') }, rt),
    /'conv1\.weight' is F32\[4, 3, 3, 3\], the model needs F32\[4, 3, 7, 7\]/,
  );
});

// A palette PNG written by hand: sharp cannot write chosen palette indices. Bit depth 2 and
// 8, each row with another of the five PNG filters, so the reader's unfiltering is exercised.
function palettePng(width: number, height: number, indices: number[], bitDepth: 2 | 8): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 255] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc(body), body.length + 4);
    return out;
  };
  const stride = Math.ceil((width * bitDepth) / 8);
  const rows: Buffer[] = [];
  let prev = Buffer.alloc(stride);
  for (let y = 0; y < height; y++) {
    const raw = Buffer.alloc(stride);
    for (let x = 0; x < width; x++) {
      const v = indices[y * width + x];
      if (bitDepth === 8) raw[x] = v;
      else raw[x >> 2] |= v << (6 - 2 * (x & 3));
    }
    const filter = y % 5;
    const row = Buffer.alloc(stride + 1);
    row[0] = filter;
    for (let i = 0; i < stride; i++) {
      const a = i > 0 ? raw[i - 1] : 0,
        b = prev[i],
        c = i > 0 ? prev[i - 1] : 0;
      const p = a + b - c;
      const paeth =
        Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c)
          ? a
          : Math.abs(p - b) <= Math.abs(p - c)
            ? b
            : c;
      const pred = [0, a, b, (a + b) >> 1, paeth][filter];
      row[i + 1] = (raw[i] - pred) & 255;
    }
    rows.push(row);
    prev = raw;
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = bitDepth;
  ihdr[9] = 3;
  // A palette whose colours are not the indices: reading colours would give other numbers.
  const plte = Buffer.from(Array.from({ length: 256 * 3 }, (_, i) => (i * 37 + 11) & 255));
  return Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk('IHDR', ihdr),
    chunk('PLTE', plte),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

t('label-map PNGs: palette indices (2 and 8 bits, all row filters) and grayscale read as classes', async () => {
  const w = 13,
    h = 7;
  const idx8 = Array.from({ length: w * h }, (_, i) => ((i * 7) % 21 === 20 ? 255 : (i * 7) % 21));
  assert.equal([...decodeIndexPng(palettePng(w, h, idx8, 8), 'p8.png').data], idx8);
  const idx2 = Array.from({ length: w * h }, (_, i) => (i * 5 + (i >> 3)) % 4);
  assert.equal([...decodeIndexPng(palettePng(w, h, idx2, 2), 'p2.png').data], idx2);
  const gray = Buffer.from(Array.from({ length: w * h }, (_, i) => (i % 3 === 0 ? 255 : i % 21)));
  const png = await sharp(gray, { raw: { width: w, height: h, channels: 1 } })
    .toColourspace('b-w')
    .png()
    .toBuffer();
  assert.equal([...decodeIndexPng(png, 'g.png').data], [...gray]);
  const rgb = await sharp(Buffer.alloc(w * h * 3, 9), { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toBuffer();
  assert.throws(
    () => decodeIndexPng(rgb, 'rgb.png'),
    /rgb\.png is a RGB PNG; a label map must be a palette or grayscale PNG/,
  );
});

async function makeVoc(dir: string, ids: { train: string[]; val: string[] }): Promise<void> {
  for (const sub of ['JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation'])
    mkdirSync(join(dir, sub), { recursive: true });
  const all = [...ids.train, ...ids.val];
  for (let n = 0; n < all.length; n++) {
    const [w, h] = [20, 16];
    const img = Buffer.from(Array.from({ length: w * h * 3 }, (_, i) => (i * (n + 3)) & 255));
    writeFileSync(
      join(dir, 'JPEGImages', `${all[n]}.jpg`),
      await sharp(img, { raw: { width: w, height: h, channels: 3 } })
        .jpeg()
        .toBuffer(),
    );
    const labels = Array.from({ length: w * h }, (_, i) =>
      i % w < 2 ? 255 : ((i % w) >> 2) % 3 === 0 ? 0 : n % 2 ? 15 : 7,
    );
    writeFileSync(join(dir, 'SegmentationClass', `${all[n]}.png`), palettePng(w, h, labels, 8));
  }
  writeFileSync(join(dir, 'ImageSets/Segmentation/train.txt'), ids.train.join('\n') + '\n');
  writeFileSync(join(dir, 'ImageSets/Segmentation/val.txt'), ids.val.join('\n') + '\n');
}

t('VOC layout: label maps read as indices; eval seg runs; missing or mismatched maps are named', async () => {
  const voc = join(root, 'voc');
  await makeVoc(voc, { train: ['2007_000001', '2007_000002', '2007_000003'], val: ['2007_000004', '2007_000005'] });
  const opts = {
    data: voc,
    imgSize: 16,
    trainImages: 0,
    valImages: 0,
    dataSeed: 0,
    fashionMnistDir: '',
    numClasses: 0,
  };
  const data = await openSegmentationData(opts);
  assert.is(data.classNames.length, 21);
  const s = await data.train.get(1);
  assert.is(s.labelMap![0], 255);
  assert.is(s.labelMap![2], 0);
  assert.is(s.labelMap![4], 15, 'palette index 15 (person), not its colour');
  const r = await evalSeg(
    {
      ...EVAL_SEG_DEFAULTS,
      ...tiny,
      backbone,
      data: voc,
      imgSize: 16,
      epochs: 2,
      batchSize: 2,
      pictureImages: 2,
      quiet: true,
      out: join(root, 'voc-out'),
    },
    runtime(),
  );
  assert.ok(
    r.iou.length === 21 && r.iou[0] !== null && r.iou[15] !== null && Number.isFinite(r.mIoU),
    'background and the classes present are scored',
  );
  await rejects(
    () => openSegmentationData({ ...opts, numClasses: 10 }).then((d) => d.train.get(1)),
    /SegmentationClass\/2007_000002\.png has class 15 at pixel 4, outside 0\.\.9/,
  );

  unlinkSync(join(voc, 'SegmentationClass', '2007_000003.png'));
  await rejects(
    () => openSegmentationData(opts),
    /label map .*SegmentationClass\/2007_000003\.png is missing for image .*JPEGImages\/2007_000003\.jpg/,
  );
  writeFileSync(join(voc, 'SegmentationClass', '2007_000003.png'), palettePng(20, 15, new Array(300).fill(1), 8));
  await rejects(
    () => openSegmentationData(opts),
    /label map .*2007_000003\.png is 20x15 but its image .*2007_000003\.jpg is 20x16/,
  );
  await rejects(
    () => openSegmentationData({ ...opts, data: join(root, 'nothing') }),
    /does not exist; expected the PASCAL VOC layout/,
  );
});

t('class folders: every 5th image of each class is held out', async () => {
  const dir = join(root, 'classes');
  for (const cls of ['cats', 'dogs']) {
    mkdirSync(join(dir, cls), { recursive: true });
    for (let i = 0; i < 5; i++) {
      const px = Buffer.alloc(12 * 10 * 3, cls === 'cats' ? 40 * i : 255 - 40 * i);
      writeFileSync(
        join(dir, cls, `${i}.png`),
        await sharp(px, { raw: { width: 12, height: 10, channels: 3 } })
          .png()
          .toBuffer(),
      );
    }
  }
  const data = await openClassificationData({
    data: dir,
    imgSize: 8,
    trainImages: 0,
    valImages: 0,
    dataSeed: 0,
    fashionMnistDir: '',
    numClasses: 0,
  });
  assert.equal(data.classNames, ['cats', 'dogs']);
  assert.equal([data.train.length, data.val.length], [8, 2]);
  assert.equal([(await data.val.get(0)).label, (await data.val.get(1)).label], [0, 1]);
  assert.match(data.val.name(1), /dogs\/4\.png$/);
});

function idx(dims: number[], values: number[], gz: boolean): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = 8;
  head[3] = dims.length;
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  const b = Buffer.concat([head, Buffer.from(values)]);
  return gz ? gzipSync(b) : b;
}

t('Fashion-MNIST: IDX files (plain and gzipped) become RGB images with labels; missing files are named', async () => {
  const dir = join(root, 'fmnist');
  mkdirSync(dir);
  const n = 5;
  const pixels = Array.from({ length: n * 28 * 28 }, (_, i) => (i * 13) & 255);
  writeFileSync(join(dir, 'train-images-idx3-ubyte.gz'), idx([n, 28, 28], pixels, true));
  writeFileSync(join(dir, 'train-labels-idx1-ubyte'), idx([n], [3, 1, 4, 1, 5], false));
  const split = loadFashionMnist('train', dir);
  assert.equal([split.count, split.height, split.width], [5, 28, 28]);
  assert.equal([...split.labels], [3, 1, 4, 1, 5]);
  assert.is(split.images[28 * 28 + 1], pixels[28 * 28 + 1]);
  assert.throws(() => parseIdx(Buffer.from([1, 2, 3, 4]), 'x.idx'), /x\.idx is not an IDX file/);
  // The held-out split (t10k) is missing: the message names the expected file and the fix.
  await rejects(
    () =>
      openClassificationData({
        data: 'fashion-mnist',
        imgSize: 16,
        trainImages: 0,
        valImages: 0,
        dataSeed: 0,
        fashionMnistDir: dir,
        numClasses: 0,
      }),
    /Fashion-MNIST t10k files not found: expected .*fmnist\/t10k-images-idx3-ubyte\[\.gz\].*apt-get install dataset-fashion-mnist/,
  );
  writeFileSync(join(dir, 't10k-images-idx3-ubyte'), idx([2, 28, 28], pixels.slice(0, 2 * 784), false));
  writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), idx([2], [0, 9], false));
  const data = await openClassificationData({
    data: 'fashion-mnist',
    imgSize: 16,
    trainImages: 0,
    valImages: 0,
    dataSeed: 0,
    fashionMnistDir: dir,
    numClasses: 0,
  });
  const s = await data.val.get(1);
  assert.equal([s.image.width, s.image.height, s.label], [28, 28, 9]);
  assert.equal(
    [s.image.data[0], s.image.data[1], s.image.data[2]],
    [pixels[784], pixels[784], pixels[784]],
    'gray replicated to RGB',
  );
});

t('replicate: --preset gpu fills what the flags leave; kept runs of other settings are refused', async () => {
  const o = replicateOptions({ ...REPLICATE_DEFAULTS, preset: 'gpu', epochs: 6 }, new Set(['preset', 'epochs']));
  assert.equal([o.epochs, o.width, o.seeds, o.imgSize], [6, 0.5, 3, 64]);
  assert.throws(
    () => replicateOptions({ ...REPLICATE_DEFAULTS, preset: 'tpu' }, new Set()),
    /--preset must be cpu or gpu/,
  );
  const out = join(root, 'rep');
  mkdirSync(join(out, 'seed0', 'random'), { recursive: true });
  const small = { ...REPLICATE_DEFAULTS, seeds: 1, evalTrainImages: 4, evalValImages: 4, out };
  const { preset: _p, seeds: _s, workers: _w, out: _o, ...settings } = { ...small, epochs: 1 };
  writeFileSync(join(out, 'seed0', 'random', 'result.json'), JSON.stringify({ method: 'random', seed: 0, settings }));
  await rejects(
    () => replicate({ ...small, epochs: 2 }, runtime()),
    /result\.json was made with other settings \(epochs 1 there, 2 now\)/,
  );
});

t.run();
