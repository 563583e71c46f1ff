// The size sets of `npm run bench -- gpu`: 'full' (the default) measures what a GPU user runs and
// fits in 5 minutes on a datacenter GPU; 'tiny' (BENCH_GPU_SIZES=tiny) runs the same parts at
// sizes lavapipe finishes in well under a minute (tests, smoke runs): its figures say nothing
// about GPU speed.
import type { TrainerOptions } from '../../train/trainer.js';
import { presetOptions, trainerOptions } from '../../train/presets.js';
import type { Method } from '../../models/densecl.js';
import { LAYERS, type Layer } from '../conv.js';
import type { TimingOptions } from '../lib/timing.js';

export type SizeName = 'full' | 'tiny';

/** One model and input setting whose training step is timed for each method. */
export interface StepSetting {
  label: string;
  options: TrainerOptions;
}

export interface SizeSet {
  name: SizeName;
  settings: StepSetting[];
  methods: Method[];
  /** Whether the first setting's DenseCL step is timed at --precision mixed too. */
  mixedStep: boolean;
  /** Steps before the timed ones (shader compilation, queues and pools settling). */
  warmupSteps: number;
  /** Steps of which the median is taken. */
  timedSteps: number;
  matmul: number[];
  conv: { batch: number; layers: Layer[]; side: (l: Layer) => number; sizeLabel: string };
  /** Timing of the matmul and conv cases (lib/timing.ts). */
  kernelTiming: TimingOptions;
  /** Limit for the PyTorch script, all its cases and modes together. */
  torchTimeoutS: number;
}

/**
 * The step's settings besides the model and sizes: the paper-coco preset's (dim 128, tau 0.2, EMA
 * 0.999, lambda 0.5, SGD momentum 0.9 and weight decay 1e-4, base lr 0.3) with a constant learning rate.
 * BN statistics are taken over groups of 32 images (one GPU's share of the paper's batch of 256
 * on 8 GPUs), or in 2 groups at the tiny sizes.
 */
function setting(
  label: string,
  o: Pick<TrainerOptions, 'arch' | 'imgSize' | 'batchSize' | 'queueSize' | 'bnGroups'> &
    Partial<Pick<TrainerOptions, 'width' | 'smallStem'>>,
): StepSetting {
  return {
    label,
    options: { ...trainerOptions(presetOptions('paper-coco')), ...o },
  };
}

const FULL: SizeSet = {
  name: 'full',
  settings: [
    setting('ResNet-50, 224 px, batch 32', {
      arch: 'resnet50',
      imgSize: 224,
      batchSize: 32,
      queueSize: 65536,
      bnGroups: 1,
    }),
    setting('ResNet-18, 64 px, batch 256', {
      arch: 'resnet18',
      imgSize: 64,
      batchSize: 256,
      queueSize: 65536,
      bnGroups: 8,
    }),
  ],
  methods: ['densecl', 'mocov2'],
  mixedStep: true,
  warmupSteps: 3,
  timedSteps: 10,
  matmul: [1024, 2048, 4096],
  conv: { batch: 32, layers: LAYERS, side: (l) => l.H, sizeLabel: '224' },
  kernelTiming: { targetBatchMs: 20, maxReps: 32, minSamples: 3, maxTime: 0.1 },
  torchTimeoutS: 240,
};

// Two conv shapes (a stride-2 3x3, a bottleneck 1x1) at 1/8 of their size.
const TINY_CONV = ['r18 layer2.0 3x3/2 64->128', 'r50 layer1 1x1 64->256'];

const TINY: SizeSet = {
  name: 'tiny',
  settings: [
    setting('ResNet-18 width 0.25 small stem, 32 px, batch 8', {
      arch: 'resnet18',
      width: 0.25,
      smallStem: true,
      imgSize: 32,
      batchSize: 8,
      queueSize: 32,
      bnGroups: 2,
    }),
    setting('ResNet-18 width 0.25 small stem, 16 px, batch 8', {
      arch: 'resnet18',
      width: 0.25,
      smallStem: true,
      imgSize: 16,
      batchSize: 8,
      queueSize: 32,
      bnGroups: 2,
    }),
  ],
  methods: ['densecl', 'mocov2'],
  mixedStep: false,
  warmupSteps: 1,
  timedSteps: 3,
  matmul: [128, 256],
  conv: {
    batch: 2,
    layers: LAYERS.filter((l) => TINY_CONV.includes(`${l.net} ${l.name}`)),
    side: (l) => Math.max(1, Math.round(l.H / 8)),
    sizeLabel: '28',
  },
  kernelTiming: { targetBatchMs: 5, maxReps: 4, minSamples: 2, maxTime: 0 },
  torchTimeoutS: 120,
};

/** A setting's step at --precision mixed (convolutions and linear layers on f16 operands). */
export function mixedSetting(s: StepSetting): StepSetting {
  return { label: `${s.label}, precision mixed`, options: { ...s.options, precision: 'mixed' } };
}

/** The set named by BENCH_GPU_SIZES ('full' when unset). */
export function sizeSet(name = process.env.BENCH_GPU_SIZES || 'full'): SizeSet {
  const sets: Record<SizeName, SizeSet> = { full: FULL, tiny: TINY };
  const set = sets[name as SizeName];
  if (!set)
    throw new Error(
      `BENCH_GPU_SIZES=${name} is not a size set; use 'full' (a GPU, the default) or 'tiny' (lavapipe, tests)`,
    );
  return set;
}

/** One line on what a set measures, for the report's header. */
export function describeSizes(s: SizeSet): string {
  return (
    `${s.name} sizes: steps of ${s.settings.map((x) => x.label).join(' and ')} (${s.methods.join(', ')}; median of ${s.timedSteps} after ${s.warmupSteps} warm-up), ` +
    `${s.mixedStep ? 'the first DenseCL step also at precision mixed where the adapter has shader-f16, ' : ''}` +
    `matmul ${s.matmul.join(', ')}, ${s.conv.layers.length} conv shapes x 3 directions at batch ${s.conv.batch}`
  );
}
