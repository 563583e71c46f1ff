// Fashion-MNIST from its IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-*,
// each optionally .gz), as Debian's dataset-fashion-mnist installs them under
// /usr/share/datasets/fashion-mnist. Images are 28x28 grayscale; the evaluation turns them into
// RGB images, which plainView resizes to the view size.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

export const FASHION_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

/** Where the files are looked for when no folder is given. */
export const FASHION_MNIST_DIRS = [
  '/usr/share/datasets/fashion-mnist',
  '/usr/share/dataset-fashion-mnist',
  'data/fashion-mnist',
];

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/** Parses an IDX file of unsigned bytes (type 0x08): magic 0 0 8 rank, then rank big-endian sizes. */
export function parseIdx(bytes: Uint8Array, path: string): IdxArray {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzipSync(bytes);
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0)
    throw new Error(`${path} is not an IDX file (bad magic number)`);
  if (bytes[2] !== 0x08)
    throw new Error(`${path}: IDX element type 0x${bytes[2].toString(16)} is not unsigned bytes (0x08)`);
  const rank = bytes[3];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4 + 4 * rank) throw new Error(`${path}: IDX header is truncated`);
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i));
  const n = dims.reduce((a, b) => a * b, 1);
  const start = 4 + 4 * rank;
  if (bytes.length < start + n)
    throw new Error(`${path}: IDX data is truncated (${bytes.length - start} bytes for ${dims.join('x')})`);
  return { dims, data: bytes.subarray(start, start + n) };
}

export interface FashionSplit {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  height: number;
  width: number;
}

function findFile(dir: string, stem: string): string | null {
  for (const name of [stem, `${stem}.gz`]) if (existsSync(join(dir, name))) return join(dir, name);
  return null;
}

/** Reads one split ('train' or 't10k') from `dir`, or from the first of FASHION_MNIST_DIRS that has it. */
export function loadFashionMnist(split: 'train' | 't10k', dir = ''): FashionSplit {
  const dirs = dir ? [dir] : FASHION_MNIST_DIRS;
  const stems = [`${split}-images-idx3-ubyte`, `${split}-labels-idx1-ubyte`];
  const where = dirs.find((d) => stems.every((s) => findFile(d, s)));
  if (!where) {
    const missing = dirs.map((d) => join(d, `${stems[0]}[.gz]`)).join(' or ');
    throw new Error(
      `Fashion-MNIST ${split} files not found: expected ${missing} (and ${stems[1]}[.gz] beside it). ` +
        `Install them with 'apt-get install dataset-fashion-mnist' (Debian) or pass --fashion-mnist-dir DIR`,
    );
  }
  const [imgPath, lblPath] = stems.map((s) => findFile(where, s)!);
  const images = parseIdx(readFileSync(imgPath), imgPath);
  const labels = parseIdx(readFileSync(lblPath), lblPath);
  if (images.dims.length !== 3)
    throw new Error(`${imgPath}: expected [count, rows, cols] images, got dims ${images.dims.join('x')}`);
  if (labels.dims.length !== 1 || labels.dims[0] !== images.dims[0]) {
    throw new Error(
      `${lblPath}: ${labels.dims.join('x')} labels do not match the ${images.dims[0]} images of ${imgPath}`,
    );
  }
  const bad = labels.data.findIndex((l) => l >= FASHION_CLASSES.length);
  if (bad >= 0)
    throw new Error(
      `${lblPath}: label ${labels.data[bad]} of image ${bad} is outside 0..${FASHION_CLASSES.length - 1}`,
    );
  return {
    images: images.data,
    labels: labels.data,
    count: images.dims[0],
    height: images.dims[1],
    width: images.dims[2],
  };
}
