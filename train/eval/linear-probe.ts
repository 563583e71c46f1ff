// Linear evaluation: a linear classifier on frozen, standardised global-average features, trained
// on the GPU with SGD (momentum 0.9, cosine learning rate, no weight decay by default, as MoCo's
// linear protocol), then top-1 accuracy on the held-out split.
import { tensor, scope, noGrad, linear, crossEntropy, argmax, type Runtime } from '../../engine/index.js';
import { ModelState, constant, normal } from '../../models/state.js';
import { fitHead } from './fit-head.js';
import { ConfusionMatrix } from './metrics.js';
import { channelStats, standardize, type FeatureSet } from './features.js';

export interface LinearProbeOptions {
  epochs: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  seed: number;
}

export const LINEAR_PROBE_DEFAULTS: LinearProbeOptions = {
  epochs: 100,
  batchSize: 256,
  lr: 0.1,
  weightDecay: 0,
  seed: 0,
};

export interface LinearProbeResult {
  top1: number;
  trainTop1: number;
  /** Mean training loss of each epoch's last step. */
  losses: number[];
  perClassAccuracy: number[];
}

export async function linearProbe(
  rt: Runtime,
  train: FeatureSet,
  val: FeatureSet,
  numClasses: number,
  o: LinearProbeOptions,
): Promise<LinearProbeResult> {
  const C = train.channels;
  for (const [name, f] of [
    ['train', train],
    ['held-out', val],
  ] as const) {
    const bad = f.labels.findIndex((l) => l < 0 || l >= numClasses);
    if (bad >= 0)
      throw new Error(
        `linear evaluation: ${name} image ${bad} has class ${f.labels[bad]}, outside 0..${numClasses - 1}`,
      );
  }
  if (train.count < 1 || val.count < 1)
    throw new Error(`linear evaluation needs images in both splits (got ${train.count} train, ${val.count} held out)`);
  const stats = channelStats(train.pooled, train.count, C, 1);
  const xTrain = standardize(train.pooled, train.count, C, 1, stats);
  const xVal = standardize(val.pooled, val.count, C, 1, stats);
  const head = new ModelState(
    rt,
    [
      { name: 'fc.weight', shape: [numClasses, C], init: normal(0.01) },
      { name: 'fc.bias', shape: [numClasses], init: constant(0) },
    ],
    [],
    o.seed,
    'linear_probe',
  );
  try {
    const losses = await fitHead(head, train.count, { ...o, seed: o.seed + 17 }, (idx) => {
      const x = new Float32Array(idx.length * C);
      const y = new Int32Array(idx.length);
      idx.forEach((i, b) => {
        x.set(xTrain.subarray(i * C, (i + 1) * C), b * C);
        y[b] = train.labels[i];
      });
      return crossEntropy(
        linear(tensor(x, [idx.length, C]), head.p('fc.weight'), head.p('fc.bias')),
        tensor(y, [idx.length], 'i32'),
      );
    });
    const predict = async (x: Float32Array, n: number): Promise<Int32Array> => {
      const out = noGrad(() =>
        scope(() => argmax(linear(tensor(x, [n, C]), head.p('fc.weight'), head.p('fc.bias')), 1)),
      );
      const v = (await out.data()) as Int32Array;
      out.dispose();
      return v;
    };
    const score = async (x: Float32Array, f: FeatureSet): Promise<ConfusionMatrix> => {
      const cm = new ConfusionMatrix(numClasses, -1);
      cm.add(f.labels, await predict(x, f.count));
      return cm;
    };
    const valCm = await score(xVal, val);
    const trainCm = await score(xTrain, train);
    const perClassAccuracy = Array.from({ length: numClasses }, (_, k) => {
      let row = 0;
      for (let j = 0; j < numClasses; j++) row += valCm.counts[k * numClasses + j];
      return row ? valCm.counts[k * numClasses + k] / row : NaN;
    });
    return { top1: valCm.accuracy(), trainTop1: trainCm.accuracy(), losses, perClassAccuracy };
  } finally {
    head.destroy();
  }
}
