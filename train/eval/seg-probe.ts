// Segmentation evaluation: a 1x1 convolution (with bias) on the frozen, standardised last
// feature map, upsampled bilinearly to the label map's size, trained on the GPU with the
// per-pixel cross-entropy (255 = ignore) and SGD; then IoU per class and mean IoU on the
// validation split, and the predicted maps of a few validation images for a picture.
import { tensor, scope, noGrad, argmax, bilinearUpsample2d, type Runtime, type Tensor } from '../../engine/index.js';
import { pixelCrossEntropy } from '../../models/ops/pixel_cross_entropy.js';
import { conv2d } from '../../engine/ops/conv2d/index.js';
import { ModelState, constant, normal } from '../../models/state.js';
import { fitHead } from './fit-head.js';
import { ConfusionMatrix } from './metrics.js';
import { channelStats, standardize, type FeatureSet } from './features.js';

export interface SegProbeOptions {
  epochs: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  seed: number;
  /** Validation images whose predicted maps are returned (for the picture). */
  keepPredictions: number;
}

export const SEG_PROBE_DEFAULTS: SegProbeOptions = {
  epochs: 20,
  batchSize: 16,
  lr: 0.1,
  weightDecay: 0,
  seed: 0,
  keepPredictions: 6,
};

export interface SegProbeResult {
  mIoU: number;
  /** Per class; null where the class occurs neither in the labels nor in the predictions. */
  iou: (number | null)[];
  pixelAccuracy: number;
  trainMIoU: number;
  losses: number[];
  /** [keepPredictions, size, size] predicted classes of the first validation images. */
  predictions: Uint8Array;
}

export async function segProbe(
  rt: Runtime,
  train: FeatureSet,
  val: FeatureSet,
  numClasses: number,
  o: SegProbeOptions,
): Promise<SegProbeResult> {
  const { channels: C, side: S, size: H } = train;
  for (const [name, f] of [
    ['train', train],
    ['validation', val],
  ] as const) {
    if (!f.maps || !f.labelMaps)
      throw new Error(`segmentation evaluation: the ${name} features have no maps or label maps`);
  }
  if (train.count < 1 || val.count < 1)
    throw new Error(`segmentation evaluation needs images in both splits (got ${train.count} train, ${val.count} val)`);
  const plane = S * S;
  const stats = channelStats(train.maps!, train.count, C, plane);
  const xTrain = standardize(train.maps!, train.count, C, plane, stats);
  const xVal = standardize(val.maps!, val.count, C, plane, stats);
  const head = new ModelState(
    rt,
    [
      { name: 'head.weight', shape: [numClasses, C, 1, 1], init: normal(0.01) },
      { name: 'head.bias', shape: [numClasses], init: constant(0) },
    ],
    [],
    o.seed,
    'seg_probe',
  );
  const logits = (x: Tensor): Tensor =>
    bilinearUpsample2d(conv2d(x, head.p('head.weight'), head.p('head.bias')), [H, H]);
  const batchOf = (x: Float32Array, f: FeatureSet, idx: number[]): { x: Float32Array; y: Int32Array } => {
    const bx = new Float32Array(idx.length * C * plane);
    const by = new Int32Array(idx.length * H * H);
    idx.forEach((i, b) => {
      bx.set(x.subarray(i * C * plane, (i + 1) * C * plane), b * C * plane);
      by.set(f.labelMaps!.subarray(i * H * H, (i + 1) * H * H), b * H * H);
    });
    return { x: bx, y: by };
  };
  const B = Math.min(o.batchSize, train.count);
  try {
    const losses = await fitHead(head, train.count, { ...o, seed: o.seed + 23 }, (idx) => {
      const { x, y } = batchOf(xTrain, train, idx);
      return pixelCrossEntropy(logits(tensor(x, [idx.length, C, S, S])), tensor(y, [idx.length, H, H], 'i32'), {
        ignoreIndex: 255,
      });
    });
    const score = async (
      x: Float32Array,
      f: FeatureSet,
      keep: number,
    ): Promise<{ cm: ConfusionMatrix; kept: Uint8Array }> => {
      const cm = new ConfusionMatrix(numClasses, 255);
      const kept = new Uint8Array(Math.min(keep, f.count) * H * H);
      for (let start = 0; start < f.count; start += B) {
        const idx = Array.from({ length: Math.min(B, f.count - start) }, (_, k) => start + k);
        const batch = batchOf(x, f, idx);
        const out = noGrad(() => scope(() => argmax(logits(tensor(batch.x, [idx.length, C, S, S])), 1)));
        const pred = (await out.data()) as Int32Array;
        out.dispose();
        cm.add(batch.y, pred);
        for (let p = 0; start * H * H + p < kept.length && p < pred.length; p++) kept[start * H * H + p] = pred[p];
      }
      return { cm, kept };
    };
    const v = await score(xVal, val, o.keepPredictions);
    const t = await score(xTrain, train, 0);
    return {
      mIoU: v.cm.meanIoU(),
      iou: v.cm.iou(),
      pixelAccuracy: v.cm.accuracy(),
      trainMIoU: t.cm.meanIoU(),
      losses,
      predictions: v.kept,
    };
  } finally {
    head.destroy();
  }
}
