// The loader benchmark's photo folder (bench/lib/photos.ts): the sizes, count and file sizes it
// promises, decodable by the dataset that trains on it, the same bytes every time, and a cache
// that is made once and never left half-written.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { cachedPhotoFolder, photoName, photoSize, writePhotos } from '../bench/lib/photos.js';
import { FolderDataset } from '../train/data/folder.js';

const t = suite('bench photos');
const dir = mkdtempSync(join(tmpdir(), 'bench-photos-test-'));
t.after(() => rmSync(dir, { recursive: true, force: true }));

// One more than the list of shapes, so the list wraps around.
const COUNT = 7;

t('writePhotos: COUNT JPEGs of ImageNet-like sizes and file sizes, decodable, the same bytes every time', async () => {
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  for (const d of [a, b]) {
    rmSync(d, { recursive: true, force: true });
    mkdirSync(d);
    await writePhotos(d, { count: COUNT, seed: 1 });
  }
  const files = readdirSync(a).sort();
  assert.equal(
    files,
    Array.from({ length: COUNT }, (_, i) => photoName(i)),
  );
  const shapes = new Set<string>();
  let bytes = 0;
  for (let i = 0; i < COUNT; i++) {
    const path = join(a, photoName(i));
    const { width, height } = photoSize(i);
    shapes.add(`${width}x${height}`);
    const meta = await sharp(path).metadata();
    assert.is(meta.format, 'jpeg');
    assert.is(meta.width, width, `${photoName(i)} width`);
    assert.is(meta.height, height, `${photoName(i)} height`);
    assert.ok(
      Math.max(width, height) === 500 && Math.min(width, height) >= 333,
      `${width}x${height} is an ImageNet-like size`,
    );
    const size = statSync(path).size;
    bytes += size;
    // Flat synthetic colours alone make about 37 KB; the detail brings photos to ImageNet's range.
    assert.ok(size > 45_000 && size < 200_000, `${photoName(i)} is ${size} bytes`);
    assert.ok(
      readFileSync(path).equals(readFileSync(join(b, photoName(i)))),
      `${photoName(i)} is made the same every time`,
    );
  }
  assert.ok(shapes.size >= 4, `several shapes: ${[...shapes].join(', ')}`);
  assert.ok(bytes / COUNT > 60_000, `${(bytes / COUNT / 1024).toFixed(0)} KB on average`);

  // What the loader reads: every file decodes to RGB of its size, with varied pixels.
  const ds = await FolderDataset.open(a, { cropSize: 224 });
  assert.is(ds.length, COUNT);
  for (let i = 0; i < COUNT; i++) {
    const { image } = await ds.get(i);
    assert.is(image.data.length, photoSize(i).width * photoSize(i).height * 3);
    let lo = 255;
    let hi = 0;
    for (const v of image.data) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    assert.ok(hi - lo > 100, `photo ${i} spans ${lo}..${hi}`);
  }
});

t('writePhotos: bad counts and qualities are refused by name', async () => {
  for (const [opts, part] of [
    [{ count: 0 }, 'count 0'],
    [{ count: 2, quality: 101 }, 'quality 101'],
  ] as const) {
    try {
      await writePhotos(dir, opts);
      assert.unreachable('should have thrown');
    } catch (e) {
      assert.ok((e as Error).message.includes(part), (e as Error).message);
    }
  }
});

t('cachedPhotoFolder: made on first use, reused after, no partial folder left', async () => {
  const root = join(dir, 'cache');
  const first = await cachedPhotoFolder({ count: 3, seed: 2 }, root);
  assert.ok(first.made);
  assert.is(first.count, 3);
  assert.ok(first.bytes > 3 * 45_000);
  const mtime = statSync(join(first.dir, photoName(0))).mtimeMs;
  const again = await cachedPhotoFolder({ count: 3, seed: 2 }, root);
  assert.not.ok(again.made);
  assert.equal(
    { dir: again.dir, count: again.count, bytes: again.bytes },
    { dir: first.dir, count: first.count, bytes: first.bytes },
  );
  assert.is(statSync(join(first.dir, photoName(0))).mtimeMs, mtime, 'not rewritten');
  assert.equal(readdirSync(root), [first.dir.slice(root.length + 1)]);
});

t.run();
