// Training-step benchmark (issue 4): a whole MoCo-v2 / DenseCL step of the public Trainer (the
// step densecl pretrain runs: zeroGrad, DenseCL.trainStep (query forward + backward, momentum
// update, key forward, losses, enqueue) and Sgd.step) with the paper preset's settings on
// ResNet-18 (full width, standard stem, 64x64 images, batch 32, BN statistics in 8 groups,
// queue 4096). Reports
// - DenseCL over MoCo-v2 on our engine, with a profile of one step of each (2 steps, averaged)
//   attributing the extra time to ops, and the dense head's FLOPs counted analytically;
// - the MoCo-v2 step beside the same step in PyTorch on this machine's CPU
//   (scripts/bench_torch_step.py, run as a child process) and in TensorFlow.js's WebGPU backend
//   on the same GPUDevice (the same network with the same initial weights, NHWC, gradients by
//   tf.variableGrads), and the per-kernel profile of our MoCo-v2 step: what limits the rate.
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import {
  aggregate,
  markdownTable as kernelTable,
  noGrad,
  profile,
  tensor,
  Rng,
  type KernelRecord,
  type Runtime,
} from '../engine/index.js';
import type { DenseCL, Method } from '../models/densecl.js';
import type { ResNet } from '../models/resnet.js';
import { Trainer, type StepStats, type TrainerOptions } from '../train/trainer.js';
import { presetOptions, trainerOptions } from '../train/presets.js';
import { scaledLr } from '../train/optim/schedule.js';
import type { BenchContext } from './lib/context.js';
import { measureCases, median, QUICK_TIMING, type Case, type Measurement, type TimingOptions } from './lib/timing.js';
import { writeReport } from './lib/report.js';
import type { Tfjs } from './lib/tfjs.js';
import type { Scalar, Tensor as TfTensor, Tensor4D, Variable } from '@tensorflow/tfjs-core';

const BATCH = 32;
const SIZE = 64;
/** The paper preset's step (dim 128, tau 0.2, EMA 0.999, lambda 0.5, SGD 0.9 / 1e-4, 8 BN groups, lr 0.03 per 256 images, constant) on a smaller problem. */
const STEP: TrainerOptions = {
  ...trainerOptions(presetOptions('paper')),
  arch: 'resnet18',
  imgSize: SIZE,
  batchSize: BATCH,
  queueSize: 4096,
};
/** The step's learning rate (the Trainer's lrAt(0)); the tfjs step uses the same. */
const LR = scaledLr(STEP.lr, STEP.batchSize);
const BN_EPS = 1e-5;
/** tfjs on a CPU Vulkan driver takes a minute or more a step: one warm-up, then this many. */
const TFJS_STEPS = 1;
/** Our steps take seconds: one warm-up, then the harness's calibration (2 steps) and samples. */
const OUR_SAMPLES = 3;
const TORCH_STEPS = 5;
const TORCH_TIMEOUT_MS = 300_000;
const PYTHON = process.env.BENCH_PYTHON ?? '/usr/bin/python3';

/** The commit and the state of the convolution code (being optimised): figures depend on it. */
function codeState(): string {
  const git = (args: string[]) => spawnSync('git', args, { encoding: 'utf8' }).stdout?.trim() ?? '';
  const head = git(['rev-parse', '--short', 'HEAD']) || 'unknown';
  const changed = git(['status', '--porcelain', '--', 'engine/ops/conv2d', 'shaders/conv2d'])
    .split('\n')
    .filter(Boolean);
  return changed.length
    ? `commit ${head} with uncommitted convolution files (${changed.map((l) => l.trim()).join(', ')})`
    : `commit ${head}`;
}

const load = (): string =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' / ');
const fmt = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : '-');

// ---------------------------------------------------------------------------------------------
// FLOPs of one step, counted from the architecture (multiply-adds x 2; convolutions, linear
// layers and the loss matmuls; BN, ReLU and pooling are left out).

interface ConvShape {
  inC: number;
  outC: number;
  k: number;
  stride: number;
  pad: number;
}

export interface StepFlops {
  backbone: number;
  globalHead: number;
  globalLoss: number;
  denseHead: number;
  denseLoss: number;
  correspondence: number;
  total: number;
  /** Side of the last feature map (S), so the dense head works on N * S^2 positions. */
  featureSide: number;
}

export function stepFlops(
  net: ResNet,
  method: Method,
  n = BATCH,
  size = SIZE,
  cfg: Pick<TrainerOptions, 'dim' | 'queueSize'> = STEP,
): StepFlops {
  const side = (h: number, c: { k: number; stride: number; pad: number }) =>
    Math.floor((h + 2 * c.pad - c.k) / c.stride) + 1;
  const conv = (c: ConvShape, h: number) => {
    const o = side(h, c);
    return { h: o, flops: 2 * n * c.outC * o * o * c.inC * c.k * c.k };
  };
  const stem = conv(net.stem, size);
  let fwd = stem.flops;
  let h = net.cfg.smallStem ? stem.h : side(stem.h, { k: 3, stride: 2, pad: 1 });
  for (const b of net.blocks) {
    let y = h;
    for (const c of b.convs) {
      const r = conv(c, y);
      fwd += r.flops;
      y = r.h;
    }
    if (b.downsample) fwd += conv(b.downsample, h).flops;
    h = y;
  }
  const C = net.outChannels;
  const d = cfg.dim;
  const K = cfg.queueSize;
  const S2 = h * h;
  // Query: forward, then input and weight gradients (2x forward; the images need no gradient,
  // so the stem has no input gradient). Key: forward only.
  const backbone = fwd + (2 * fwd - stem.flops) + fwd;
  const globalHead = 4 * 2 * n * (C * C + C * d);
  // Logits against the queue (N x K x d) and their gradient for q (the queue has none).
  const globalLoss = 2 * 2 * n * d * K;
  const dense = method === 'densecl';
  const denseHead = dense ? 4 * 2 * n * S2 * (C * C + C * d) : 0;
  const denseLoss = dense ? 2 * 2 * n * S2 * d * K : 0;
  const correspondence = dense ? 2 * n * S2 * S2 * C : 0;
  return {
    backbone,
    globalHead,
    globalLoss,
    denseHead,
    denseLoss,
    correspondence,
    total: backbone + globalHead + globalLoss + denseHead + denseLoss + correspondence,
    featureSide: h,
  };
}

// ---------------------------------------------------------------------------------------------
// Our engine.

function syntheticImages(seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: BATCH * 3 * SIZE * SIZE }, () => rng.normal());
}

/** A Trainer stepping on the same two batches of views every step. */
interface BenchStep {
  model: DenseCL;
  step(): Promise<StepStats>;
  dispose(): void;
}

function benchStep(rt: Runtime, method: Method, q: Float32Array, k: Float32Array): BenchStep {
  const trainer = new Trainer(rt, { ...STEP, method });
  return { model: trainer.model, step: () => trainer.trainStep(q, k), dispose: () => trainer.destroy() };
}

/** `reps` steps recorded back to back; resolves when the last one's figures are read. */
function stepCase(name: string, t: BenchStep): Case {
  return {
    name,
    async batch(reps) {
      const steps: Promise<StepStats>[] = [];
      for (let i = 0; i < reps; i++) steps.push(t.step());
      await Promise.all(steps);
    },
  };
}

/** One step (shader compilation) whose loss must be a plausible number. */
async function warmUp(t: BenchStep, method: Method): Promise<number> {
  const value = (await t.step()).loss;
  const ceiling = 2 * Math.log(STEP.queueSize + 1);
  if (!(Number.isFinite(value) && value > 0 && value < ceiling)) {
    throw new Error(
      `train_step: ${method} warm-up loss ${value} is not plausible (expected a finite value in (0, ${ceiling.toFixed(1)}))`,
    );
  }
  return value;
}

interface StepProfile {
  records: KernelRecord[];
  /** Sum of kernel times of the step (ms). */
  kernelMs: number;
  /** FLOPs of the step as the ops count them. */
  countedFlops: number;
  method: string;
}

async function profileStep(rt: Runtime, t: BenchStep): Promise<StepProfile> {
  // Every dispatch timed alone: the DenseCL/MoCo-v2 comparison matches individual dispatches.
  let stats: Promise<StepStats> | null = null;
  const r = await profile(rt, () => (stats = t.step()), { groupMs: 0 });
  await stats;
  return {
    records: r.records,
    kernelMs: r.records.reduce((a, x) => a + x.gpuMs, 0),
    countedFlops: r.records.reduce((a, x) => a + x.flops, 0),
    method: r.method,
  };
}

/**
 * The dispatches of a DenseCL step that a MoCo-v2 step does not make, and the reverse: a longest
 * common subsequence of the two dispatch lists, keyed by kernel, op, shapes and grid. The
 * backbone's dispatches pair up, so the dense head's own work is what stays unpaired, measured
 * without the noise of the (much larger) shared part. Parameter-sized kernels (SGD, EMA, zeroing)
 * grow with the dense head's weights and stay unpaired on both sides.
 */
function unpaired(
  moco: KernelRecord[],
  dense: KernelRecord[],
): { onlyMoco: KernelRecord[]; onlyDense: KernelRecord[]; pairedMocoMs: number; pairedDenseMs: number } {
  const key = (r: KernelRecord) => `${r.kernel}|${r.op}|${r.shapes}|${r.workgroups.join('x')}`;
  const a = moco.map(key);
  const b = dense.map(key);
  const w = b.length + 1;
  const len = new Uint32Array((a.length + 1) * w);
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      len[i * w + j] =
        a[i] === b[j] ? len[(i + 1) * w + j + 1] + 1 : Math.max(len[(i + 1) * w + j], len[i * w + j + 1]);
    }
  }
  const onlyMoco: KernelRecord[] = [];
  const onlyDense: KernelRecord[] = [];
  let pairedMocoMs = 0;
  let pairedDenseMs = 0;
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      pairedMocoMs += moco[i++].gpuMs;
      pairedDenseMs += dense[j++].gpuMs;
    } else if (len[(i + 1) * w + j] >= len[i * w + j + 1]) onlyMoco.push(moco[i++]);
    else onlyDense.push(dense[j++]);
  }
  onlyMoco.push(...moco.slice(i));
  onlyDense.push(...dense.slice(j));
  return { onlyMoco, onlyDense, pairedMocoMs, pairedDenseMs };
}

/** Unpaired dispatches per op: DenseCL's extra calls and time against MoCo-v2's, largest first. */
function extraByOp(
  onlyMoco: KernelRecord[],
  onlyDense: KernelRecord[],
): {
  op: string;
  denseCalls: number;
  denseMs: number;
  denseGflops: number;
  mocoCalls: number;
  mocoMs: number;
  extraMs: number;
}[] {
  const m = new Map(aggregate(onlyMoco, 'op').map((r) => [r.name, r]));
  const d = new Map(aggregate(onlyDense, 'op').map((r) => [r.name, r]));
  return [...new Set([...d.keys(), ...m.keys()])]
    .map((op) => {
      const x = d.get(op);
      const y = m.get(op);
      const denseMs = x?.totalMs ?? 0;
      const mocoMs = y?.totalMs ?? 0;
      return {
        op,
        denseCalls: x?.calls ?? 0,
        denseMs,
        denseGflops: x?.gflops ?? 0,
        mocoCalls: y?.calls ?? 0,
        mocoMs,
        extraMs: denseMs - mocoMs,
      };
    })
    .sort((p, q) => q.extraMs - p.extraMs);
}

// ---------------------------------------------------------------------------------------------
// PyTorch on the CPU.

interface TorchResult {
  torch: string;
  torchvision: string;
  threads: number;
  ms_per_step: number;
  ms_per_step_min: number;
  cpu_ms_per_step: number;
  images_per_s: number;
  steps: number;
  step_ms: number[];
  loss: number;
}

function runTorch(steps: number): { result: TorchResult; loadBefore: string; loadAfter: string } | { reason: string } {
  const script = join(process.cwd(), 'scripts', 'bench_torch_step.py');
  const args = [
    script,
    '--batch',
    String(BATCH),
    '--size',
    String(SIZE),
    '--threads',
    '2',
    '--groups',
    String(STEP.bnGroups),
    '--queue',
    String(STEP.queueSize),
    '--warmup',
    '1',
    '--steps',
    String(steps),
  ];
  const loadBefore = load();
  const r = spawnSync(PYTHON, args, { encoding: 'utf8', timeout: TORCH_TIMEOUT_MS });
  const loadAfter = load();
  if (r.error) return { reason: `could not run ${PYTHON}: ${r.error.message}` };
  if (r.status !== 0) {
    const err = (r.stderr ?? '').trim().split('\n').slice(-3).join(' ');
    return {
      reason: `${PYTHON} ${args.slice(0, 1).join(' ')} exited with ${r.status ?? r.signal}: ${err || 'no message'}`,
    };
  }
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return { result: JSON.parse(line) as TorchResult, loadBefore, loadAfter };
  } catch {
    return { reason: `bench_torch_step.py printed no JSON: ${line.slice(0, 200)}` };
  }
}

/** A Measurement from per-step wall times measured outside benny (PyTorch, tfjs). */
function stepMeasurement(
  workload: string,
  name: string,
  flops: number,
  stepMs: number[],
  cpuMsPerStep: number,
): Measurement {
  const middle = median(stepMs);
  const mean = stepMs.reduce((a, b) => a + b, 0) / stepMs.length;
  const sd = stepMs.length > 1 ? Math.sqrt(stepMs.reduce((a, b) => a + (b - mean) ** 2, 0) / (stepMs.length - 1)) : NaN;
  return {
    workload,
    name,
    msPerOp: middle,
    msPerOpMin: Math.min(...stepMs),
    gflops: flops / (middle * 1e6),
    gbps: 0,
    reps: 1,
    samples: stepMs.length,
    // 95% margin of the mean, normal approximation (benny uses Student's t).
    rmePercent: (100 * 1.96 * sd) / Math.sqrt(stepMs.length) / mean,
    cpuMsPerOp: cpuMsPerStep,
  };
}

// ---------------------------------------------------------------------------------------------
// TensorFlow.js: the same MoCo-v2 step with tfjs ops, NHWC, weights copied from our model.

/**
 * tfjs-core's Node bundle (its package "main") registers kernels' forward functions only: every
 * gradient lives in the ES-module build, registered by dist/register_all_gradients.js, which the
 * @tensorflow/tfjs union package imports. That file is bundled here by a relative path (the
 * package name is external to the bench bundle, and Node cannot load the ES build as is); the
 * registry is global, so its registrations serve the Node bundle's engine.
 */
async function ensureTfjsGradients(tf: Tfjs['tf']): Promise<string> {
  const before = probeGradient(tf);
  if (before === null) return 'tfjs-core had gradients registered already';
  await import('../node_modules/@tensorflow/tfjs-core/dist/register_all_gradients.js');
  const after = probeGradient(tf);
  if (after !== null)
    throw new Error(`train_step: tfjs gradients still missing after importing register_all_gradients: ${after}`);
  return `tfjs-core's Node bundle had no gradients ("${before}"); registered them from @tensorflow/tfjs-core/dist/register_all_gradients.js`;
}

/** null when tf.variableGrads works through Mean, else the error message. */
function probeGradient(tf: Tfjs['tf']): string | null {
  const v = tf.variable(tf.ones([2]), true, 'train_step_grad_probe');
  try {
    const { value, grads } = tf.variableGrads(() => tf.mean(v) as Scalar, [v]);
    value.dispose();
    Object.values(grads).forEach((g) => g.dispose());
    return null;
  } catch (e) {
    return (e as Error).message;
  } finally {
    v.dispose();
  }
}

/** OIHW -> HWIO (tfjs's filter layout). */
function toHwio(w: Float32Array, [O, C, KH, KW]: number[]): Float32Array {
  const out = new Float32Array(w.length);
  for (let o = 0; o < O; o++)
    for (let c = 0; c < C; c++)
      for (let i = 0; i < KH * KW; i++) out[(i * C + c) * O + o] = w[(o * C + c) * KH * KW + i];
  return out;
}

/** NCHW -> NHWC. */
function toNhwc(v: ArrayLike<number>, [N, C, H, W]: readonly number[]): Float32Array {
  const out = new Float32Array(v.length);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let i = 0; i < H * W; i++) out[(n * H * W + i) * C + c] = v[(n * C + c) * H * W + i];
  return out;
}

export class TfMoco {
  readonly q = new Map<string, Variable>();
  readonly k = new Map<string, Variable>();
  readonly velocity = new Map<string, Variable>();
  readonly qStats = new Map<string, Variable>();
  readonly kStats = new Map<string, Variable>();
  readonly queue: Variable;
  private ptr = 0;
  private readonly shuffle = new Rng(1);

  constructor(
    private readonly tf: Tfjs['tf'],
    private readonly net: ResNet,
    params: Map<string, { data: Float32Array; shape: number[] }>,
    queue: Float32Array,
  ) {
    for (const [name, { data, shape }] of params) {
      const isConv = shape.length === 4;
      const value = isConv ? toHwio(data, shape) : data;
      const tfShape = isConv ? [shape[2], shape[3], shape[1], shape[0]] : shape;
      this.q.set(name, tf.variable(tf.tensor(value, tfShape), true, `ts_q/${name}`));
      this.k.set(name, tf.variable(tf.tensor(value, tfShape), false, `ts_k/${name}`));
      this.velocity.set(name, tf.variable(tf.zeros(tfShape), false, `ts_v/${name}`));
    }
    for (const spec of net.bufferSpecs('backbone.')) {
      for (const [tag, stats] of [
        ['qs', this.qStats],
        ['ks', this.kStats],
      ] as const) {
        stats.set(spec.name, tf.variable(tf.fill(spec.shape, spec.value), false, `ts_${tag}/${spec.name}`));
      }
    }
    this.queue = tf.variable(tf.tensor(queue, [STEP.queueSize, STEP.dim]), false, 'ts_queue');
  }

  /**
   * Training-mode BN (batch statistics over N, H, W; running statistics updated). Over the whole
   * batch, not in groups: tfjs's FusedBatchNorm gradient reduces over the batch only when mean and
   * variance are 1-D, so grouped statistics would need transposes or unfused ops around it.
   */
  private bn(
    x: Tensor4D,
    p: Map<string, Variable>,
    stats: Map<string, Variable>,
    name: string,
    relu: boolean,
  ): Tensor4D {
    const { tf } = this;
    const [N, H, W] = x.shape;
    const count = N * H * W;
    const { mean, variance } = tf.moments(x, [0, 1, 2]);
    const y = tf.batchNorm(x, mean, variance, p.get(`${name}.bias`)!, p.get(`${name}.weight`)!, BN_EPS) as Tensor4D;
    const rm = stats.get(`${name}.running_mean`)!;
    const rv = stats.get(`${name}.running_var`)!;
    rm.assign(tf.add(tf.mul(rm, 0.9), tf.mul(mean, 0.1)));
    rv.assign(tf.add(tf.mul(rv, 0.9), tf.mul(variance, (0.1 * count) / (count - 1))));
    return relu ? tf.relu(y) : y;
  }

  backbone(p: Map<string, Variable>, stats: Map<string, Variable>, x: Tensor4D): Tensor4D {
    const { tf, net } = this;
    const convBn = (c: ConvShape & { name: string }, bn: string, input: Tensor4D, relu: boolean): Tensor4D =>
      this.bn(
        tf.conv2d(input, p.get(`backbone.${c.name}.weight`)! as Tensor4D, c.stride, c.pad),
        p,
        stats,
        `backbone.${bn}`,
        relu,
      );
    let h = convBn(net.stem, 'bn1', x, true);
    if (!net.cfg.smallStem) h = tf.maxPool(h, 3, 2, 1);
    for (const b of net.blocks) {
      let y = h;
      b.convs.forEach((c, i) => {
        y = convBn(c, `${b.prefix}.bn${i + 1}`, y, i < b.convs.length - 1);
      });
      const identity = b.downsample ? convBn(b.downsample, `${b.prefix}.downsample.1`, h, false) : h;
      h = tf.relu(tf.add(y, identity));
    }
    return h;
  }

  /** Backbone, global pool, MLP head, L2 normalisation: [N, dim]. */
  private encode(p: Map<string, Variable>, stats: Map<string, Variable>, x: Tensor4D): TfTensor {
    const { tf } = this;
    const pooled = tf.mean(this.backbone(p, stats, x), [1, 2]);
    const hidden = tf.relu(
      tf.add(tf.matMul(pooled, p.get('neck.mlp.0.weight')!, false, true), p.get('neck.mlp.0.bias')!),
    );
    const g = tf.add(tf.matMul(hidden, p.get('neck.mlp.2.weight')!, false, true), p.get('neck.mlp.2.bias')!);
    return tf.mul(g, tf.rsqrt(tf.maximum(tf.sum(tf.square(g), 1, true), 1e-24)));
  }

  /** One MoCo-v2 step with SGD; returns the loss. */
  step(xq: Tensor4D, xk: Tensor4D): Scalar {
    const { tf } = this;
    return tf.tidy(() => {
      const m = STEP.emaMomentum;
      for (const [name, kv] of this.k) kv.assign(tf.add(tf.mul(kv, m), tf.mul(this.q.get(name)!, 1 - m)));
      const N = xk.shape[0];
      const perm = this.shuffle.permutation(N);
      const inverse = new Array<number>(N);
      perm.forEach((p, i) => (inverse[p] = i));
      const k = tf.gather(
        this.encode(this.k, this.kStats, tf.gather(xk, tf.tensor1d(perm, 'int32'))),
        tf.tensor1d(inverse, 'int32'),
      );
      const qVars = [...this.q.values()];
      const { value, grads } = tf.variableGrads(() => {
        const q = this.encode(this.q, this.qStats, xq);
        const pos = tf.sum(tf.mul(q, k), 1, true);
        const logits = tf.div(tf.concat([pos, tf.matMul(q, this.queue, false, true)], 1), STEP.tau);
        // Cross-entropy with the positive at index 0.
        return tf.mean(tf.sub(tf.logSumExp(logits, 1), tf.squeeze(tf.div(pos, STEP.tau), [1]))) as Scalar;
      }, qVars);
      for (const [name, v] of this.q) {
        const vel = this.velocity.get(name)!;
        vel.assign(tf.add(tf.mul(vel, STEP.momentum), tf.add(grads[v.name], tf.mul(v, STEP.weightDecay))));
        v.assign(tf.sub(v, tf.mul(vel, LR)));
      }
      const rows = STEP.queueSize;
      const parts: TfTensor[] = [];
      if (this.ptr > 0) parts.push(tf.slice(this.queue, [0, 0], [this.ptr, STEP.dim]));
      parts.push(k);
      if (this.ptr + N < rows) parts.push(tf.slice(this.queue, [this.ptr + N, 0], [rows - this.ptr - N, STEP.dim]));
      this.queue.assign(tf.concat(parts, 0));
      this.ptr = (this.ptr + N) % rows;
      return value;
    });
  }

  dispose(): void {
    for (const map of [this.q, this.k, this.velocity, this.qStats, this.kStats])
      for (const v of map.values()) v.dispose();
    this.queue.dispose();
  }
}

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  return worst;
}

// ---------------------------------------------------------------------------------------------

export async function run(ctx: BenchContext): Promise<void> {
  const { rt } = ctx;
  const quick = ctx.timing === QUICK_TIMING;
  const say = (m: string) => console.log(`[train_step] ${m}`);
  const notes: string[] = [];
  const loads: Record<string, string> = { start: load() };
  const imagesQ = syntheticImages(11);
  const imagesK = syntheticImages(12);
  const xq = tensor(imagesQ, [BATCH, 3, SIZE, SIZE]);
  const moco = benchStep(rt, 'mocov2', imagesQ, imagesK);
  const dense = benchStep(rt, 'densecl', imagesQ, imagesK);
  const flopsMoco = stepFlops(moco.model.backbone, 'mocov2');
  const flopsDense = stepFlops(dense.model.backbone, 'densecl');
  const label = (m: string) => `${m} ResNet-18 step, ${BATCH}x3x${SIZE}x${SIZE}`;
  const mocoWork = { label: label('MoCo-v2'), flops: flopsMoco.total, bytes: 0 };
  const denseWork = { label: label('DenseCL'), flops: flopsDense.total, bytes: 0 };

  // tfjs first (it fails fast): it must compute the same network, so neither side can win by
  // being wrong: backbone features of the same images with the same initial weights.
  const tfjs = await ctx.tfjs();
  const { tf } = tfjs;
  const gradNote = await ensureTfjsGradients(tf);
  const params = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const spec of moco.model.query.paramSpecs)
    params.set(spec.name, { data: (await moco.model.query.p(spec.name).data()) as Float32Array, shape: spec.shape });
  const ourFeatures = await (async () => {
    const f = noGrad(() =>
      moco.model.backbone.forward(moco.model.query, xq, { training: true, bnGroups: 1, prefix: 'backbone.' }),
    );
    const v = toNhwc(await f.data(), f.shape);
    f.dispose();
    return v;
  })();
  const tfModel = new TfMoco(
    tf,
    moco.model.backbone,
    params,
    (await moco.model.queues.get('queue').data()) as Float32Array,
  );
  const txq = tf.tensor4d(toNhwc(imagesQ, [BATCH, 3, SIZE, SIZE]), [BATCH, SIZE, SIZE, 3]);
  const txk = tf.tensor4d(toNhwc(imagesK, [BATCH, 3, SIZE, SIZE]), [BATCH, SIZE, SIZE, 3]);
  const tfFeatures = await (async () => {
    const f = tf.tidy(() => tfModel.backbone(tfModel.q, tfModel.qStats, txq));
    const v = (await f.data()) as Float32Array;
    f.dispose();
    return v;
  })();
  const featureDiff = maxRelDiff(ourFeatures, tfFeatures);
  if (featureDiff > 1e-3)
    throw new Error(
      `train_step: ResNet-18 features of our engine and tfjs disagree (max relative difference ${featureDiff}); one of them computes a different network`,
    );
  say(`backbone features ours vs tfjs: max relative difference ${featureDiff.toExponential(1)}`);
  const tfStep = async (): Promise<{ ms: number; cpuMs: number; loss: number }> => {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const loss = tfModel.step(txq, txk);
    const value = (await loss.data())[0];
    loss.dispose();
    await tfjs.sync();
    const cpu = process.cpuUsage(c0);
    if (!Number.isFinite(value)) throw new Error(`train_step: tfjs loss is ${value}`);
    return { ms: performance.now() - t0, cpuMs: (cpu.user + cpu.system) / 1000, loss: value };
  };
  const tfWarm = await tfStep();
  say(`tfjs warm-up step (shader compilation included): ${tfWarm.ms.toFixed(0)} ms, loss ${tfWarm.loss.toFixed(4)}`);

  // Our engine: one warm-up step each, then the bench harness, then one profiled step each.
  const warm = { mocov2: await warmUp(moco, 'mocov2'), densecl: await warmUp(dense, 'densecl') };
  const timing: TimingOptions = {
    ...ctx.timing,
    targetBatchMs: 1,
    maxReps: 1,
    minSamples: quick ? 2 : OUR_SAMPLES,
    maxTime: 1e-3,
  };
  loads.ours = load();
  const [oursMoco] = await measureCases('train_step', mocoWork, [stepCase('ours', moco)], timing);
  const [oursDense] = await measureCases('train_step', denseWork, [stepCase('ours', dense)], timing);
  say(
    `ours: MoCo-v2 ${oursMoco.msPerOp.toFixed(0)} ms/step (CPU ${oursMoco.cpuMsPerOp.toFixed(0)} ms), DenseCL ${oursDense.msPerOp.toFixed(0)} ms/step (CPU ${oursDense.cpuMsPerOp.toFixed(0)} ms)`,
  );
  const profMoco = await profileStep(rt, moco);
  const profDense = await profileStep(rt, dense);
  loads.oursDone = load();
  moco.dispose();
  dense.dispose();
  xq.dispose();
  const measurements: Measurement[] = [oursMoco, oursDense];

  // PyTorch on the CPU.
  const torch = runTorch(quick ? 3 : TORCH_STEPS);
  if ('result' in torch) {
    measurements.push(
      stepMeasurement(mocoWork.label, 'pytorch', mocoWork.flops, torch.result.step_ms, torch.result.cpu_ms_per_step),
    );
    loads.pytorch = `${torch.loadBefore} -> ${torch.loadAfter}`;
    say(`pytorch: ${torch.result.ms_per_step.toFixed(0)} ms/step (CPU ${torch.result.cpu_ms_per_step.toFixed(0)} ms)`);
  } else {
    notes.push(`PyTorch: not measured (${torch.reason}).`);
    say(`pytorch not measured: ${torch.reason}`);
  }

  // tfjs's timed steps.
  loads.tfjs = load();
  const tfRuns: { ms: number; cpuMs: number; loss: number }[] = [];
  for (let s = 0; s < TFJS_STEPS; s++) tfRuns.push(await tfStep());
  loads.tfjsDone = load();
  const tfjsM = stepMeasurement(
    mocoWork.label,
    'tfjs',
    mocoWork.flops,
    tfRuns.map((r) => r.ms),
    tfRuns.reduce((a, r) => a + r.cpuMs, 0) / tfRuns.length,
  );
  measurements.push(tfjsM);
  say(`tfjs: ${tfjsM.msPerOp.toFixed(0)} ms/step (CPU ${tfjsM.cpuMsPerOp.toFixed(0)} ms)`);
  tfModel.dispose();
  txq.dispose();
  txk.dispose();

  // Rates and ratios.
  const rate = (m: Measurement) => (BATCH * 1000) / m.msPerOp;
  const torchM = measurements.find((m) => m.name === 'pytorch');
  const rows: [string, string, Measurement, number][] = [
    ['ours (WebGPU engine)', 'DenseCL', oursDense, flopsDense.total],
    ['ours (WebGPU engine)', 'MoCo-v2', oursMoco, flopsMoco.total],
  ];
  if (torchM) rows.push(['PyTorch (CPU, 2 threads)', 'MoCo-v2', torchM, flopsMoco.total]);
  rows.push(['TensorFlow.js WebGPU', 'MoCo-v2', tfjsM, flopsMoco.total]);
  const { onlyMoco, onlyDense, pairedMocoMs, pairedDenseMs } = unpaired(profMoco.records, profDense.records);
  const sumMs = (rs: KernelRecord[]) => rs.reduce((a, r) => a + r.gpuMs, 0);
  const extraMs = sumMs(onlyDense) - sumMs(onlyMoco);
  const ratios = {
    wall: oursDense.msPerOp / oursMoco.msPerOp,
    cpu: oursDense.cpuMsPerOp / oursMoco.cpuMsPerOp,
    kernel: profDense.kernelMs / profMoco.kernelMs,
    kernelUnpaired: (profMoco.kernelMs + extraMs) / profMoco.kernelMs,
  };
  const extraFlops = flopsDense.total - flopsMoco.total;
  const byOpExtra = extraByOp(onlyMoco, onlyDense);
  const convExtra = byOpExtra.filter((r) => r.op.startsWith('conv2d')).reduce((a, r) => a + r.extraMs, 0);
  const topKernels = aggregate(profMoco.records, 'kernel').slice(0, 20);
  const convRecords = profMoco.records.filter((r) => r.op.startsWith('conv2d'));
  const convMs = sumMs(convRecords);
  const convFlops = convRecords.reduce((a, r) => a + r.flops, 0);
  const sections = [
    {
      title: 'Training rate',
      markdown: [
        '| engine | method | ms/step (median) | ms/step (best) | images/s | CPU ms/step | GFLOP/step (analytic) | GFLOP/s |',
        '|---|---|---|---|---|---|---|---|',
        ...rows.map(
          ([e, m, x, f]) =>
            `| ${e} | ${m} | ${fmt(x.msPerOp, 0)} | ${fmt(x.msPerOpMin, 0)} | ${fmt(rate(x), 2)} | ${fmt(x.cpuMsPerOp, 0)} | ${fmt(f / 1e9, 2)} | ${fmt(x.gflops, 2)} |`,
        ),
        '',
        `- ours/PyTorch, MoCo-v2 step: ${torchM ? `${fmt(torchM.msPerOp / oursMoco.msPerOp, 3)}x by wall time, ${fmt(torchM.cpuMsPerOp / oursMoco.cpuMsPerOp, 3)}x by process CPU time (target: at least 0.5x)` : 'not measured'}`,
        `- ours/tfjs, MoCo-v2 step: ${fmt(tfjsM.msPerOp / oursMoco.msPerOp, 2)}x by wall time, ${fmt(tfjsM.cpuMsPerOp / oursMoco.cpuMsPerOp, 2)}x by process CPU time (target: at least 10x)`,
        `- DenseCL/MoCo-v2 step time on our engine: ${fmt(ratios.wall, 3)} by wall time (median), ${fmt(ratios.cpu, 3)} by process CPU time, ${fmt(ratios.kernel, 3)} by summed kernel time of one profiled step, ${fmt(ratios.kernelUnpaired, 3)} counting only the dispatches the two steps do not share (paper: under 1.01 on GPUs). The two methods are timed one after the other, so the wall-clock ratio carries the load's drift between them; the CPU-time and unpaired-dispatch figures are the steadier ones.`,
        `- Load average (1/5/15 min) at each stage: ${Object.entries(loads)
          .map(([k, v]) => `${k} ${v}`)
          .join('; ')}`,
      ].join('\n'),
    },
    {
      title: 'DenseCL over MoCo-v2: where the extra time goes',
      markdown: [
        `Analytic FLOPs per step (GFLOP; multiply-adds x 2 of convolutions, linear layers and loss matmuls). At ${SIZE}x${SIZE} the last feature map is ${flopsDense.featureSide}x${flopsDense.featureSide}, so the dense head runs on ${BATCH}x${flopsDense.featureSide ** 2} positions:`,
        '',
        '| part | MoCo-v2 | DenseCL |',
        '|---|---|---|',
        ...(['backbone', 'globalHead', 'globalLoss', 'denseHead', 'denseLoss', 'correspondence', 'total'] as const).map(
          (k) => `| ${k} | ${fmt(flopsMoco[k] / 1e9, 4)} | ${fmt(flopsDense[k] / 1e9, 4)} |`,
        ),
        '',
        `DenseCL's extra FLOPs: ${fmt(extraFlops / 1e9, 3)} GFLOP, ${fmt((100 * extraFlops) / flopsMoco.total, 2)}% of the MoCo-v2 step (dense head convs ${fmt((100 * flopsDense.denseHead) / flopsMoco.total, 2)}%, dense loss ${fmt((100 * flopsDense.denseLoss) / flopsMoco.total, 2)}%, correspondence ${fmt((100 * flopsDense.correspondence) / flopsMoco.total, 3)}%). ` +
          `The ops' own FLOP counts (profile): MoCo-v2 ${fmt(profMoco.countedFlops / 1e9, 2)} GFLOP, DenseCL ${fmt(profDense.countedFlops / 1e9, 2)} GFLOP per step.`,
        '',
        `One profiled step each (${profMoco.method}): MoCo-v2 ${fmt(profMoco.kernelMs, 0)} ms of kernels in ${profMoco.records.length} dispatches, DenseCL ${fmt(profDense.kernelMs, 0)} ms in ${profDense.records.length}. ` +
          `Aligning the two dispatch lists (longest common subsequence by kernel, op, shapes and grid) pairs ${profMoco.records.length - onlyMoco.length} dispatches: the shared work took ${fmt(pairedMocoMs, 0)} ms in the MoCo-v2 step and ${fmt(pairedDenseMs, 0)} ms in the DenseCL step (the difference is timing noise on the shared cores). ` +
          `DenseCL's own dispatches (${onlyDense.length}, against ${onlyMoco.length} unpaired in MoCo-v2) add ${fmt(extraMs, 1)} ms, ${fmt((100 * extraMs) / profMoco.kernelMs, 2)}% of the MoCo-v2 step's kernel time, for ${fmt((100 * extraFlops) / flopsMoco.total, 2)}% more FLOPs; the dense head's convolutions account for ${fmt(convExtra, 1)} ms of it. Per op:`,
        '',
        '| op | DenseCL-only calls | ms | GFLOP/s | MoCo-v2-only calls | ms | extra ms |',
        '|---|---|---|---|---|---|---|',
        ...byOpExtra.map(
          (r) =>
            `| \`${r.op}\` | ${r.denseCalls} | ${fmt(r.denseMs, 2)} | ${fmt(r.denseGflops, 2)} | ${r.mocoCalls} | ${fmt(r.mocoMs, 2)} | ${fmt(r.extraMs, 2)} |`,
        ),
      ].join('\n'),
    },
    {
      title: 'What limits our rate: profile of one MoCo-v2 step',
      markdown: [
        `Summed kernel time ${fmt(profMoco.kernelMs, 0)} ms against ${fmt(oursMoco.msPerOp, 0)} ms wall per step (median, unprofiled), ${profMoco.records.length} dispatches. ` +
          `Convolution ops (forward and backward) take ${fmt((100 * convMs) / profMoco.kernelMs, 1)}% of the kernel time at ${fmt(convFlops / (convMs * 1e6), 2)} GFLOP/s on average (bench/results/matmul.md: our matmul reaches about 12-14 GFLOP/s on this adapter).`,
        '',
        '### Per op',
        '',
        kernelTable(aggregate(profMoco.records, 'op').slice(0, 15)),
        '',
        '### Per kernel (top 20)',
        '',
        kernelTable(topKernels),
        '',
        '### What the top 8 kernels ran on (per call: op, shapes, time)',
        '',
        '| kernel | GFLOP/s | calls |',
        '|---|---|---|',
        ...topKernels.slice(0, 8).map((k) => {
          const calls = profMoco.records
            .filter((r) => r.kernel === k.name)
            .map((r) => `${r.op}: ${r.shapes} (${fmt(r.gpuMs, 0)} ms)`);
          return `| \`${k.name}\` | ${fmt(k.gflops, 2)} | ${calls.join('<br>')} |`;
        }),
      ].join('\n'),
    },
  ];

  notes.push(
    `Step: Trainer.trainStep (train/trainer.ts, the step densecl pretrain runs): zeroGrad + DenseCL.trainStep (query forward+backward, momentum update, key forward on a permuted batch, losses, enqueue) + Sgd.step (lr ${LR}, momentum ${STEP.momentum}, weight decay ${STEP.weightDecay}); ResNet-18 width 1, standard stem, batch ${BATCH}, ${SIZE}x${SIZE}, BN statistics in ${STEP.bnGroups} groups, queue ${STEP.queueSize}, the same synthetic images every step. Warm-up losses (ours): MoCo-v2 ${warm.mocov2.toFixed(4)}, DenseCL ${warm.densecl.toFixed(4)}.`,
    'GFLOP/s use the analytic FLOPs of the step (convolutions, linear layers and loss matmuls; see below), the same count for every engine; GB/s is not meaningful for a whole step (0).',
    'result' in torch
      ? `pytorch: scripts/bench_torch_step.py (torch ${torch.result.torch}, torchvision ${torch.result.torchvision}, ${torch.result.threads} threads): torchvision resnet18 with the same MLP head, BN statistics in ${STEP.bnGroups} groups (the group folded into the channel axis), the same step; ${torch.result.steps} timed steps after one warm-up: ${torch.result.step_ms.map((t) => t.toFixed(0)).join(', ')} ms; loss ${torch.result.loss.toFixed(4)}. This torch build uses oneDNN for convolutions and a generic (reference) BLAS for matmuls (torch.__config__.show(): BLAS_INFO=generic).`
      : 'pytorch: not measured.',
    `tfjs: @tensorflow/tfjs-backend-webgpu 4.22 on ${tfjs.sharedDevice ? 'the same GPUDevice' : 'its own device on the same adapter (NOT shared)'}; the whole MoCo-v2 step is expressed: ResNet-18 NHWC with conv2d, moments + batchNorm, relu, maxPool, add, mean, matMul; gradients by tf.variableGrads; EMA, SGD with momentum and weight decay, BN running statistics and the enqueue as variable assigns. One difference: BN statistics over the whole batch, not in groups (tfjs's FusedBatchNorm gradient only reduces when mean and variance are 1-D), the same work. ${gradNote}. ` +
      `Initial weights copied from our model: backbone features of the same images agree to ${featureDiff.toExponential(1)} (max relative difference). Warm-up step ${fmt(tfWarm.ms / 1000, 1)} s (shader compilation included), then ${TFJS_STEPS} timed step(s): ${tfRuns.map((r) => r.ms.toFixed(0)).join(', ')} ms; loss ${tfRuns[tfRuns.length - 1].loss.toFixed(4)}.`,
    `Code measured: ${codeState()}.`,
    'ours: each sample is one step recorded and awaited (GPU work finished); ms/op = median of the samples. pytorch and tfjs: wall time around each step (tfjs: until its GPU work has finished).',
    "lavapipe (the CPU Vulkan driver, running in this process) and PyTorch share 2 cores with other engineers' jobs: wall times depend on the load (recorded per stage in the section Training rate); process CPU time is steadier.",
  );

  const out = writeReport({
    suite: 'train_step',
    adapter: ctx.adapter,
    ours: 'ours',
    measurements,
    notes,
    sections,
    extra: {
      code: codeState(),
      batch: BATCH,
      size: SIZE,
      config: STEP,
      lr: LR,
      loads,
      flops: { mocov2: flopsMoco, densecl: flopsDense },
      denseclOverMocov2: ratios,
      profile: {
        method: profMoco.method,
        mocov2: {
          kernelMs: profMoco.kernelMs,
          dispatches: profMoco.records.length,
          countedFlops: profMoco.countedFlops,
          byOp: aggregate(profMoco.records, 'op'),
          byKernel: aggregate(profMoco.records, 'kernel'),
        },
        densecl: {
          kernelMs: profDense.kernelMs,
          dispatches: profDense.records.length,
          countedFlops: profDense.countedFlops,
          byOp: aggregate(profDense.records, 'op'),
        },
        unpaired: { pairedMocoMs, pairedDenseMs, extraMs, byOp: byOpExtra },
      },
      pytorch: 'result' in torch ? torch.result : { missing: torch.reason },
      tfjs: { warmupMs: tfWarm.ms, steps: tfRuns, featureMaxRelDiff: featureDiff, gradients: gradNote },
    },
  });
  console.log(out.table);
  for (const s of sections) console.log(`\n## ${s.title}\n\n${s.markdown}`);
  console.log(`[bench] wrote ${out.json} and ${out.markdown}`);
}
