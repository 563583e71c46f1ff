// ResNet-18/34/50 with torchvision's architecture and parameter names ("pytorch style" v1.5:
// the stride sits in the 3x3 conv of a bottleneck). Options: a width multiplier, and a
// small-image stem (3x3 stride-1 conv, no max-pool) for tiny demos. The forward returns the
// last stage's feature map (after its final ReLU), as DenseCL uses it. A block's last BN, the
// shortcut add and the ReLU run as one fused op (forward and backward).
import type { Tensor } from '../engine/index.js';
import { conv2d } from '../engine/ops/conv2d/index.js';
import { batchNorm2d } from '../engine/ops/batchnorm.js';
import { maxPool2d } from '../engine/ops/maxpool.js';
import { kaimingNormal, constant, type ParamSpec, type BufferSpec, type ModelState } from './state.js';

export type Arch = 'resnet18' | 'resnet34' | 'resnet50';

export interface ResNetConfig {
  arch: Arch;
  /** Multiplies every stage width (1 = torchvision). */
  width: number;
  /** 3x3 stride-1 stem without max-pool, for small images. */
  smallStem: boolean;
}

const LAYOUT: Record<Arch, { blocks: number[]; bottleneck: boolean }> = {
  resnet18: { blocks: [2, 2, 2, 2], bottleneck: false },
  resnet34: { blocks: [3, 4, 6, 3], bottleneck: false },
  resnet50: { blocks: [3, 4, 6, 3], bottleneck: true },
};

interface ConvDef {
  name: string;
  inC: number;
  outC: number;
  k: number;
  stride: number;
  pad: number;
}

interface BlockDef {
  prefix: string;
  convs: ConvDef[]; // conv1, conv2 (, conv3), each followed by bn1, bn2 (, bn3)
  downsample: ConvDef | null;
}

/** A conv and the BN after it, with their tensors in one model state resolved by name once. */
interface ConvBnLayer {
  conv: ConvDef;
  weight: Tensor;
  bn: { weight: Tensor; bias: Tensor; runningMean: Tensor; runningVar: Tensor };
}

interface ResolvedNet {
  stem: ConvBnLayer;
  blocks: { convs: ConvBnLayer[]; downsample: ConvBnLayer | null }[];
}

export class ResNet {
  readonly stem: ConvDef;
  readonly blocks: BlockDef[] = [];
  readonly outChannels: number;
  /** Total stride from input to the last feature map. */
  readonly stride: number;
  /** Layers resolved per model state and name prefix (torchvision names stay in the specs and exports). */
  private readonly resolved = new WeakMap<ModelState, Map<string, ResolvedNet>>();

  constructor(readonly cfg: ResNetConfig) {
    const layout = LAYOUT[cfg.arch];
    if (!layout) throw new Error(`unknown architecture '${cfg.arch}'; choose resnet18, resnet34 or resnet50`);
    if (!(cfg.width > 0)) throw new Error(`resnet width multiplier must be positive, got ${cfg.width}`);
    const w = (c: number) => Math.max(1, Math.round(c * cfg.width));
    const expansion = layout.bottleneck ? 4 : 1;
    this.stem = cfg.smallStem
      ? { name: 'conv1', inC: 3, outC: w(64), k: 3, stride: 1, pad: 1 }
      : { name: 'conv1', inC: 3, outC: w(64), k: 7, stride: 2, pad: 3 };
    let inC = w(64);
    layout.blocks.forEach((count, stage) => {
      const planes = w(64 * 2 ** stage);
      for (let b = 0; b < count; b++) {
        const stride = b === 0 && stage > 0 ? 2 : 1;
        const prefix = `layer${stage + 1}.${b}`;
        const outC = planes * expansion;
        const convs: ConvDef[] = layout.bottleneck
          ? [
              { name: `${prefix}.conv1`, inC, outC: planes, k: 1, stride: 1, pad: 0 },
              { name: `${prefix}.conv2`, inC: planes, outC: planes, k: 3, stride, pad: 1 },
              { name: `${prefix}.conv3`, inC: planes, outC, k: 1, stride: 1, pad: 0 },
            ]
          : [
              { name: `${prefix}.conv1`, inC, outC: planes, k: 3, stride, pad: 1 },
              { name: `${prefix}.conv2`, inC: planes, outC: planes, k: 3, stride: 1, pad: 1 },
            ];
        const downsample =
          stride !== 1 || inC !== outC ? { name: `${prefix}.downsample.0`, inC, outC, k: 1, stride, pad: 0 } : null;
        this.blocks.push({ prefix, convs, downsample });
        inC = outC;
      }
    });
    this.outChannels = inC;
    this.stride = outputStride(cfg.smallStem);
  }

  private convBn(): { conv: ConvDef; bn: string }[] {
    const out = [{ conv: this.stem, bn: 'bn1' }];
    for (const b of this.blocks) {
      b.convs.forEach((c, i) => out.push({ conv: c, bn: `${b.prefix}.bn${i + 1}` }));
      if (b.downsample) out.push({ conv: b.downsample, bn: `${b.prefix}.downsample.1` });
    }
    return out;
  }

  /** Parameters in torchvision order and names (prefixed, e.g. 'backbone.'). */
  paramSpecs(prefix = ''): ParamSpec[] {
    const specs: ParamSpec[] = [];
    for (const { conv, bn } of this.convBn()) {
      specs.push({
        name: prefix + conv.name + '.weight',
        shape: [conv.outC, conv.inC, conv.k, conv.k],
        init: kaimingNormal(conv.inC * conv.k * conv.k),
      });
      specs.push({ name: prefix + bn + '.weight', shape: [conv.outC], init: constant(1) });
      specs.push({ name: prefix + bn + '.bias', shape: [conv.outC], init: constant(0) });
    }
    return specs;
  }

  /** BN running statistics (num_batches_tracked is counted on the CPU by the trainer). */
  bufferSpecs(prefix = ''): BufferSpec[] {
    const specs: BufferSpec[] = [];
    for (const { conv, bn } of this.convBn()) {
      specs.push({ name: prefix + bn + '.running_mean', shape: [conv.outC], value: 0 });
      specs.push({ name: prefix + bn + '.running_var', shape: [conv.outC], value: 1 });
    }
    return specs;
  }

  /** BN layer names, for num_batches_tracked in exports. */
  bnNames(): string[] {
    return this.convBn().map((c) => c.bn);
  }

  /**
   * Features of the last stage, N x C x S x S. `bnGroups` computes BN statistics in groups of
   * the batch (shuffle-BN emulated on one device).
   */
  forward(state: ModelState, x: Tensor, opts: { training: boolean; bnGroups?: number; prefix?: string }): Tensor {
    const net = this.resolve(state, opts.prefix ?? '');
    const bnOpts = { training: opts.training, groups: opts.bnGroups ?? 1 };
    const convBn = (l: ConvBnLayer, input: Tensor, withRelu: boolean, residual?: Tensor): Tensor => {
      const y = conv2d(input, l.weight, null, { stride: l.conv.stride, padding: l.conv.pad });
      const { weight, bias, runningMean, runningVar } = l.bn;
      return batchNorm2d(y, weight, bias, runningMean, runningVar, { ...bnOpts, relu: withRelu, residual });
    };
    let h = convBn(net.stem, x, true);
    if (!this.cfg.smallStem) h = maxPool2d(h, { kernelSize: 3, stride: 2, padding: 1 });
    for (const b of net.blocks) {
      const identity = b.downsample ? convBn(b.downsample, h, false) : h;
      const last = b.convs.length - 1;
      let y = h;
      b.convs.forEach((l, i) => {
        // The last BN adds the shortcut, then ReLU: relu(bn(conv(y)) + identity).
        y = convBn(l, y, true, i === last ? identity : undefined);
      });
      h = y;
    }
    return h;
  }

  /** The layers' tensors in `state` under `prefix`, looked up by name on first use only. */
  private resolve(state: ModelState, prefix: string): ResolvedNet {
    let byPrefix = this.resolved.get(state);
    if (!byPrefix) this.resolved.set(state, (byPrefix = new Map()));
    const hit = byPrefix.get(prefix);
    if (hit) return hit;
    const layer = (conv: ConvDef, bn: string): ConvBnLayer => ({
      conv,
      weight: state.p(`${prefix}${conv.name}.weight`),
      bn: {
        weight: state.p(`${prefix}${bn}.weight`),
        bias: state.p(`${prefix}${bn}.bias`),
        runningMean: state.buffer(`${prefix}${bn}.running_mean`),
        runningVar: state.buffer(`${prefix}${bn}.running_var`),
      },
    });
    const net: ResolvedNet = {
      stem: layer(this.stem, 'bn1'),
      blocks: this.blocks.map((b) => ({
        convs: b.convs.map((c, i) => layer(c, `${b.prefix}.bn${i + 1}`)),
        downsample: b.downsample ? layer(b.downsample, `${b.prefix}.downsample.1`) : null,
      })),
    };
    byPrefix.set(prefix, net);
    return net;
  }
}

/** Total stride from input to the last feature map: 32 (7x7 stride-2 stem and max-pool), 8 with the small stem. */
export function outputStride(smallStem: boolean): number {
  return smallStem ? 8 : 32;
}
