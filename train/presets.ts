// Named settings of `densecl pretrain`. Every run starts from one preset (`paper` unless
// --preset or the config file names another); the config file and then the flags change single
// settings, and the first progress line names the preset and each setting that differs from it,
// so nothing the user gives is silently combined with settings they did not ask for.
import { flagName, givenOptions, typedOptions, type Flags } from './args.js';
import { scaledLr } from './optim/schedule.js';
import { TRAINER_DEFAULTS, type TrainerOptions } from './trainer.js';
import type { Precision } from '../engine/index.js';

/** Settings that are not part of a recipe: the same in every preset. */
const RUN = {
  data: 'builtin',
  builtinImages: 2048,
  seed: 0,
  workers: 2,
  checkpointEvery: 100,
  out: 'runs/densecl',
  resume: '',
  /** A new run's query and key backbones start from this torchvision-named ResNet safetensors file. */
  initBackbone: '',
  /** Start a new run in an --out that holds another run's checkpoint (replaced by this run's first checkpoint). */
  overwrite: false,
  profile: 0,
  /** Stop after this many steps of this invocation (0 = run to the end); simulates an interrupted run. */
  stopAfter: 0,
};

/**
 * The DenseCL paper's ImageNet setting (/work/shared/densecl-spec.md, "Optimisation and data",
 * from the official code's configs): ResNet-50 (torchvision's, width 1, 7x7 stem), 224 px,
 * batch 256, base lr 0.03 per 256 images scaled linearly to the batch, cosine decay to zero (the
 * only schedule here), SGD momentum 0.9, weight decay 1e-4, queues of 65536 keys of 128 dims,
 * tau 0.2, lambda 0.5 from the first step, key-encoder EMA 0.999, 200 epochs, and shuffle-BN
 * over 8 groups (the paper's 8 GPUs of 32 images).
 */
const PAPER = {
  preset: 'paper',
  method: 'densecl',
  arch: 'resnet50',
  width: 1,
  smallStem: false,
  epochs: 200,
  batchSize: 256,
  imgSize: 224,
  queueSize: 65536,
  dim: 128,
  /** Base lr per 256 images (scaled linearly with --batch-size). */
  lr: 0.03,
  momentum: 0.9,
  weightDecay: 1e-4,
  tau: 0.2,
  emaMomentum: 0.999,
  lambda: 0.5,
  startIters: 0,
  bnGroups: 8,
  precision: 'f32' as Precision,
  ...RUN,
};

export type PretrainOptions = typeof PAPER;

/** What the presets set, with a line for `densecl help`. */
export const PRETRAIN_PRESETS: Record<string, { about: string; options: PretrainOptions }> = {
  paper: { about: "the DenseCL paper's ImageNet setting; the default", options: PAPER },
  // The spec: "COCO uses base lr 0.3, 800 epochs"; everything else as on ImageNet.
  'paper-coco': {
    about: "the DenseCL paper's COCO setting",
    options: { ...PAPER, preset: 'paper-coco', epochs: 800, lr: 0.3 },
  },
  // What `npm run train` runs: minutes on a CPU driver. COCO's base lr 0.3 suits short runs.
  tiny: {
    about: 'the built-in demo run of npm run train, minutes on a CPU',
    options: {
      ...PAPER,
      preset: 'tiny',
      arch: 'resnet18',
      width: 0.25,
      smallStem: true,
      epochs: 2,
      batchSize: 32,
      imgSize: 32,
      queueSize: 256,
      lr: 0.3,
    },
  },
  // `densecl profile`'s default step: torchvision's ResNet-18 at the paper's image size, on a batch small enough for any GPU.
  profile: {
    about: 'the step densecl profile times by default',
    options: { ...PAPER, preset: 'profile', arch: 'resnet18', batchSize: 8, queueSize: 4096 },
  },
};

/** The preset used when neither a flag nor the config file names one. */
export const DEFAULT_PRESET = 'paper';

/** Settings that shape the network for its arch: torchvision's values for every arch. */
const ARCH_STANDARD = { width: 1, smallStem: false };

export function presetOptions(name: string): PretrainOptions {
  const p = PRETRAIN_PRESETS[name];
  if (!p) {
    throw new Error(
      `pretrain: unknown preset '${name}'; the presets are ${Object.entries(PRETRAIN_PRESETS)
        .map(([n, q]) => `${n} (${q.about})`)
        .join(', ')}`,
    );
  }
  return { ...p.options };
}

/**
 * The options of a new run: the preset named by the flags or the config file (flags win), then
 * the config file's settings, then the flags. Width and stem belong to an arch: when the user
 * picks another arch than the preset's and does not set them, they are that arch's standard
 * (torchvision's), not the preset's.
 */
export function pretrainOptions(flags: Flags): PretrainOptions {
  return optionsOverPreset(givenOptions(flags, 'pretrain'), 'pretrain', DEFAULT_PRESET);
}

/** `given` (config file and flags, see givenOptions) over the preset it names, else over `defaultPreset`. */
export function optionsOverPreset(
  given: Record<string, unknown>,
  command: string,
  defaultPreset: string,
): PretrainOptions {
  const name = given.preset ?? defaultPreset;
  if (typeof name !== 'string')
    throw new Error(`${command}: --preset needs a name: ${Object.keys(PRETRAIN_PRESETS).join(', ')}`);
  const preset = presetOptions(name);
  const o = typedOptions(preset, given, command);
  if (o.arch !== preset.arch) {
    for (const k of Object.keys(ARCH_STANDARD) as (keyof typeof ARCH_STANDARD)[])
      if (!(k in given)) (o[k] as unknown) = ARCH_STANDARD[k];
  }
  return o;
}

/** The Trainer's settings of a run (the training step's; none of the run's files and counters); totalSteps 0 keeps lr constant. */
export function trainerOptions(o: PretrainOptions, totalSteps = 0): TrainerOptions {
  const step: Record<string, unknown> = {};
  for (const k of Object.keys(TRAINER_DEFAULTS))
    step[k] = k === 'totalSteps' ? totalSteps : o[k as keyof PretrainOptions];
  return step as unknown as TrainerOptions;
}

/** The options the user gave (config file and flags), typed; for a resumed run, which keeps the rest. */
export function givenPretrainOptions(flags: Flags): Partial<PretrainOptions> {
  const given = givenOptions(flags, 'pretrain');
  const typed = typedOptions(PAPER, given, 'pretrain');
  return Object.fromEntries(Object.keys(given).map((k) => [k, typed[k as keyof PretrainOptions]]));
}

interface Range {
  ok: (v: number) => boolean;
  says: string;
}
const whole = (min: number): Range => ({
  ok: (v) => Number.isSafeInteger(v) && v >= min,
  says: `a whole number >= ${min}`,
});
const above0: Range = { ok: (v) => v > 0 && v < Infinity, says: 'a finite number above 0' };
const from0below1: Range = { ok: (v) => v >= 0 && v < 1, says: 'in [0, 1)' };

/** What a resumed run may change: its length, where its data lives now, how this invocation runs. */
export const ADJUSTABLE: readonly string[] = ['epochs', 'data', 'workers', 'checkpointEvery', 'stopAfter', 'profile'];

/** One option of `densecl pretrain`: its value as the usage text writes it, its range (numbers) and what it does, where the name does not say. */
interface OptionSpec {
  value: string;
  range?: Range;
  about?: string;
}

/**
 * The option schema: every option of a run (the presets give the defaults, flagName the flag)
 * with its usage text and its range; checkOptionRanges and pretrainUsage read it, so a new
 * option is one entry here and one in the presets.
 */
const OPTIONS: Record<keyof PretrainOptions, OptionSpec> = {
  preset: {
    value: Object.keys(PRETRAIN_PRESETS).join('|'),
    about: `the settings a run starts from (default ${DEFAULT_PRESET}); a --config file may name one too`,
  },
  method: { value: 'densecl|mocov2' },
  data: { value: 'DIR|builtin' },
  arch: { value: 'resnet18|resnet34|resnet50' },
  width: { value: 'W', range: above0 },
  smallStem: { value: '' },
  epochs: { value: 'N', range: whole(1) },
  batchSize: { value: 'B', range: whole(2) },
  imgSize: { value: 'S', range: whole(1) },
  queueSize: { value: 'K', range: whole(1) },
  dim: { value: 'D', range: whole(1) },
  lr: {
    value: 'LR',
    range: above0,
    about: 'base learning rate per 256 images (scaled linearly with the batch, cosine decay)',
  },
  momentum: { value: 'M', range: from0below1 },
  weightDecay: { value: 'WD', range: { ok: (v) => v >= 0 && v < Infinity, says: 'a finite number >= 0' } },
  tau: { value: 'T', range: above0 },
  lambda: { value: 'L', range: { ok: (v) => v >= 0 && v <= 1, says: 'in [0, 1]' } },
  emaMomentum: { value: 'E', range: from0below1 },
  startIters: { value: 'N', range: whole(0) },
  bnGroups: { value: 'G', range: whole(1) },
  precision: {
    value: 'f32|mixed',
    about: 'mixed: convolutions and linear layers on f16 operands with f32 sums (GPUs with shader-f16; opt-in)',
  },
  builtinImages: { value: 'N', range: whole(1) },
  seed: { value: 'N', range: whole(0) },
  workers: { value: 'N', range: whole(0) },
  checkpointEvery: { value: 'N', range: whole(1) },
  out: { value: 'RUNDIR', about: 'the run folder (refused if it holds another run, unless --overwrite)' },
  overwrite: { value: '' },
  initBackbone: { value: 'FILE.safetensors', about: 'start both backbones from a torchvision ResNet state dict' },
  resume: {
    value: 'RUNDIR',
    about: `continue a run with its saved settings; only ${ADJUSTABLE.map(flagName).join(' ')} may change`,
  },
  profile: { value: 'N', range: whole(0), about: 'time N steps per kernel; writes profile.md and trace.json' },
  stopAfter: { value: 'N', range: whole(0), about: 'stop after N steps of this invocation' },
};

/** `densecl help`'s lines on pretrain's options, from the schema: the plain ones packed into lines, then the others one a line. */
export function pretrainUsage(indent: string, width = 110): string {
  const specs = Object.entries(OPTIONS) as [string, OptionSpec][];
  const flag = (key: string, spec: OptionSpec) => `${flagName(key)}${spec.value ? ` ${spec.value}` : ''}`;
  const lines: string[] = [];
  let packed = '';
  for (const [key, spec] of specs.filter(([, x]) => !x.about)) {
    const f = flag(key, spec);
    if (packed && indent.length + packed.length + 1 + f.length > width) {
      lines.push(indent + packed);
      packed = '';
    }
    packed = packed ? `${packed} ${f}` : f;
  }
  if (packed) lines.push(indent + packed);
  for (const [key, spec] of specs.filter(([, x]) => x.about)) lines.push(`${indent}${flag(key, spec)}  ${spec.about}`);
  return lines.join('\n');
}

/** Every setting within its range, and names not empty; errors name the flag as it is typed. */
export function checkOptionRanges(o: PretrainOptions): void {
  for (const [k, { range }] of Object.entries(OPTIONS) as [keyof PretrainOptions, OptionSpec][]) {
    if (!range) continue;
    const v = o[k] as number;
    if (typeof v !== 'number' || !range.ok(v)) throw new Error(`${flagName(k)} must be ${range.says}, got ${v}`);
  }
  for (const k of ['method', 'arch', 'data', 'out'] as const)
    if (!o[k]) throw new Error(`${flagName(k)} must not be empty`);
}

/** Shown by the first progress line, not as differences. */
const NOT_COMPARED = new Set(['preset', 'out', 'resume']);

/**
 * The first progress line: the preset and every setting of `o` that differs from it, e.g.
 * `preset paper; differs: arch=resnet18, batch-size=64 (lr scaled to 0.0075)`.
 */
export function describeOptions(o: PretrainOptions): string {
  if (!PRETRAIN_PRESETS[o.preset])
    return `preset ${o.preset} (unknown to this version; the run's own settings are used)`;
  const preset = presetOptions(o.preset);
  const differs: string[] = [];
  for (const k of Object.keys(preset) as (keyof PretrainOptions)[]) {
    if (NOT_COMPARED.has(k) || o[k] === preset[k]) continue;
    const lr = +scaledLr(o.lr, o.batchSize).toPrecision(6);
    let item = `${flagName(k).slice(2)}=${o[k]}`;
    if (k === 'lr') item += ` per 256 images (${lr} at batch ${o.batchSize})`;
    else if (k === 'batchSize' && o.lr === preset.lr) item += ` (lr scaled to ${lr})`;
    differs.push(item);
  }
  return `preset ${o.preset}; ${differs.length ? `differs: ${differs.join(', ')}` : 'nothing differs'}`;
}

/** `densecl help`'s lines on the presets: what each sets. */
export function presetHelp(indent: string): string {
  const lines: string[] = [];
  for (const [name, p] of Object.entries(PRETRAIN_PRESETS)) {
    const o = p.options;
    lines.push(
      `${indent}${name}: ${p.about}`,
      `${indent}  ${o.method} ${o.arch} width ${o.width}${o.smallStem ? ' small stem' : ' 7x7 stem'}, ${o.imgSize} px, ${o.epochs} epochs, batch ${o.batchSize}, ` +
        `lr ${o.lr} per 256 images (cosine), momentum ${o.momentum}, wd ${o.weightDecay}, queue ${o.queueSize}, dim ${o.dim}, tau ${o.tau}, lambda ${o.lambda}, ema ${o.emaMomentum}, bn-groups ${o.bnGroups}`,
    );
  }
  return lines.join('\n');
}
