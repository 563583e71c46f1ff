// A segmentation dataset in the PASCAL VOC layout:
//   ROOT/JPEGImages/<id>.jpg, ROOT/SegmentationClass/<id>.png (class index per pixel, 255 =
//   ignore, palette or grayscale PNG), ROOT/ImageSets/Segmentation/{train,val}.txt (one id a line).
// Opening checks every listed id: both files exist and the label map has the image's size, so
// a broken dataset fails at once, naming the first bad file, not halfway through an evaluation.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadSharp } from '../data/sharp.js';
import { decodeIndexPng, pngSize } from './png-index.js';
import type { RgbImage } from '../data/augment.js';

export const VOC_CLASSES = [
  'background',
  'aeroplane',
  'bicycle',
  'bird',
  'boat',
  'bottle',
  'bus',
  'car',
  'cat',
  'chair',
  'cow',
  'diningtable',
  'dog',
  'horse',
  'motorbike',
  'person',
  'pottedplant',
  'sheep',
  'sofa',
  'train',
  'tvmonitor',
];

export interface VocSplit {
  ids: string[];
  imagePath(i: number): string;
  labelPath(i: number): string;
}

const LAYOUT = 'JPEGImages/<id>.jpg, SegmentationClass/<id>.png and ImageSets/Segmentation/{train,val}.txt';

export async function openVoc(root: string): Promise<{ train: VocSplit; val: VocSplit }> {
  if (!existsSync(root) || !statSync(root).isDirectory())
    throw new Error(`segmentation data folder "${root}" does not exist; expected the PASCAL VOC layout (${LAYOUT})`);
  for (const sub of ['JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation']) {
    if (!existsSync(join(root, sub)))
      throw new Error(`"${root}" has no ${sub}/ folder; expected the PASCAL VOC layout (${LAYOUT})`);
  }
  const split = (name: string): VocSplit => {
    const list = join(root, 'ImageSets/Segmentation', `${name}.txt`);
    if (!existsSync(list))
      throw new Error(`${list} is missing; the VOC layout lists the ${name} images there, one id a line`);
    const ids = readFileSync(list, 'utf8')
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter(Boolean);
    if (!ids.length) throw new Error(`${list} lists no images`);
    return {
      ids,
      imagePath: (i) => join(root, 'JPEGImages', `${ids[i]}.jpg`),
      labelPath: (i) => join(root, 'SegmentationClass', `${ids[i]}.png`),
    };
  };
  const train = split('train');
  const val = split('val');
  for (const s of [train, val]) await checkSplit(s);
  return { train, val };
}

async function checkSplit(s: VocSplit): Promise<void> {
  const sharp = await loadSharp();
  for (let i = 0; i < s.ids.length; i++) {
    const img = s.imagePath(i);
    const lbl = s.labelPath(i);
    if (!existsSync(img)) throw new Error(`image ${img} is missing (listed as '${s.ids[i]}')`);
    if (!existsSync(lbl)) throw new Error(`label map ${lbl} is missing for image ${img}`);
    const size = pngSize(readFileSync(lbl), lbl);
    const meta = await sharp(img)
      .metadata()
      .catch((e: Error) => {
        throw new Error(`could not read image ${img}: ${e.message.split('\n')[0]}`);
      });
    const [w, h] = (meta.orientation ?? 1) >= 5 ? [meta.height, meta.width] : [meta.width, meta.height];
    if (w !== size.width || h !== size.height) {
      throw new Error(
        `label map ${lbl} is ${size.width}x${size.height} but its image ${img} is ${w}x${h}; they must have the same size`,
      );
    }
  }
}

/** The image as 8-bit RGB and its class-index map. */
export async function readVocSample(
  s: VocSplit,
  i: number,
): Promise<{ image: RgbImage & { data: Uint8Array }; labelMap: Uint8Array }> {
  const path = s.imagePath(i);
  const sharp = await loadSharp();
  const decoded = await sharp(path, { autoOrient: true })
    .removeAlpha()
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true })
    .catch((e: Error) => {
      throw new Error(`could not decode ${path}: ${e.message.split('\n')[0]}`);
    });
  const { data, info } = decoded;
  let rgb = new Uint8Array(data.buffer, data.byteOffset, data.length);
  if (info.channels === 1) {
    rgb = new Uint8Array(info.width * info.height * 3);
    for (let p = 0; p < info.width * info.height; p++) rgb[3 * p] = rgb[3 * p + 1] = rgb[3 * p + 2] = data[p];
  }
  const map = decodeIndexPng(readFileSync(s.labelPath(i)), s.labelPath(i));
  if (map.width !== info.width || map.height !== info.height) {
    throw new Error(
      `label map ${s.labelPath(i)} is ${map.width}x${map.height} but its image ${path} is ${info.width}x${info.height}`,
    );
  }
  return { image: { width: info.width, height: info.height, data: rgb }, labelMap: map.data };
}
