// BatchNorm2d over [N, C, H, W], with an optional fused residual add and ReLU (a ResNet block's
// tail) and statistics per group of samples (shuffle-BN on one device). Training: three kernels
// forward (chunk statistics, a per-channel merge that also updates the running buffers in
// place, the affine map) and three backward (chunk sums, per-channel merge, input gradient).
// Where the device profile says 'one-pass' (GPUs), channels of at most ONE_PASS_MAX values get
// the statistics and the merge in one kernel with a workgroup per channel, forward and
// backward, so two dispatches each way. The backward takes a gradient of two terms unsummed and adds the weight and bias gradients
// straight into the parameters' .grad, so neither costs a dispatch of its own. Every reduction
// has a fixed order: no float atomics, so results are bitwise repeatable. When H*W divides by 4
// the kernels read vec4.
import statsSrc from '../../shaders/batchnorm_stats.wgsl';
import reduceSrc from '../../shaders/batchnorm_reduce.wgsl';
import evalStatsSrc from '../../shaders/batchnorm_eval_stats.wgsl';
import applySrc from '../../shaders/batchnorm_apply.wgsl';
import gradStatsSrc from '../../shaders/batchnorm_grad_stats.wgsl';
import gradReduceSrc from '../../shaders/batchnorm_grad_reduce.wgsl';
import gradInputSrc from '../../shaders/batchnorm_grad_input.wgsl';
import statsChannelSrc from '../../shaders/batchnorm_stats_channel.wgsl';
import gradChannelSrc from '../../shaders/batchnorm_grad_channel.wgsl';
import { type Tensor, formatShape } from '../tensor.js';
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

/** Enough chunks in pass 1 to keep every core busy, and not so many that pass 2 dominates. */
const TARGET_PARTIALS = 2048;
/** Chunks shorter than this cost more in pass 2 than they save in pass 1. */
const MIN_CHUNK = 16;
/** Elements of type T per invocation in the elementwise passes (16 vec4 ran as fast as a plain
 * vec4 map on lavapipe; 4 paid the index arithmetic too often). */
const ITEMS = 16;
/**
 * Under the 'one-pass' kernel choice, channels of at most this many values (N * H * W) take the
 * one-pass kernels (one workgroup per channel, so each reads at most 64 KiB: about what the
 * dispatch it saves costs on a GPU; not measured there). Larger channels keep the two passes,
 * which spread a channel over many workgroups.
 */
export const ONE_PASS_MAX = 16384;
/** Invocations per workgroup of the one-pass kernels (their WG); invocation 0 merges their results in order. */
const ONE_PASS_WG = 64;

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
  /** The one-pass kernels' cut of a plane (enough chunks per group for the workgroup), or null for two passes. */
  onePass: { chunk: number; chunks: number } | null;
  blocks: number;
  defines: { T: string; HSUM: string; LANES: number };
  shapes: string;
}

function makePlan(x: Tensor, G: number, onePassAllowed: boolean): Plan {
  const [N, C, H, W] = x.shape;
  const lanes = (H * W) % 4 === 0 ? 4 : 1;
  const hwT = (H * W) / lanes;
  const want = Math.min(hwT, Math.max(MIN_CHUNK, Math.ceil((N * C * hwT) / TARGET_PARTIALS)));
  const chunks = Math.ceil(hwT / want);
  const per = N / G;
  const oneChunks = Math.min(Math.ceil(hwT / MIN_CHUNK), Math.ceil(ONE_PASS_WG / per));
  const oneChunk = Math.ceil(hwT / oneChunks);
  return {
    N,
    C,
    G,
    per,
    lanes,
    hwT,
    chunk: Math.ceil(hwT / chunks),
    chunks,
    onePass:
      onePassAllowed && N * H * W <= ONE_PASS_MAX ? { chunk: oneChunk, chunks: Math.ceil(hwT / oneChunk) } : null,
    blocks: Math.ceil(hwT / ITEMS),
    defines:
      lanes === 4 ? { T: 'vec4<f32>', HSUM: 'v.x + v.y + v.z + v.w', LANES: 4 } : { T: 'f32', HSUM: 'v', LANES: 1 },
    shapes: formatShape(x.shape) + (G > 1 ? ` groups=${G}` : ''),
  };
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
  const p = makePlan(x, G, rt.profile.kernels.batchnorm === 'one-pass');
  const { N, C } = p;
  const n = x.size;

  const stats = empty(rt, [G * C * 4], 'f32', op);
  if (train && p.onePass) {
    const k1 = rt.kernel('batchnorm_stats_channel', statsChannelSrc, p.defines);
    rt.dispatch(k1, {
      params: { C, G, per: p.per, hw: p.hwT, chunk: p.onePass.chunk, chunks: p.onePass.chunks, momentum, eps },
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
    const kr = rt.kernel('batchnorm_reduce', reduceSrc);
    rt.dispatch(kr, {
      params: { C, G, per: p.per, chunks: p.chunks, hw: p.hwT * p.lanes, chunk: p.chunk * p.lanes, momentum, eps },
      buffers: [
        part.buffer(op),
        weight.buffer(op),
        bias.buffer(op),
        runningMean.buffer(op),
        runningVar.buffer(op),
        stats.buffer(op),
      ],
      workgroups: [Math.ceil(C / kr.iface.workgroupSize[0]), 1, 1],
      op,
      flops: 8 * part.size,
      bytes: 4 * (part.size + 6 * C + 4 * G * C),
      shapes: p.shapes,
    });
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
  }

  const y = empty(rt, x.shape, 'f32', op);
  const blocksTotal = N * C * p.blocks;
  const ka = rt.kernel('batchnorm_apply', applySrc, { T: p.defines.T, ITEMS, RELU: relu, RESIDUAL: res !== null });
  rt.dispatch(ka, {
    params: { C, per: p.per, hw: p.hwT, blocks: p.blocks, total: blocksTotal },
    // Without a residual, x stands in for it (unread).
    buffers: [x.buffer(op), stats.buffer(op), (res ?? x).buffer(op), y.buffer(op)],
    workgroups: rt.grid1d(blocksTotal, ka.iface.workgroupSize[0]),
    op,
    flops: (relu ? 3 : 2) * n + (res ? n : 0),
    bytes: (res ? 12 : 8) * n,
    shapes: p.shapes,
  });

  const inputs = res ? [x, weight, bias, res] : [x, weight, bias];
  record(
    y,
    op,
    inputs,
    (dy, more) => batchNormBackward(dy, more[0] ?? null, x, y, weight, bias, res, stats, p, train, relu),
    2,
  );
  if (!y.node) stats.dispose();
  return y;
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
  train: boolean,
  relu: boolean,
): (Tensor | null)[] {
  const op = 'batchNorm2d.backward';
  const rt = x.rt;
  const { N, C, G } = p;
  const n = x.size;
  const terms = dy2 ? 2 : 1;
  // Unused inputs get a stand-in of x's size: x for the mask without a ReLU, dy for dy2.
  const masked = relu ? y : x;
  const second = dy2 ?? dy;
  const coef = empty(rt, [G * C * 4], 'f32', op);
  const wTarget = leafGradTarget(weight);
  const bTarget = leafGradTarget(bias);
  const accumulate = wTarget !== null && bTarget !== null;
  const dweight = accumulate ? wTarget : empty(rt, [C], 'f32', op);
  const dbias = accumulate ? bTarget : empty(rt, [C], 'f32', op);
  if (p.onePass) {
    const k1 = rt.kernel('batchnorm_grad_channel', gradChannelSrc, {
      ...p.defines,
      RELU: relu,
      DY2: dy2 !== null,
      ACCUMULATE: accumulate,
    });
    rt.dispatch(k1, {
      params: {
        C,
        G,
        per: p.per,
        hw: p.hwT,
        chunk: p.onePass.chunk,
        chunks: p.onePass.chunks,
        count: p.per * p.hwT * p.lanes,
        train: train ? 1 : 0,
      },
      buffers: [
        dy.buffer(op),
        x.buffer(op),
        masked.buffer(op),
        second.buffer(op),
        weight.buffer(op),
        stats.buffer(op),
        coef.buffer(op),
        dweight.buffer(op),
        dbias.buffer(op),
      ],
      workgroups: [C, 1, 1],
      op,
      flops: (relu ? 5 : 4) * n + (terms - 1) * n,
      bytes: 4 * (relu ? 2 + terms : 1 + terms) * n,
      shapes: p.shapes,
    });
  } else {
    gradSums(dy, second, dy2 !== null, x, masked, weight, stats, coef, dweight, dbias, accumulate, p, train, relu);
  }
  const wantRes = res?.requiresGrad ?? false;
  if (!x.requiresGrad && !wantRes) return [null, accumulate ? null : dweight, accumulate ? null : dbias];
  const dx = empty(rt, x.shape, 'f32', op);
  // Without a residual the unwritten dres binding gets a one-vec4 stand-in (writable bindings
  // must not alias dx).
  const dres = empty(rt, wantRes ? x.shape : [4], 'f32', op);
  const blocksTotal = N * C * p.blocks;
  const ki = rt.kernel('batchnorm_grad_input', gradInputSrc, {
    T: p.defines.T,
    ITEMS,
    RELU: relu,
    DY2: dy2 !== null,
    RESIDUAL: wantRes,
  });
  rt.dispatch(ki, {
    params: { C, per: p.per, hw: p.hwT, blocks: p.blocks, total: blocksTotal },
    buffers: [
      dy.buffer(op),
      x.buffer(op),
      masked.buffer(op),
      coef.buffer(op),
      dx.buffer(op),
      second.buffer(op),
      dres.buffer(op),
    ],
    workgroups: rt.grid1d(blocksTotal, ki.iface.workgroupSize[0]),
    op,
    flops: (relu ? 6 : 5) * n + (terms - 1) * n,
    bytes: 4 * ((relu ? 3 : 2) + terms + (wantRes ? 1 : 0)) * n,
    shapes: p.shapes,
  });
  const grads = [x.requiresGrad ? dx : null, accumulate ? null : dweight, accumulate ? null : dbias];
  return res ? [...grads, wantRes ? dres : null] : grads;
}

/** The two-pass form of the backward sums: chunk partials, then a per-channel merge into coef, dweight and dbias. */
function gradSums(
  dy: Tensor,
  second: Tensor,
  twoTerms: boolean,
  x: Tensor,
  masked: Tensor,
  weight: Tensor,
  stats: Tensor,
  coef: Tensor,
  dweight: Tensor,
  dbias: Tensor,
  accumulate: boolean,
  p: Plan,
  train: boolean,
  relu: boolean,
): void {
  const op = 'batchNorm2d.backward';
  const rt = x.rt;
  const { N, C, G } = p;
  const n = x.size;
  const part = empty(rt, [N * C * p.chunks * 2], 'f32', op);
  const ks = rt.kernel('batchnorm_grad_stats', gradStatsSrc, { ...p.defines, RELU: relu, DY2: twoTerms });
  rt.dispatch(ks, {
    params: { C, per: p.per, hw: p.hwT, chunk: p.chunk, chunks: p.chunks, planes: N * C },
    buffers: [dy.buffer(op), x.buffer(op), masked.buffer(op), stats.buffer(op), second.buffer(op), part.buffer(op)],
    workgroups: rt.grid1d(N * C * p.chunks, ks.iface.workgroupSize[0]),
    op,
    flops: (relu ? 5 : 4) * n + (twoTerms ? n : 0),
    bytes: 4 * ((relu ? 2 : 1) + (twoTerms ? 2 : 1)) * n + part.size * 4,
    shapes: p.shapes,
  });
  const kr = rt.kernel('batchnorm_grad_reduce', gradReduceSrc, { ACCUMULATE: accumulate });
  rt.dispatch(kr, {
    params: { C, G, per: p.per, chunks: p.chunks, count: p.per * p.hwT * p.lanes, train: train ? 1 : 0 },
    buffers: [
      part.buffer(op),
      weight.buffer(op),
      stats.buffer(op),
      coef.buffer(op),
      dweight.buffer(op),
      dbias.buffer(op),
    ],
    workgroups: [Math.ceil(C / kr.iface.workgroupSize[0]), 1, 1],
    op,
    flops: 2 * part.size,
    bytes: 4 * (part.size + 3 * C + 8 * G * C),
    shapes: p.shapes,
  });
  part.dispose();
}
