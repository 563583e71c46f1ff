import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { SceneDataset, SCENE_CLASSES } from '../train/data/scenes.js';
import { FolderDataset } from '../train/data/folder.js';
import { openDataset } from '../train/data-source.js';
import { BatchLoader, EpochSampler, type Batch } from '../train/data/loader.js';
import { cropLabels, MOCO_V2 } from '../train/data/augment.js';

const t = suite('data');
const dir = mkdtempSync(join(tmpdir(), 'data-test-'));
t.after(() => rmSync(dir, { recursive: true, force: true }));

const same = (a: ArrayBufferView, b: ArrayBufferView): boolean =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

async function rejectsWith(p: Promise<unknown>, ...parts: string[]): Promise<void> {
  try {
    await p;
  } catch (e) {
    const msg = (e as Error).message;
    for (const s of parts) assert.ok(msg.includes(s), `error "${msg}" should mention "${s}"`);
    return;
  }
  assert.unreachable(`expected an error mentioning ${parts.join(', ')}`);
}

t('scenes: sample i of a seed is always the same image, whatever was made before', () => {
  const a = new SceneDataset({ seed: 3, size: 64 });
  const b = new SceneDataset({ seed: 3, size: 64 });
  const x = a.get(17);
  b.get(5);
  b.get(400);
  const y = b.get(17);
  assert.ok(same(x.image.data, y.image.data) && same(x.labelMap, y.labelMap));
  assert.is(x.label, y.label);
  assert.not.ok(same(x.image.data, a.get(18).image.data), 'another index differs');
  assert.not.ok(same(x.image.data, new SceneDataset({ seed: 4, size: 64 }).get(17).image.data), 'another seed differs');
});

t('scenes: label maps agree with the objects and the main class', () => {
  const ds = new SceneDataset({ seed: 1, size: 96 });
  assert.is(ds.numClasses, SCENE_CLASSES.length);
  const mainCounts = new Array(ds.numClasses).fill(0);
  let bgFrac = 0;
  const n = 200;
  for (let i = 0; i < n; i++) {
    const s = ds.get(i);
    assert.is(s.image.data.length, 96 * 96 * 3);
    assert.ok(s.objects.length >= 2 && s.objects.length <= 5);
    const perClass = new Array(ds.numClasses + 1).fill(0);
    for (const v of s.labelMap) perClass[v]++;
    // Visible pixels per object add up to the label map's count for its class.
    const fromObjects = new Array(ds.numClasses + 1).fill(0);
    for (const o of s.objects) fromObjects[o.cls] += o.visible;
    for (let c = 1; c <= ds.numClasses; c++) assert.is(perClass[c], fromObjects[c], `image ${i} class ${c}`);
    const biggest = Math.max(...s.objects.map((o) => o.visible));
    assert.ok(biggest > 0);
    assert.is(s.objects.find((o) => o.visible === biggest)!.cls - 1, s.label);
    mainCounts[s.label]++;
    bgFrac += perClass[0] / (96 * 96) / n;
  }
  // Every class is the main one sometimes; the background stays the largest region on average.
  assert.ok(
    mainCounts.every((c) => c >= 5),
    `main classes ${mainCounts}`,
  );
  assert.ok(bgFrac > 0.3 && bgFrac < 0.9, `background fraction ${bgFrac}`);
});

t('scenes: objects are textured (two colours inside striped, checkered, dotted objects)', () => {
  const ds = new SceneDataset({ seed: 2, size: 96 });
  let checked = 0;
  for (let i = 0; i < 40 && checked < 20; i++) {
    const s = ds.get(i);
    for (const o of s.objects) {
      if (s.objects.filter((p) => p.cls === o.cls).length > 1 || o.visible < 200) continue;
      if (!['stripes', 'checkers', 'dots'].includes(SCENE_CLASSES[o.cls - 1].texture)) continue;
      const colours = new Map<number, number>();
      for (let p = 0; p < s.labelMap.length; p++) {
        if (s.labelMap[p] !== o.cls) continue;
        const key = (s.image.data[3 * p] << 16) | (s.image.data[3 * p + 1] << 8) | s.image.data[3 * p + 2];
        colours.set(key, (colours.get(key) ?? 0) + 1);
      }
      assert.is(colours.size, 2, `image ${i} class ${o.cls}: ${colours.size} colours`);
      checked++;
    }
  }
  assert.ok(checked >= 10, `only ${checked} objects checked`);
});

// About 0.4 s on an unloaded core; the bound is loose because the test machine's CPU is shared.
t('scenes: 1000 images of 96x96 in seconds at most', () => {
  const ds = new SceneDataset({ seed: 9, size: 96 });
  const t0 = performance.now();
  for (let i = 0; i < 1000; i++) ds.get(i);
  const ms = performance.now() - t0;
  console.log(`  scenes: 1000 images of 96x96 in ${ms.toFixed(0)} ms`);
  assert.ok(ms < 4000, `${ms} ms`);
});

// A small folder: two classes, a grayscale and an RGBA PNG, a tiny image, a JPEG, a text file,
// a file that is not an image, and a truncated PNG whose header still reads.
async function makeFolder(): Promise<string> {
  const root = join(dir, 'images');
  mkdirSync(join(root, 'cats', 'deeper'), { recursive: true });
  mkdirSync(join(root, 'dogs'), { recursive: true });
  const noise = (w: number, h: number, c: number, seed: number) =>
    Buffer.from(Uint8Array.from({ length: w * h * c }, (_, i) => (i * 2654435761 + seed * 97) % 251));
  const png = (w: number, h: number, c: 1 | 3 | 4, seed: number) =>
    sharp(noise(w, h, c, seed), { raw: { width: w, height: h, channels: c } })
      .png()
      .toBuffer();
  for (let i = 0; i < 6; i++) writeFileSync(join(root, 'cats', `c${i}.png`), await png(40, 32, 3, i));
  writeFileSync(join(root, 'cats', 'deeper', 'gray.PNG'), await png(36, 36, 1, 7));
  writeFileSync(join(root, 'dogs', 'rgba.png'), await png(48, 40, 4, 8));
  writeFileSync(
    join(root, 'dogs', 'photo.jpg'),
    await sharp(noise(50, 44, 3, 9), { raw: { width: 50, height: 44, channels: 3 } })
      .jpeg()
      .toBuffer(),
  );
  writeFileSync(join(root, 'dogs', 'tiny.png'), await png(10, 12, 3, 10));
  for (let i = 0; i < 3; i++) writeFileSync(join(root, 'dogs', `d${i}.png`), await png(40, 40, 3, 20 + i));
  writeFileSync(join(root, 'dogs', 'notes.txt'), 'not an image');
  writeFileSync(join(root, 'dogs', 'corrupt.jpg'), 'this is not a JPEG');
  const full = await png(40, 40, 3, 30);
  writeFileSync(join(root, 'dogs', 'truncated.png'), full.subarray(0, full.length >> 1));
  return root;
}

t('folder: missing, non-folder and empty data folders give clear errors', async () => {
  await rejectsWith(FolderDataset.open(join(dir, 'nope')), 'nope', 'does not exist', '.jpg');
  writeFileSync(join(dir, 'file.png'), 'x');
  await rejectsWith(FolderDataset.open(join(dir, 'file.png')), 'file.png', 'is not a folder');
  mkdirSync(join(dir, 'empty', 'sub'), { recursive: true });
  writeFileSync(join(dir, 'empty', 'sub', 'readme.md'), '#');
  await rejectsWith(
    FolderDataset.open(join(dir, 'empty')),
    'empty',
    'holds no images',
    '1 files with other extensions',
  );
  mkdirSync(join(dir, 'bad'), { recursive: true });
  writeFileSync(join(dir, 'bad', 'a.jpg'), 'garbage');
  await rejectsWith(FolderDataset.open(join(dir, 'bad'), { onWarning: () => {} }), 'no readable images', 'a.jpg');
});

t('folder: classes from subfolders, unreadable files skipped and named, small images flagged', async () => {
  const root = await makeFolder();
  const warnings: string[] = [];
  const ds = await FolderDataset.open(root, { cropSize: 16, onWarning: (m) => warnings.push(m) });
  assert.equal(ds.classNames, ['cats', 'dogs']);
  assert.is(ds.length, 14, 'the truncated PNG passes the header check; the fake JPEG does not');
  assert.equal(
    ds.skipped.map((s) => s.path),
    [join('dogs', 'corrupt.jpg')],
  );
  assert.ok(
    warnings.some((w) => w.includes('skipped 1 unreadable image') && w.includes('corrupt.jpg')),
    warnings.join('\n'),
  );
  assert.ok(
    warnings.some((w) => w.includes('smaller than the 16x16 crop') && w.includes('tiny.png (10x12)')),
    warnings.join('\n'),
  );
  const gi = ds.files.indexOf(join('cats', 'deeper', 'gray.PNG'));
  assert.is(ds.labels[gi], 0);
  const gray = await ds.get(gi);
  assert.is(gray.image.data.length, 36 * 36 * 3, 'grayscale expands to RGB');
  const rgba = await ds.get(ds.files.indexOf(join('dogs', 'rgba.png')));
  assert.is(rgba.label, 1);
  assert.equal([rgba.image.width, rgba.image.height, rgba.image.data.length], [48, 40, 48 * 40 * 3]);
  // maxShortSide (3 * cropSize = 48 here) shrinks only larger images.
  const big = await FolderDataset.open(root, { cropSize: 8, onWarning: () => {} });
  const shrunk = await big.get(big.files.indexOf(join('dogs', 'photo.jpg')));
  assert.equal([shrunk.image.width, shrunk.image.height], [27, 24]);
  await rejectsWith(ds.get(ds.files.indexOf(join('dogs', 'truncated.png'))), 'truncated.png');
});

t('folder: pre-training data shrinks large images on load, and OS errors are named as such', async () => {
  const root = join(dir, 'large');
  mkdirSync(root, { recursive: true });
  await sharp({ create: { width: 1200, height: 900, channels: 3, background: { r: 10, g: 200, b: 40 } } })
    .png()
    .toFile(join(root, 'large.png'));
  const { dataset } = await openDataset({ data: root, imgSize: 32, seed: 0, builtinImages: 0 });
  const { image } = await (dataset as FolderDataset).get(0);
  assert.equal([image.width, image.height], [128, 96], 'shorter side 3 x the 32 px crop');
  // A link to a folder (as root, a permission error cannot be made): the reason is the OS's, not "unsupported image format".
  symlinkSync(dir, join(root, 'folder.png'));
  const warnings: string[] = [];
  const ds = await FolderDataset.open(root, { cropSize: 32, onWarning: (m) => warnings.push(m) });
  assert.equal(ds.skipped, [{ path: 'folder.png', reason: 'EISDIR: illegal operation on a directory, read' }]);
});

function assertSameBatch(a: Batch, b: Batch, what: string): void {
  assert.equal([a.epoch, a.position, a.step], [b.epoch, b.position, b.step], what);
  assert.equal(Array.from(a.indices), Array.from(b.indices), `${what}: indices`);
  assert.equal(Array.from(a.labels), Array.from(b.labels), `${what}: labels`);
  assert.ok(same(a.q, b.q) && same(a.k, b.k), `${what}: views differ`);
  assert.equal(a.geometry, b.geometry, `${what}: geometry`);
}

t('loader: byte views are the float views before normalisation, rounded, the same from workers', async () => {
  const ds = new SceneDataset({ seed: 5, size: 48, length: 16 });
  const floats = await (await BatchLoader.create(ds, { batchSize: 4, size: 24, seed: 7 })).next();
  const bytes = await (await BatchLoader.create(ds, { batchSize: 4, size: 24, seed: 7, pixels: 'bytes' })).next();
  assert.ok(bytes.q instanceof Uint8Array && bytes.k instanceof Uint8Array);
  assert.equal(bytes.geometry, floats.geometry);
  const { mean, std } = MOCO_V2;
  const plane = 24 * 24;
  let worst = 0;
  for (const [f, b] of [
    [floats.q, bytes.q],
    [floats.k, bytes.k],
  ] as const) {
    for (let i = 0; i < f.length; i++) {
      const c = Math.floor(i / plane) % 3;
      // Rounding to a byte moves a value by at most half a step, 0.5 / 255 before normalising.
      worst = Math.max(worst, Math.abs((b[i] / 255 - mean[c]) / std[c] - f[i]) / (0.5 / 255 / std[c]));
    }
  }
  assert.ok(worst <= 1 + 1e-3, `byte views off the float views by ${worst} half-steps`);
  const threaded = await BatchLoader.create(ds, { batchSize: 4, size: 24, seed: 7, pixels: 'bytes', workers: 1 });
  try {
    assert.ok(same(bytes.q, (await threaded.next()).q), 'a worker makes the same bytes');
  } finally {
    await threaded.close();
  }
  await rejectsWith(
    BatchLoader.create(ds, { batchSize: 4, size: 24, seed: 7, pixels: 'u8' as 'bytes' }),
    "pixels 'u8' must be 'floats' or 'bytes'",
  );
});

t('loader: shapes, epochs as permutations, and resume from the sampler state', async () => {
  const ds = new SceneDataset({ seed: 5, size: 48, length: 22 });
  const loader = await BatchLoader.create(ds, { batchSize: 4, size: 24, seed: 7 });
  assert.is(loader.batchesPerEpoch, 5);
  const seen: number[] = [];
  const batches: Batch[] = [];
  for (let i = 0; i < 7; i++) batches.push(await loader.next());
  const b0 = batches[0];
  assert.is(b0.q.length, 4 * 3 * 24 * 24);
  assert.is(b0.k.length, 4 * 3 * 24 * 24);
  assert.is(b0.geometry.q.length, 4);
  assert.not.ok(same(b0.q, b0.k), 'query and key views differ');
  for (const b of batches.slice(0, 5)) seen.push(...b.indices);
  assert.is(new Set(seen).size, 20, 'no image twice within an epoch');
  assert.equal([batches[5].epoch, batches[5].position, batches[5].step], [1, 0, 5]);
  assert.not.equal(Array.from(batches[5].indices), Array.from(batches[0].indices), 'a new order each epoch');
  assert.equal(
    Array.from(b0.labels),
    Array.from(b0.indices, (i) => ds.get(i).label),
  );
  // Resume after batch 3 (state saved then) and get batches 3..6 again.
  const replay = await BatchLoader.create(ds, { batchSize: 4, size: 24, seed: 7 });
  for (let i = 0; i < 3; i++) await replay.next();
  const state = replay.state();
  assert.equal(state, { seed: 7, epoch: 0, position: 3 });
  await replay.close();
  const resumed = await BatchLoader.create(ds, { batchSize: 4, size: 24, seed: 7, resume: state });
  for (let i = 3; i < 7; i++) assertSameBatch(await resumed.next(), batches[i], `resumed batch ${i}`);
  await resumed.close();
  await loader.close();
  // The synchronous path gives the same batches.
  const sync = await BatchLoader.create(ds, { batchSize: 4, size: 24, seed: 7 });
  assertSameBatch(sync.nextSync(), b0, 'nextSync');
  await rejectsWith(BatchLoader.create(ds, { batchSize: 4, size: 24, seed: 8, resume: state }), 'seed 7', 'seed 8');
});

t('loader: the same batches with 0 and 2 worker threads', async () => {
  const ds = new SceneDataset({ seed: 6, size: 64, length: 40 });
  const opts = { batchSize: 8, size: 32, seed: 11, withLabelMaps: true };
  const inline = await BatchLoader.create(ds, { ...opts, workers: 0 });
  const threaded = await BatchLoader.create(ds, { ...opts, workers: 2 });
  try {
    for (let i = 0; i < 6; i++) {
      const a = await inline.next();
      const b = await threaded.next();
      assertSameBatch(a, b, `batch ${i}`);
      assert.ok(same(a.qLabelMaps!, b.qLabelMaps!) && same(a.kLabelMaps!, b.kLabelMaps!), `batch ${i}: label maps`);
      // Each view's label map is the source's, cut with that view's own geometry.
      const s = ds.get(a.indices[2]);
      assert.ok(same(a.kLabelMaps!.subarray(2 * 32 * 32, 3 * 32 * 32), cropLabels(s.labelMap, a.geometry.k[2])));
    }
  } finally {
    await inline.close();
    await threaded.close();
  }
});

t('loader: sharding and bad sizes', async () => {
  const s0 = new EpochSampler(50, 4, 3, 0, 2);
  const s1 = new EpochSampler(50, 4, 3, 1, 2);
  assert.is(s0.batchesPerEpoch, 6);
  const r0 = Array.from({ length: 6 }, (_, p) => [...s0.batch(0, p)]).flat();
  const r1 = Array.from({ length: 6 }, (_, p) => [...s1.batch(0, p)]).flat();
  assert.is(new Set([...r0, ...r1]).size, 48, 'ranks see disjoint images');
  const ds = new SceneDataset({ size: 32, length: 10 });
  await rejectsWith(
    BatchLoader.create(ds, { batchSize: 16, size: 16, seed: 0 }),
    'batch size 16 is larger than the dataset',
    '10 images',
  );
});

t('loader: a corrupt image mid-epoch is replaced, counted and named, with workers too', async () => {
  const root = await makeFolder();
  const ds = await FolderDataset.open(root, { cropSize: 16, onWarning: () => {} });
  const bad = ds.files.indexOf(join('dogs', 'truncated.png'));
  for (const workers of [0, 2]) {
    const warnings: string[] = [];
    const loader = await BatchLoader.create(ds, {
      batchSize: 7,
      size: 16,
      seed: 1,
      workers,
      onWarning: (m) => warnings.push(m),
    });
    try {
      const b1 = await loader.next();
      const b2 = await loader.next();
      const all = [...b1.indices, ...b2.indices];
      assert.ok(all.includes(bad), 'the epoch covers every image');
      assert.is(loader.failures.length, 1);
      assert.ok(loader.failures[0].path.endsWith('truncated.png'));
      const skips = warnings.filter((w) => w.includes('skipped'));
      assert.is(skips.length, 1, warnings.join('\n'));
      assert.ok(skips[0].includes('truncated.png') && skips[0].includes('1 skipped so far'), skips[0]);
      // tiny.png (10x12) is smaller than the 16x16 views: said once.
      assert.is(warnings.filter((w) => w.includes('upscaled')).length, 1, warnings.join('\n'));
      assert.ok(
        warnings.some((w) => w.includes('tiny.png, 10x12')),
        warnings.join('\n'),
      );
      assert.ok(b1.q.every(Number.isFinite) && b2.q.every(Number.isFinite));
    } finally {
      await loader.close();
    }
  }
});

t.run();
