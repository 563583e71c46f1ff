// Labelled data for the evaluations: train and held-out splits of images with a class (linear
// evaluation) or a per-pixel label map (segmentation).
//   builtin        the procedural scenes (train/data/scenes.ts) of a seed pre-training does not
//                  use by default; class = the object with most visible pixels, label map = 0
//                  background and 1..8 the objects
//   fashion-mnist  the IDX files (train split for training, t10k held out)
//   DIR            linear: one subfolder per class, every 5th image of each class held out;
//                  seg: the PASCAL VOC layout (voc.ts)
import type { RgbImage } from '../data/augment.js';
import { SceneDataset, SCENE_CLASSES } from '../data/scenes.js';
import { FolderDataset } from '../data/folder.js';
import { sceneSourceSize } from '../data-source.js';
import { loadFashionMnist, FASHION_CLASSES } from './fashion-mnist.js';
import { openVoc, readVocSample, VOC_CLASSES } from './voc.js';

export interface EvalSample {
  image: RgbImage;
  label: number;
  /** image.height x image.width class indices (segmentation), 255 = ignore. */
  labelMap?: Uint8Array;
}

export interface EvalSplit {
  length: number;
  get(i: number): Promise<EvalSample> | EvalSample;
  /** File or name of sample i, for messages. */
  name(i: number): string;
}

export interface EvalData {
  train: EvalSplit;
  val: EvalSplit;
  classNames: string[];
  description: string;
}

export interface EvalDataOptions {
  data: string;
  /** Side of the views; scenes are made 1.5x larger, like pre-training's, and resized. */
  imgSize: number;
  /** Caps on the split sizes (0 = all; the scenes need a number). */
  trainImages: number;
  valImages: number;
  /** Seed of the built-in scenes (pre-training uses its own --seed). */
  dataSeed: number;
  fashionMnistDir: string;
  /** Classes of a VOC-layout dataset (0 = VOC's 21). */
  numClasses: number;
}

const cap = (n: number, max: number): number => (max > 0 ? Math.min(n, max) : n);

function subset(
  n: number,
  fn: (i: number) => EvalSample | Promise<EvalSample>,
  name: (i: number) => string,
): EvalSplit {
  return { length: n, get: fn, name };
}

function builtin(o: EvalDataOptions, segmentation: boolean): EvalData {
  const nTrain = o.trainImages || 1024;
  const nVal = o.valImages || 512;
  const scenes = new SceneDataset({ seed: o.dataSeed, size: sceneSourceSize(o.imgSize), length: nTrain + nVal });
  const get = (i: number): EvalSample => {
    const s = scenes.get(i);
    return { image: s.image, label: s.label, labelMap: segmentation ? s.labelMap : undefined };
  };
  const name = (i: number) => `scene ${i} (seed ${o.dataSeed})`;
  return {
    train: subset(nTrain, get, name),
    val: subset(
      nVal,
      (i) => get(nTrain + i),
      (i) => name(nTrain + i),
    ),
    classNames: segmentation ? ['background', ...SCENE_CLASSES.map((c) => c.name)] : SCENE_CLASSES.map((c) => c.name),
    description: `built-in scenes (seed ${o.dataSeed}, ${nTrain} train / ${nVal} held out, ${scenes.size}px)`,
  };
}

function fashion(o: EvalDataOptions): EvalData {
  const split = (which: 'train' | 't10k', max: number): EvalSplit => {
    const d = loadFashionMnist(which, o.fashionMnistDir);
    const plane = d.height * d.width;
    return subset(
      cap(d.count, max),
      (i) => {
        const rgb = new Uint8Array(plane * 3);
        for (let p = 0; p < plane; p++) rgb[3 * p] = rgb[3 * p + 1] = rgb[3 * p + 2] = d.images[i * plane + p];
        return { image: { width: d.width, height: d.height, data: rgb }, label: d.labels[i] };
      },
      (i) => `fashion-mnist ${which} image ${i}`,
    );
  };
  const train = split('train', o.trainImages);
  const val = split('t10k', o.valImages);
  return {
    train,
    val,
    classNames: FASHION_CLASSES,
    description: `Fashion-MNIST (${train.length} train / ${val.length} t10k held out)`,
  };
}

async function folder(o: EvalDataOptions): Promise<EvalData> {
  const ds = await FolderDataset.open(o.data, { cropSize: o.imgSize });
  const top = ds.labels.findIndex((l) => l < 0);
  if (top >= 0)
    throw new Error(
      `${ds.path(top)} is not in a class subfolder; linear evaluation needs one subfolder per class under ${o.data}`,
    );
  if (ds.numClasses < 2)
    throw new Error(`${o.data} has ${ds.numClasses} class subfolder(s); linear evaluation needs at least 2`);
  // Every 5th image of each class is held out (files are in sorted order).
  const seen = new Array<number>(ds.numClasses).fill(0);
  const trainIdx: number[] = [];
  const valIdx: number[] = [];
  ds.labels.forEach((l, i) => (seen[l]++ % 5 === 4 ? valIdx : trainIdx).push(i));
  const split = (idx: number[], max: number): EvalSplit =>
    subset(
      cap(idx.length, max),
      async (i) => ds.get(idx[i]),
      (i) => ds.path(idx[i]),
    );
  const train = split(trainIdx, o.trainImages);
  const val = split(valIdx, o.valImages);
  return {
    train,
    val,
    classNames: ds.classNames,
    description: `${o.data} (${ds.numClasses} classes, ${train.length} train / ${val.length} held out)`,
  };
}

async function voc(o: EvalDataOptions): Promise<EvalData> {
  const { train, val } = await openVoc(o.data);
  const classNames = o.numClasses > 0 ? Array.from({ length: o.numClasses }, (_, k) => `class ${k}`) : VOC_CLASSES;
  const split = (s: typeof train, max: number): EvalSplit =>
    subset(
      cap(s.ids.length, max),
      async (i) => {
        const { image, labelMap } = await readVocSample(s, i);
        const bad = labelMap.findIndex((v) => v !== 255 && v >= classNames.length);
        if (bad >= 0) {
          throw new Error(
            `label map ${s.labelPath(i)} has class ${labelMap[bad]} at pixel ${bad}, outside 0..${classNames.length - 1} (255 = ignore); pass --num-classes for a dataset other than VOC`,
          );
        }
        return { image, labelMap, label: -1 };
      },
      (i) => s.labelPath(i),
    );
  return {
    train: split(train, o.trainImages),
    val: split(val, o.valImages),
    classNames,
    description: `${o.data} (PASCAL VOC layout, ${classNames.length} classes, ${cap(train.ids.length, o.trainImages)} train / ${cap(val.ids.length, o.valImages)} val)`,
  };
}

export async function openClassificationData(o: EvalDataOptions): Promise<EvalData> {
  if (o.data === 'builtin') return builtin(o, false);
  if (o.data === 'fashion-mnist') return fashion(o);
  return folder(o);
}

export async function openSegmentationData(o: EvalDataOptions): Promise<EvalData> {
  if (o.data === 'builtin') return builtin(o, true);
  if (o.data === 'fashion-mnist')
    throw new Error(
      'eval seg: Fashion-MNIST has no label maps; use --data builtin or a folder in the PASCAL VOC layout',
    );
  return voc(o);
}
