// Frozen-backbone features of an evaluation split: each image as an un-augmented view
// (plainView), the backbone in eval mode (BN running statistics) without gradients; the last
// feature map kept for segmentation and its global average for linear evaluation. The backbone
// never changes during an evaluation, so features are computed once and the probes train on them.
import { noGrad, scope, reshape, adaptiveAvgPool2d, inputOn, type Runtime, type Tensor } from '../../engine/index.js';
import { StepPrograms } from '../step-programs.js';
import type { ResNet } from '../../models/resnet.js';
import type { ModelState } from '../../models/state.js';
import { plainView, cropLabels } from '../data/augment.js';
import type { EvalSplit } from './datasets.js';

export interface FeatureSet {
  count: number;
  channels: number;
  /** Side of the feature maps (S x S). */
  side: number;
  /** [count, C] global averages. */
  pooled: Float32Array;
  /** [count, C, S, S] last-stage maps, when asked for. */
  maps: Float32Array | null;
  /** Class per image (-1 where the data has none). */
  labels: Int32Array;
  /** [count, size, size] label maps resized to the view (nearest), when the data has them. */
  labelMaps: Uint8Array | null;
  /** Side of the views and of labelMaps. */
  size: number;
}

export interface FeatureOptions {
  imgSize: number;
  batchSize: number;
  keepMaps: boolean;
  onProgress?: (done: number, total: number) => void;
}

export async function extractFeatures(
  rt: Runtime,
  net: ResNet,
  state: ModelState,
  split: EvalSplit,
  o: FeatureOptions,
): Promise<FeatureSet> {
  const S = o.imgSize;
  const n = split.length;
  const C = net.outChannels;
  const side = Math.ceil(S / net.stride);
  const pooled = new Float32Array(n * C);
  const maps = o.keepMaps ? new Float32Array(n * C * side * side) : null;
  const labels = new Int32Array(n);
  let labelMaps: Uint8Array | null = null;
  // Every full batch runs the same dispatches: replayed from a captured forward after the second.
  const programs = new StepPrograms<{ feats: Tensor; avg: Tensor }>(rt, 2);
  try {
    for (let start = 0; start < n; start += o.batchSize) {
      const B = Math.min(o.batchSize, n - start);
      const views = new Float32Array(B * 3 * S * S);
      for (let b = 0; b < B; b++) {
        const sample = await split.get(start + b);
        const { params } = plainView(sample.image, S, undefined, views, b * 3 * S * S);
        labels[start + b] = sample.label;
        if (sample.labelMap) {
          labelMaps ??= new Uint8Array(n * S * S);
          cropLabels(sample.labelMap, params, labelMaps, (start + b) * S * S);
        } else if (labelMaps) {
          throw new Error(`${split.name(start + b)} has no label map`);
        }
      }
      const { feats, avg } = programs.run(`${B}x${S}`, { images: views }, () =>
        noGrad(() =>
          scope(() => {
            const f = net.forward(state, inputOn(rt, 'images', views, [B, 3, S, S]), { training: false });
            if (f.shape[2] !== side || f.shape[3] !== side)
              throw new Error(`features: expected ${side}x${side} maps, got ${f.describe()} (engine/model bug)`);
            return { feats: f, avg: reshape(adaptiveAvgPool2d(f, 1), [B, C]) };
          }),
        ),
      );
      pooled.set((await avg.data()) as Float32Array, start * C);
      if (maps) maps.set((await feats.data()) as Float32Array, start * C * side * side);
      feats.dispose();
      avg.dispose();
      o.onProgress?.(start + B, n);
    }
  } finally {
    programs.destroy();
  }
  return { count: n, channels: C, side, pooled, maps, labels, labelMaps, size: S };
}

/**
 * Per-channel standardisation with the training split's statistics (what a BatchNorm without
 * affine in front of the probe does, as MAE's linear probe): probes then need one learning rate
 * for every backbone, whatever the scale of its features. `x` is [count, C, plane].
 */
export function channelStats(
  x: Float32Array,
  count: number,
  C: number,
  plane: number,
): { mean: Float64Array; std: Float64Array } {
  const mean = new Float64Array(C);
  const sq = new Float64Array(C);
  for (let i = 0; i < count; i++) {
    for (let c = 0; c < C; c++) {
      const base = (i * C + c) * plane;
      let s = 0;
      let s2 = 0;
      for (let p = 0; p < plane; p++) {
        const v = x[base + p];
        s += v;
        s2 += v * v;
      }
      mean[c] += s;
      sq[c] += s2;
    }
  }
  const m = count * plane;
  const std = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    mean[c] /= m;
    std[c] = Math.sqrt(Math.max(sq[c] / m - mean[c] * mean[c], 0) + 1e-5); // BatchNorm's eps
  }
  return { mean, std };
}

export function standardize(
  x: Float32Array,
  count: number,
  C: number,
  plane: number,
  stats: { mean: Float64Array; std: Float64Array },
): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < count; i++) {
    for (let c = 0; c < C; c++) {
      const base = (i * C + c) * plane;
      const m = stats.mean[c];
      const s = stats.std[c];
      for (let p = 0; p < plane; p++) out[base + p] = (x[base + p] - m) / s;
    }
  }
  return out;
}
