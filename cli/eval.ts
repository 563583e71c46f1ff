// `densecl eval linear` and `densecl eval seg`: what a pre-trained backbone file (torchvision
// names, safetensors) is worth on labelled data, with the backbone frozen. Both write
// results.json and results.md to --out; seg also writes segmentation.png (images, true and
// predicted label maps of the first validation images).
import { writeFileSync } from 'node:fs';
import { makeFolder } from '../train/io.js';
import { join, resolve } from 'node:path';
import { init, type Runtime } from '../engine/index.js';
import type { Arch } from '../models/resnet.js';
import { loadBackbone } from '../train/backbone.js';
import { PRETRAIN_PRESETS } from '../train/presets.js';

/** The backbone `npm run train` (the tiny preset) writes. */
const TRAINED = PRETRAIN_PRESETS.tiny.options;
import { openClassificationData, openSegmentationData, type EvalData } from '../train/eval/datasets.js';
import { extractFeatures, type FeatureSet } from '../train/eval/features.js';
import { linearProbe, LINEAR_PROBE_DEFAULTS, type LinearProbeResult } from '../train/eval/linear-probe.js';
import { segProbe, SEG_PROBE_DEFAULTS, type SegProbeResult } from '../train/eval/seg-probe.js';
import { writeSegmentationPicture } from '../train/eval/picture.js';

const COMMON = {
  backbone: '',
  arch: TRAINED.arch,
  width: TRAINED.width,
  smallStem: TRAINED.smallStem,
  data: 'builtin',
  imgSize: TRAINED.imgSize,
  /** Caps on the split sizes; for the built-in scenes the sizes (0 = 1024 train, 512 held out). */
  trainImages: 0,
  valImages: 0,
  dataSeed: 1000,
  fashionMnistDir: '',
  featureBatch: 64,
  seed: 0,
  quiet: false,
};

export const EVAL_LINEAR_DEFAULTS = {
  ...COMMON,
  epochs: LINEAR_PROBE_DEFAULTS.epochs,
  batchSize: LINEAR_PROBE_DEFAULTS.batchSize,
  lr: LINEAR_PROBE_DEFAULTS.lr,
  weightDecay: LINEAR_PROBE_DEFAULTS.weightDecay,
  out: 'runs/eval-linear',
};
export const EVAL_SEG_DEFAULTS = {
  ...COMMON,
  numClasses: 0,
  epochs: SEG_PROBE_DEFAULTS.epochs,
  batchSize: SEG_PROBE_DEFAULTS.batchSize,
  lr: SEG_PROBE_DEFAULTS.lr,
  weightDecay: SEG_PROBE_DEFAULTS.weightDecay,
  pictureImages: SEG_PROBE_DEFAULTS.keepPredictions,
  out: 'runs/eval-seg',
};

export type EvalLinearOptions = typeof EVAL_LINEAR_DEFAULTS;
export type EvalSegOptions = typeof EVAL_SEG_DEFAULTS;

const log = (quiet: boolean, line: string) => {
  if (!quiet) console.error(line);
};

/** The backbone's features of both splits (the backbone is released afterwards). */
export async function backboneFeatures(
  rt: Runtime,
  o: typeof COMMON,
  data: EvalData,
  keepMaps: boolean,
): Promise<{ train: FeatureSet; val: FeatureSet }> {
  if (!o.backbone)
    throw new Error(
      'eval: --backbone FILE is required (a backbone_torchvision.safetensors from densecl pretrain or export)',
    );
  const { net, state } = loadBackbone(rt, o.backbone, { arch: o.arch as Arch, width: o.width, smallStem: o.smallStem });
  try {
    const run = async (name: string, split: EvalData['train']) => {
      const t0 = performance.now();
      const f = await extractFeatures(rt, net, state, split, {
        imgSize: o.imgSize,
        batchSize: o.featureBatch,
        keepMaps,
      });
      log(
        o.quiet,
        `features of ${split.length} ${name} images: ${f.channels} x ${f.side} x ${f.side} in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
      );
      return f;
    };
    return { train: await run('train', data.train), val: await run('held-out', data.val) };
  } finally {
    state.destroy();
  }
}

const pct = (v: number) => `${(100 * v).toFixed(2)}`;

export async function evalLinear(
  o: EvalLinearOptions,
  runtime?: Runtime,
): Promise<LinearProbeResult & { out: string }> {
  const rt = runtime ?? (await init({ quiet: true }));
  try {
    const data = await openClassificationData({ ...o, numClasses: 0 });
    log(o.quiet, `linear evaluation of ${o.backbone} on ${data.description}`);
    const { train, val } = await backboneFeatures(rt, o, data, false);
    const r = await linearProbe(rt, train, val, data.classNames.length, o);
    const out = resolve(o.out);
    makeFolder(out);
    writeFileSync(
      join(out, 'results.json'),
      JSON.stringify({ command: 'eval linear', options: o, data: data.description, ...r }, null, 2),
    );
    const rows = data.classNames.map((c, k) => `| ${c} | ${pct(r.perClassAccuracy[k])} |`).join('\n');
    writeFileSync(
      join(out, 'results.md'),
      `# Linear evaluation\n\nBackbone ${o.backbone} (${o.arch}, width ${o.width}${o.smallStem ? ', small stem' : ''}), data ${data.description}, ${o.imgSize}x${o.imgSize} views.\n\n` +
        `Top-1 accuracy (held out): **${pct(r.top1)}%** (train ${pct(r.trainTop1)}%).\n\n| class | accuracy % |\n| --- | --- |\n${rows}\n`,
    );
    return { ...r, out };
  } finally {
    if (!runtime) rt.destroy();
  }
}

export async function evalSeg(
  o: EvalSegOptions,
  runtime?: Runtime,
): Promise<SegProbeResult & { out: string; picture: string; classNames: string[] }> {
  const rt = runtime ?? (await init({ quiet: true }));
  try {
    const data = await openSegmentationData(o);
    log(o.quiet, `segmentation evaluation of ${o.backbone} on ${data.description}`);
    const { train, val } = await backboneFeatures(rt, o, data, true);
    const r = await segProbe(rt, train, val, data.classNames.length, { ...o, keepPredictions: o.pictureImages });
    const out = resolve(o.out);
    makeFolder(out);
    const shown = Math.min(o.pictureImages, val.count);
    const picture = join(out, 'segmentation.png');
    const images = [];
    for (let i = 0; i < shown; i++) images.push((await data.val.get(i)).image);
    await writeSegmentationPicture(
      picture,
      images,
      val.labelMaps!.subarray(0, shown * val.size * val.size),
      r.predictions,
      val.size,
    );
    const { predictions: _, ...figures } = r;
    writeFileSync(
      join(out, 'results.json'),
      JSON.stringify(
        { command: 'eval seg', options: o, data: data.description, classNames: data.classNames, ...figures },
        null,
        2,
      ),
    );
    const rows = data.classNames.map((c, k) => `| ${c} | ${r.iou[k] === null ? '-' : pct(r.iou[k]!)} |`).join('\n');
    writeFileSync(
      join(out, 'results.md'),
      `# Segmentation evaluation\n\nBackbone ${o.backbone} (${o.arch}, width ${o.width}${o.smallStem ? ', small stem' : ''}), data ${data.description}, ${o.imgSize}x${o.imgSize} views, ` +
        `frozen backbone + 1x1 conv + bilinear upsampling.\n\nmIoU (validation): **${pct(r.mIoU)}%**, pixel accuracy ${pct(r.pixelAccuracy)}% (train mIoU ${pct(r.trainMIoU)}%).\n\n` +
        `| class | IoU % |\n| --- | --- |\n${rows}\n\n![predicted vs true](segmentation.png)\n`,
    );
    return { ...r, out, picture, classNames: data.classNames };
  } finally {
    if (!runtime) rt.destroy();
  }
}
