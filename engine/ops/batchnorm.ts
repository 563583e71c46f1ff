// BatchNorm2d over [N, C, H, W], with an optional fused residual add and ReLU (a ResNet block's
// tail) and statistics per group of samples (shuffle-BN on one device). Training, three paths:
// - 'three-pass' (the profile's 'two-pass' choice: CPU drivers): chunk statistics, a
//   per-channel merge that also updates the running buffers in place, the affine map; backward
//   chunk sums, a per-channel merge, the input gradient.
// - 'channel' (profile 'one-pass', GPUs, channels of at most ONE_PASS_MAX values): the
//   statistics and the merge in one kernel with a workgroup per channel, forward and backward.
// - 'merge' (profile 'one-pass', larger channels): the chunk passes as in three-pass, and the
//   merge done by invocation 0 of every workgroup of the following elementwise pass for its
//   own (group, channel) (a sequential read of its per * chunks partials, see TARGET_PARTIALS),
//   designated workgroups writing the saved statistics, the running buffers, or the weight and
//   bias gradients.
// So two dispatches each way on GPUs, three on CPU drivers. The backward takes a gradient of two
// terms unsummed and adds the weight and bias gradients straight into the parameters' .grad, so
// neither costs a dispatch of its own. Every reduction has a fixed order: no float atomics, so
// results are bitwise repeatable, and 'merge' computes the statistics with the same function
// and order as 'three-pass'. When H*W divides by 4 the kernels read vec4.
import statsSrc from '../../shaders/batchnorm_stats.wgsl';
import reduceSrc from '../../shaders/batchnorm_reduce.wgsl';
import evalStatsSrc from '../../shaders/batchnorm_eval_stats.wgsl';
import applySrc from '../../shaders/batchnorm_apply.wgsl';
import gradStatsSrc from '../../shaders/batchnorm_grad_stats.wgsl';
import gradReduceSrc from '../../shaders/batchnorm_grad_reduce.wgsl';
import gradInputSrc from '../../shaders/batchnorm_grad_input.wgsl';
import applyMergeSrc from '../../shaders/batchnorm_apply_merge.wgsl';
import gradInputMergeSrc from '../../shaders/batchnorm_grad_input_merge.wgsl';
import statsChannelSrc from '../../shaders/batchnorm_stats_channel.wgsl';
import gradChannelSrc from '../../shaders/batchnorm_grad_channel.wgsl';
import { type Tensor, formatShape } from '../tensor.js';
import type { Kernel } from '../kernel.js';
import type { Runtime } from '../runtime.js';
import { record, leafGradTarget } from '../autograd.js';
import { empty, requireF32, sameRuntime } from './alloc.js';

export interface BatchNormOptions {
  /** Batch statistics (and a running-statistics update) when true; running statistics when false. */
  training: boolean;
  /** Weight of the new batch statistics in the running update (default 0.1). */
  momentum?: number;
  /** Added to the variance before the square root (default 1e-5). */
  eps?: number;
  /**
   * Training only: statistics per group of N / groups contiguous samples (default 1), which
   * emulates shuffle-BN over `groups` devices. N must be divisible by groups. The running
   * statistics move towards the mean over groups of each group's mean and unbiased variance:
   * what averaging the buffers of `groups` devices gives. Ignored in eval mode.
   */
  groups?: number;
  /** Fuse a following ReLU (forward and backward). */
  relu?: boolean;
  /** Added to the normalised output before the ReLU (a ResNet shortcut); x's shape. */
  residual?: Tensor;
}

/**
 * Enough chunks in pass 1 to keep every core busy, and not so many that their merge dominates.
 * A (group, channel) has per * chunks of them, about max(N / G, TARGET_PARTIALS / (G * C)),
 * and every workgroup of the 'merge' path reads its group's: 16 for each large channel of
 * ResNet-50 at width 1, batch 32 in 2 groups; 32-256 at width 1/16.
 */
const TARGET_PARTIALS = 2048;
/** Chunks shorter than this cost more in pass 2 than they save in pass 1. */
const MIN_CHUNK = 16;
/** Elements of type T per invocation in the elementwise passes (16 vec4 ran as fast as a plain
 * vec4 map on lavapipe; 4 paid the index arithmetic too often). */
const ITEMS = 16;
/**
 * Under the 'one-pass' kernel choice, channels of at most this many values (N * H * W) take the
 * 'channel' kernels (one workgroup per channel, so each reads at most 64 KiB: about what the
 * dispatch it saves costs on a GPU; not measured there); the profile's bnOnePassMax replaces
 * it. Larger channels take the 'merge' path, which spreads a channel over many workgroups.
 */
export const ONE_PASS_MAX = 16384;
/** Invocations per workgroup of the 'channel' kernels (their WG); invocation 0 merges their results in order. */
const ONE_PASS_WG = 64;
/** Storage buffers the 'merge' path's input-gradient kernel binds; a device allowing fewer takes three passes. */
const MERGE_STORAGE_BUFFERS = 11;

type Path = 'three-pass' | 'channel' | 'merge';

interface Plan {
  N: number;
  C: number;
  per: number;
  G: number;
  lanes: number;
  /** H*W in units of T. */
  hwT: number;
  chunk: number;
  chunks: number;
  path: Path;
  /** The 'channel' kernels' cut of a plane (enough chunks per group for the workgroup). */
  channelCut: { chunk: number; chunks: number };
  blocks: number;
  defines: { T: string; HSUM: string; LANES: number };
  /** The Params of the blocked elementwise passes (lib/bn_blocks.wgsl), whose merging forms read all of it. */
  blockParams: Record<string, number>;
  shapes: string;
}

function pathFor(rt: Runtime, values: number): Path {
  const profile = rt.profile;
  if (profile.kernels.batchnorm !== 'one-pass') return 'three-pass';
  if (values <= (profile.kernels.bnOnePassMax ?? ONE_PASS_MAX)) return 'channel';
  return profile.limits.storageBuffersPerStage >= MERGE_STORAGE_BUFFERS ? 'merge' : 'three-pass';
}

function makePlan(x: Tensor, G: number, opts: { momentum: number; eps: number; train: boolean }): Plan {
  const [N, C, H, W] = x.shape;
  const lanes = (H * W) % 4 === 0 ? 4 : 1;
  const hwT = (H * W) / lanes;
  const want = Math.min(hwT, Math.max(MIN_CHUNK, Math.ceil((N * C * hwT) / TARGET_PARTIALS)));
  const chunks = Math.ceil(hwT / want);
  const chunk = Math.ceil(hwT / chunks);
  const per = N / G;
  const oneChunks = Math.min(Math.ceil(hwT / MIN_CHUNK), Math.ceil(ONE_PASS_WG / per));
  const oneChunk = Math.ceil(hwT / oneChunks);
  const blocks = Math.ceil(hwT / ITEMS);
  return {
    N,
    C,
    G,
    per,
    lanes,
    hwT,
    chunk,
    chunks,
    path: pathFor(x.rt, N * H * W),
    channelCut: { chunk: oneChunk, chunks: Math.ceil(hwT / oneChunk) },
    blocks,
    defines:
      lanes === 4 ? { T: 'vec4<f32>', HSUM: 'v.x + v.y + v.z + v.w', LANES: 4 } : { T: 'f32', HSUM: 'v', LANES: 1 },
    blockParams: {
      C,
      per,
      hw: hwT,
      blocks,
      total: N * C * blocks,
      G,
      chunks,
      chunk,
      momentum: opts.momentum,
      eps: opts.eps,
      count: per * hwT * lanes,
      train: opts.train ? 1 : 0,
    },
    shapes: formatShape(x.shape) + (G > 1 ? ` groups=${G}` : ''),
  };
}

/**
 * The grid of an elementwise pass (one invocation per block of lib/bn_blocks.wgsl; a merging
 * pass has workgroup (slice, channel, group), each slice WG blocks of the (group, channel)), and
 * how many floats of chunk partials its workgroups read (each its group's, in a merging pass).
 */
function elementwiseGrid(
  rt: Runtime,
  p: Plan,
  k: Kernel,
  merge: boolean,
): { workgroups: [number, number, number]; partials: number } {
  const wg = k.iface.workgroupSize[0];
  if (!merge) return { workgroups: rt.grid1d(p.blockParams.total, wg), partials: 0 };
  const slices = Math.ceil((p.per * p.blocks) / wg);
  return { workgroups: [slices, p.C, p.G], partials: 2 * p.G * p.C * p.per * p.chunks * slices };
}

function check(
  x: Tensor,
  weight: Tensor,
  bias: Tensor,
  runningMean: Tensor,
  runningVar: Tensor,
  opts: BatchNormOptions,
): number {
  const op = 'batchNorm2d';
  const extra = opts.residual ? [opts.residual] : [];
  requireF32(op, x, weight, bias, runningMean, runningVar, ...extra);
  sameRuntime(op, x, weight, bias, runningMean, runningVar, ...extra);
  if (x.rank !== 4) throw new Error(`${op}: expects an input [N, C, H, W], got ${x.describe()}`);
  const res = opts.residual;
  if (res && (res.rank !== 4 || res.shape.some((d, i) => d !== x.shape[i]))) {
    throw new Error(
      `${op}: residual ${res.describe()} does not match input ${x.describe()}; the shortcut must have the input's shape`,
    );
  }
  const [N, C, H, W] = x.shape;
  const named: [string, Tensor][] = [
    ['weight', weight],
    ['bias', bias],
    ['runningMean', runningMean],
    ['runningVar', runningVar],
  ];
  for (const [name, t] of named) {
    if (t.rank !== 1 || t.shape[0] !== C) {
      throw new Error(
        `${op}: ${name} ${t.describe()} does not match the ${C} channels of input ${x.describe()}; it must have shape [${C}]`,
      );
    }
  }
  const G = opts.groups ?? 1;
  if (!Number.isInteger(G) || G < 1) throw new Error(`${op}: groups must be a positive integer, got ${G}`);
  if (opts.training) {
    if (N % G !== 0) {
      throw new Error(
        `${op}: the batch of input ${x.describe()} (N = ${N}) is not divisible by groups = ${G}; use a batch that is a multiple of ${G}`,
      );
    }
    if ((N / G) * H * W < 2) {
      throw new Error(
        `${op}: training needs more than one value per channel and group, input ${x.describe()} with groups = ${G} has ${(N / G) * H * W}`,
      );
    }
    return G;
  }
  return 1;
}

/**
 * y = (x - mean) / sqrt(var + eps) * weight + bias per channel, then ReLU when `relu`.
 * Training uses the biased batch variance to normalise and moves runningMean / runningVar
 * (updated in place on the GPU, no readback) towards the batch mean and UNBIASED variance:
 * running = (1 - momentum) * running + momentum * batch. Eval uses the running statistics.
 * Gradients flow to x, weight and bias; the running buffers get none.
 */
export function batchNorm2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor,
  runningMean: Tensor,
  runningVar: Tensor,
  opts: BatchNormOptions,
): Tensor {
  const op = 'batchNorm2d';
  const G = check(x, weight, bias, runningMean, runningVar, opts);
  const rt = x.rt;
  const eps = opts.eps ?? 1e-5;
  const momentum = opts.momentum ?? 0.1;
  const relu = opts.relu ?? false;
  const res = opts.residual ?? null;
  const train = opts.training;
  const p = makePlan(x, G, { momentum, eps, train });
  const { N, C } = p;
  const n = x.size;
  const stats = empty(rt, [G * C * 4], 'f32', op);
  const y = empty(rt, x.shape, 'f32', op);
  const elementwise = { x, res, y, relu };
  if (train && p.path === 'channel') {
    const k1 = rt.kernel('batchnorm_stats_channel', statsChannelSrc, p.defines);
    rt.dispatch(k1, {
      params: { C, G, per: p.per, hw: p.hwT, chunk: p.channelCut.chunk, chunks: p.channelCut.chunks, momentum, eps },
      buffers: [
        x.buffer(op),
        weight.buffer(op),
        bias.buffer(op),
        runningMean.buffer(op),
        runningVar.buffer(op),
        stats.buffer(op),
      ],
      workgroups: [C, 1, 1],
      op,
      flops: 4 * n,
      bytes: 4 * (n + 6 * C + 4 * G * C),
      shapes: p.shapes,
    });
    apply(elementwise, stats, p);
  } else if (train) {
    const part = empty(rt, [N * C * p.chunks * 2], 'f32', op);
    const ks = rt.kernel('batchnorm_stats', statsSrc, p.defines);
    rt.dispatch(ks, {
      params: { planes: N * C, hw: p.hwT, chunk: p.chunk, chunks: p.chunks },
      buffers: [x.buffer(op), part.buffer(op)],
      workgroups: rt.grid1d(N * C * p.chunks, ks.iface.workgroupSize[0]),
      op,
      flops: 4 * n,
      bytes: 4 * n + part.size * 4,
      shapes: p.shapes,
    });
    if (p.path === 'merge') {
      apply(elementwise, stats, p, { part, weight, bias, runningMean, runningVar });
    } else {
      const kr = rt.kernel('batchnorm_reduce', reduceSrc, { LANES: p.lanes });
      rt.dispatch(kr, {
        params: { C, G, per: p.per, chunks: p.chunks, hw: p.hwT, chunk: p.chunk, momentum, eps },
        buffers: [part, weight, bias, runningMean, runningVar, stats].map((t) => t.buffer(op)),
        workgroups: [Math.ceil(C / kr.iface.workgroupSize[0]), 1, 1],
        op,
        flops: 8 * part.size,
        bytes: 4 * (part.size + 6 * C + 4 * G * C),
        shapes: p.shapes,
      });
      apply(elementwise, stats, p);
    }
    part.dispose();
  } else {
    const ke = rt.kernel('batchnorm_eval_stats', evalStatsSrc);
    rt.dispatch(ke, {
      params: { C, eps },
      buffers: [weight.buffer(op), bias.buffer(op), runningMean.buffer(op), runningVar.buffer(op), stats.buffer(op)],
      workgroups: [Math.ceil(C / ke.iface.workgroupSize[0]), 1, 1],
      op,
      flops: 4 * C,
      bytes: 4 * 8 * C,
      shapes: p.shapes,
    });
    apply(elementwise, stats, p);
  }

  const inputs = res ? [x, weight, bias, res] : [x, weight, bias];
  record(
    y,
    op,
    inputs,
    (dy, more) => batchNormBackward(dy, more[0] ?? null, x, y, weight, bias, res, stats, p, relu),
    2,
  );
  if (!y.node) stats.dispose();
  return y;
}

/**
 * y = x * scale + shift (+ res, then ReLU) with the statistics in `stats`, or on the 'merge'
 * path with those that each workgroup merges from `merge.part` for its channel (and one per
 * (group, channel) saves in `stats`, one per channel moving the running buffers).
 */
function apply(
  t: { x: Tensor; res: Tensor | null; y: Tensor; relu: boolean },
  stats: Tensor,
  p: Plan,
  merge?: { part: Tensor; weight: Tensor; bias: Tensor; runningMean: Tensor; runningVar: Tensor },
): void {
  const op = 'batchNorm2d';
  const rt = t.x.rt;
  const n = t.x.size;
  const defines = { T: p.defines.T, ITEMS, RELU: t.relu, RESIDUAL: t.res !== null };
  const k = merge
    ? rt.kernel('batchnorm_apply_merge', applyMergeSrc, { ...defines, LANES: p.lanes })
    : rt.kernel('batchnorm_apply', applySrc, defines);
  // Without a residual, x stands in for it (unread).
  const buffers = [t.x, merge ? merge.part : stats, t.res ?? t.x, t.y];
  if (merge) buffers.push(merge.weight, merge.bias, merge.runningMean, merge.runningVar, stats);
  const { workgroups, partials } = elementwiseGrid(rt, p, k, merge !== undefined);
  rt.dispatch(k, {
    params: p.blockParams,
    buffers: buffers.map((b) => b.buffer(op)),
    workgroups,
    op,
    flops: (t.relu ? 3 : 2) * n + (t.res ? n : 0) + 4 * partials,
    bytes: (t.res ? 12 : 8) * n + 4 * partials,
    shapes: p.shapes,
  });
}

/** What the backward kernels read and write. */
interface Backward {
  dy: Tensor;
  /** dy2, or dy standing in for it (unread) when the gradient has one term. */
  second: Tensor;
  twoTerms: boolean;
  x: Tensor;
  /** The forward output for the ReLU mask, or x standing in for it (unread) without a ReLU. */
  masked: Tensor;
  weight: Tensor;
  stats: Tensor;
  dweight: Tensor;
  dbias: Tensor;
  accumulate: boolean;
  relu: boolean;
  p: Plan;
}

/**
 * The gradient dy (+ dy2: a second term, when y was used twice) flows through the ReLU mask to
 * x, to the residual (the masked gradient itself) and to weight and bias, which are added to
 * their .grad in the kernel when they are accumulating leaves (and returned null).
 */
function batchNormBackward(
  dy: Tensor,
  dy2: Tensor | null,
  x: Tensor,
  y: Tensor,
  weight: Tensor,
  bias: Tensor,
  res: Tensor | null,
  stats: Tensor,
  p: Plan,
  relu: boolean,
): (Tensor | null)[] {
  const op = 'batchNorm2d.backward';
  const rt = x.rt;
  const C = p.C;
  const wTarget = leafGradTarget(weight);
  const bTarget = leafGradTarget(bias);
  const accumulate = wTarget !== null && bTarget !== null;
  const b: Backward = {
    dy,
    second: dy2 ?? dy,
    twoTerms: dy2 !== null,
    x,
    masked: relu ? y : x,
    weight,
    stats,
    dweight: accumulate ? wTarget : empty(rt, [C], 'f32', op),
    dbias: accumulate ? bTarget : empty(rt, [C], 'f32', op),
    accumulate,
    relu,
    p,
  };
  const wantRes = res?.requiresGrad ?? false;
  const wantDx = x.requiresGrad || wantRes;
  const paramGrads = accumulate ? [null, null] : [b.dweight, b.dbias];
  // Without a residual the unwritten dres binding gets a one-vec4 stand-in (writable bindings
  // must not alias dx).
  const outputs = () => ({ dx: empty(rt, x.shape, 'f32', op), dres: empty(rt, wantRes ? x.shape : [4], 'f32', op) });
  let out: { dx: Tensor; dres: Tensor } | null = null;
  if (p.path === 'channel') {
    const coef = gradChannel(b);
    if (wantDx) gradInput(b, { coef }, (out = outputs()), wantRes);
    coef.dispose();
  } else {
    const part = gradPartials(b);
    if (p.path === 'merge' && wantDx) {
      gradInput(b, { part }, (out = outputs()), wantRes);
    } else {
      const coef = gradReduce(b, part);
      if (wantDx) gradInput(b, { coef }, (out = outputs()), wantRes);
      coef.dispose();
    }
    part.dispose();
  }
  const grads = [out && x.requiresGrad ? out.dx : null, ...paramGrads];
  return res ? [...grads, out && wantRes ? out.dres : null] : grads;
}

/** What reading the gradient sums costs: dz (of one or two terms, masked with a ReLU) and x. */
function sumsCost(b: Backward): { flops: number; bytes: number } {
  const n = b.x.size;
  return {
    flops: (b.relu ? 5 : 4) * n + (b.twoTerms ? n : 0),
    bytes: 4 * ((b.relu ? 2 : 1) + (b.twoTerms ? 2 : 1)) * n,
  };
}

/** The 'channel' path's backward sums: a workgroup per channel writes coef (returned), dweight and dbias. */
function gradChannel(b: Backward): Tensor {
  const op = 'batchNorm2d.backward';
  const { p, x } = b;
  const rt = x.rt;
  const coef = empty(rt, [p.G * p.C * 4], 'f32', op);
  const k = rt.kernel('batchnorm_grad_channel', gradChannelSrc, {
    ...p.defines,
    RELU: b.relu,
    DY2: b.twoTerms,
    ACCUMULATE: b.accumulate,
  });
  const { C, G, per, hw, count, train } = p.blockParams;
  rt.dispatch(k, {
    params: { C, G, per, hw, chunk: p.channelCut.chunk, chunks: p.channelCut.chunks, count, train },
    buffers: [b.dy, x, b.masked, b.second, b.weight, b.stats, coef, b.dweight, b.dbias].map((t) => t.buffer(op)),
    workgroups: [C, 1, 1],
    op,
    ...sumsCost(b),
    shapes: p.shapes,
  });
  return coef;
}

/** The backward's chunk partials (sum dz, sum dz * (x - mean)), returned. */
function gradPartials(b: Backward): Tensor {
  const op = 'batchNorm2d.backward';
  const { p, x } = b;
  const rt = x.rt;
  const part = empty(rt, [p.N * p.C * p.chunks * 2], 'f32', op);
  const k = rt.kernel('batchnorm_grad_stats', gradStatsSrc, { ...p.defines, RELU: b.relu, DY2: b.twoTerms });
  rt.dispatch(k, {
    params: { C: p.C, per: p.per, hw: p.hwT, chunk: p.chunk, chunks: p.chunks, planes: p.N * p.C },
    buffers: [b.dy, x, b.masked, b.stats, b.second, part].map((t) => t.buffer(op)),
    workgroups: rt.grid1d(p.N * p.C * p.chunks, k.iface.workgroupSize[0]),
    op,
    flops: sumsCost(b).flops,
    bytes: sumsCost(b).bytes + part.size * 4,
    shapes: p.shapes,
  });
  return part;
}

/** The per-channel merge of the partials into coef (returned), dweight and dbias. */
function gradReduce(b: Backward, part: Tensor): Tensor {
  const op = 'batchNorm2d.backward';
  const p = b.p;
  const rt = b.x.rt;
  const coef = empty(rt, [p.G * p.C * 4], 'f32', op);
  const k = rt.kernel('batchnorm_grad_reduce', gradReduceSrc, { ACCUMULATE: b.accumulate });
  const { C, G, per, chunks, count, train } = p.blockParams;
  rt.dispatch(k, {
    params: { C, G, per, chunks, count, train },
    buffers: [
      part.buffer(op),
      b.weight.buffer(op),
      b.stats.buffer(op),
      coef.buffer(op),
      b.dweight.buffer(op),
      b.dbias.buffer(op),
    ],
    workgroups: [Math.ceil(C / k.iface.workgroupSize[0]), 1, 1],
    op,
    flops: 2 * part.size,
    bytes: 4 * (part.size + 3 * C + 8 * G * C),
    shapes: p.shapes,
  });
  return coef;
}

/**
 * dx (and dres): from the coefficients in `from.coef`, or on the 'merge' path from the chunk
 * partials in `from.part`, each workgroup merging its channel's (and one per channel writing
 * dweight and dbias).
 */
function gradInput(
  b: Backward,
  from: { coef: Tensor } | { part: Tensor },
  out: { dx: Tensor; dres: Tensor },
  wantRes: boolean,
): void {
  const op = 'batchNorm2d.backward';
  const { p, x } = b;
  const rt = x.rt;
  const n = x.size;
  const terms = b.twoTerms ? 2 : 1;
  const defines = { T: p.defines.T, ITEMS, RELU: b.relu, DY2: b.twoTerms, RESIDUAL: wantRes };
  const merge = 'part' in from;
  const k = merge
    ? rt.kernel('batchnorm_grad_input_merge', gradInputMergeSrc, { ...defines, ACCUMULATE: b.accumulate })
    : rt.kernel('batchnorm_grad_input', gradInputSrc, defines);
  const buffers = [b.dy, x, b.masked, merge ? from.part : from.coef, out.dx, b.second, out.dres];
  if (merge) buffers.push(b.weight, b.stats, b.dweight, b.dbias);
  const { workgroups, partials } = elementwiseGrid(rt, p, k, merge);
  rt.dispatch(k, {
    params: p.blockParams,
    buffers: buffers.map((t) => t.buffer(op)),
    workgroups,
    op,
    flops: (b.relu ? 6 : 5) * n + (terms - 1) * n + partials,
    bytes: 4 * ((b.relu ? 3 : 2) + terms + (wantRes ? 1 : 0)) * n + 4 * partials,
    shapes: p.shapes,
  });
}
