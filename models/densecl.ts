// MoCo-v2 and DenseCL (../shared/densecl-spec.md): a query encoder trained by SGD, a momentum
// key encoder (EMA of the parameters in one kernel over the flat parameter buffer), a global
// MLP head and, for DenseCL, a dense 1x1-conv head; queues of negatives; shuffle-BN emulated on
// one device with grouped BN statistics and a permuted key batch. The step's GPU work is written
// once (stepWork); it pauses after the key forward, where a data-parallel job
// (train/distributed.ts) exchanges the keys across processes, so the model holds no
// communication code.
import {
  add,
  mul,
  relu,
  sum,
  reshape,
  permute,
  expandTo,
  noGrad,
  backward,
  detach,
  axpyInPlace,
  copyInto,
  FlatStore,
  Rng,
  type Runtime,
  type Tensor,
  withPrecision,
  checkPrecision,
  type Precision,
} from '../engine/index.js';
import { conv2d } from '../engine/ops/conv2d/index.js';
import { linear } from '../engine/ops/linear.js';
import { adaptiveAvgPool2d } from '../engine/ops/avgpool.js';
import { l2Normalize } from '../engine/ops/normalize.js';
import { gather } from '../engine/ops/gather.js';
import { indexSelect } from '../engine/ops/index_select.js';
import { copyRows } from '../engine/ops/slice.js';
import { queueContrastiveLoss } from './ops/contrastive.js';
import { denseCorrespondence } from './ops/correspondence.js';
import { affine } from '../engine/ops/unary.js';
import { inputOn } from '../engine/ops/create.js';
import { live } from '../engine/uniforms.js';
import type { StepValues } from '../engine/capture.js';
import { ResNet, type ResNetConfig } from './resnet.js';
import { ModelState, kaimingNormal, constant, torchDefaultUniform, type ParamSpec } from './state.js';

export type Method = 'densecl' | 'mocov2';

export interface DenseCLConfig extends ResNetConfig {
  method: Method;
  /** Output dimension of both heads. */
  dim: number;
  queueSize: number;
  tau: number;
  /** EMA momentum of the key encoder. */
  emaMomentum: number;
  /** Weight of the dense loss. */
  lambda: number;
  /** Steps with lambda = 0 at the start (DenseCL's optional warm-up). */
  startIters: number;
  /** BN statistics groups for shuffle-BN on one device. */
  bnGroups: number;
  /** Seeds the weights and the queues (a Trainer's also its shuffle-BN permutations). */
  seed: number;
  /** 'mixed': the step's convolutions and linear layers on f16 operands (engine/autocast.ts); default 'f32'. */
  precision?: Precision;
}

export interface StepOutput {
  loss: Tensor;
  lossGlobal: Tensor;
  lossDense: Tensor | null;
  /** DenseCL's correspondence indices [N, S2] (for inspection and parity tests). */
  correspondence: Tensor | null;
}

/**
 * What the host decides for one step before any GPU work: the shuffle-BN permutation, the queue
 * rows the keys go to, the dense loss's weight. A captured step is replayed with these values
 * (stepValues), so every per-step decision lives here and nowhere in the recorded GPU work.
 */
export interface StepPlan {
  index: number;
  /** perm[i] is the key image at shuffled position i; inverse undoes it (null: keys come from outside). */
  perm: Int32Array | null;
  inverse: Int32Array | null;
  /** First queue rows this step's keys are written to, and how many rows are written. */
  ptr: number;
  ptr2: number;
  enqueued: number;
  /** Weight of the dense loss at this step (0 during the startIters warm-up). */
  lambda: number;
}

/** One encoder pass (see DenseCL.encode). */
export interface KeyOutputs {
  /** Backbone features [N, C, S2], L2-normalised over C (for the correspondence; no gradient). */
  features: Tensor;
  /** The global head's embedding [N, dim]. */
  globalEmbedding: Tensor;
  /** DenseCL: the dense head's embeddings [N, dim, S2] and their average [N, dim] (the second queue's keys). */
  denseGrid: Tensor | null;
  densePooled: Tensor | null;
}

/** The keys of a step: `own` in this batch's query order, `enqueue` the job batch's keys in data order. */
export interface StepKeys {
  own: KeyOutputs;
  enqueue: Pick<KeyOutputs, 'globalEmbedding' | 'densePooled'>;
}

/**
 * A step's input views [N, 3, S, S], each made when the work first needs it: inside the part of
 * the work that uses it, so a caller that runs the parts in separate scopes keeps each alive.
 */
export interface StepViews {
  key: () => Tensor;
  query: () => Tensor;
}

/** Where a step's GPU work pauses: after the key forward, with the key encoder's outputs (data order). */
export interface KeysPause {
  at: 'keys';
  keys: KeyOutputs;
}

/**
 * A step's GPU work as a generator: it yields at its pauses and takes, at the keys pause, the
 * step's keys (or nothing: the key encoder's outputs are then the keys).
 */
export type StepWork<Pause = KeysPause> = Generator<Pause, StepOutput, StepKeys | undefined>;

export class DenseCL {
  readonly backbone: ResNet;
  readonly query: ModelState;
  readonly key: ModelState;
  /** queue / queue2: [K, dim], one L2-normalised negative key per row. */
  readonly queues: FlatStore;
  ptr = 0;
  ptr2 = 0;

  constructor(
    readonly rt: Runtime,
    readonly cfg: DenseCLConfig,
  ) {
    this.backbone = new ResNet(cfg);
    if (cfg.queueSize <= 0 || !Number.isInteger(cfg.queueSize))
      throw new Error(`queue size must be a positive integer, got ${cfg.queueSize}`);
    checkPrecision(rt, cfg.precision ?? 'f32');
    const specs = [...this.backbone.paramSpecs('backbone.'), ...this.neckSpecs()];
    const buffers = this.backbone.bufferSpecs('backbone.');
    this.query = new ModelState(rt, specs, buffers, cfg.seed, 'encoder_q');
    this.key = new ModelState(rt, specs, buffers, cfg.seed, 'encoder_k');
    copyInto(this.key.params.flat, this.query.params.flat, 'key.init');
    this.key.setRequiresGrad(false);
    const queueNames = cfg.method === 'densecl' ? ['queue', 'queue2'] : ['queue'];
    this.queues = new FlatStore(
      rt,
      queueNames.map((name) => ({ name, shape: [cfg.queueSize, cfg.dim] })),
      'queues',
    );
    const rng = new Rng(cfg.seed + 7);
    for (const name of queueNames) this.queues.write(name, randomUnitRows(rng, cfg.queueSize, cfg.dim));
  }

  private neckSpecs(): ParamSpec[] {
    const c = this.backbone.outChannels;
    const d = this.cfg.dim;
    const specs: ParamSpec[] = [
      { name: 'neck.mlp.0.weight', shape: [c, c], init: kaimingNormal(c) },
      { name: 'neck.mlp.0.bias', shape: [c], init: constant(0) },
      { name: 'neck.mlp.2.weight', shape: [d, c], init: kaimingNormal(c) },
      { name: 'neck.mlp.2.bias', shape: [d], init: constant(0) },
    ];
    if (this.cfg.method === 'densecl') {
      specs.push(
        { name: 'neck.mlp2.0.weight', shape: [c, c, 1, 1], init: torchDefaultUniform(c) },
        { name: 'neck.mlp2.0.bias', shape: [c], init: torchDefaultUniform(c) },
        { name: 'neck.mlp2.2.weight', shape: [d, c, 1, 1], init: torchDefaultUniform(c) },
        { name: 'neck.mlp2.2.bias', shape: [d], init: torchDefaultUniform(c) },
      );
    }
    return specs;
  }

  /**
   * One encoder pass: backbone features qb [N, C, S2] (normalised over C), global embedding
   * [N, dim] and, for DenseCL, the dense grid [N, dim, S2] and its pooled vector [N, dim], each
   * L2-normalised over the embedding dimension.
   */
  encode(state: ModelState, x: Tensor, training: boolean): KeyOutputs {
    return this.heads(
      state,
      this.backbone.forward(state, x, { training, bnGroups: this.cfg.bnGroups, prefix: 'backbone.' }),
    );
  }

  /** Both heads on the backbone's features [N, C, H, W]. */
  private heads(state: ModelState, feats: Tensor): KeyOutputs {
    const [N, C, H, W] = feats.shape;
    const pooledFeats = reshape(adaptiveAvgPool2d(feats, 1), [N, C]);
    const hidden = relu(linear(pooledFeats, state.p('neck.mlp.0.weight'), state.p('neck.mlp.0.bias')));
    const g = l2Normalize(linear(hidden, state.p('neck.mlp.2.weight'), state.p('neck.mlp.2.bias')), 1);
    const b = noGrad(() => l2Normalize(reshape(feats, [N, C, H * W]), 1));
    if (this.cfg.method !== 'densecl') return { features: b, globalEmbedding: g, denseGrid: null, densePooled: null };
    const h2 = relu(conv2d(feats, state.p('neck.mlp2.0.weight'), state.p('neck.mlp2.0.bias')));
    const gridRaw = conv2d(h2, state.p('neck.mlp2.2.weight'), state.p('neck.mlp2.2.bias'));
    const d = this.cfg.dim;
    const pooled = l2Normalize(reshape(adaptiveAvgPool2d(gridRaw, 1), [N, d]), 1);
    const grid = l2Normalize(reshape(gridRaw, [N, d, H * W]), 1);
    return { features: b, globalEmbedding: g, denseGrid: grid, densePooled: pooled };
  }

  /**
   * Momentum update of the key encoder, then its forward on the key views (no gradient). With
   * the plan's permutation the views are shuffled first and the outputs put back in data order
   * (shuffle-BN on one device); without it, the views come already shuffled (a data-parallel
   * rank's slice of the job's shuffled batch) and the outputs stay in their order.
   */
  private encodeKeys(xk: Tensor, plan: StepPlan): KeyOutputs {
    return noGrad(() => {
      const m = this.cfg.emaMomentum;
      axpyInPlace(this.key.params.flat, this.query.params.flat, 1 - m, m, 'momentumUpdate');
      if (!plan.perm) return this.encode(this.key, xk, true);
      const N = xk.shape[0];
      const v = this.stepValues(plan);
      const out = this.encode(
        this.key,
        indexSelect(xk, inputOn(this.rt, 'shuffle.perm', v['shuffle.perm'] as Int32Array, [N], 'i32'), 0),
        true,
      );
      const undo = inputOn(this.rt, 'shuffle.inverse', v['shuffle.inverse'] as Int32Array, [N], 'i32');
      const un = (t: Tensor | null) => (t ? indexSelect(t, undo, 0) : null);
      return {
        features: un(out.features)!,
        globalEmbedding: un(out.globalEmbedding)!,
        denseGrid: un(out.denseGrid),
        densePooled: un(out.densePooled),
      };
    });
  }

  /**
   * The host decisions of step `stepIndex` that enqueues `enqueued` keys; `shuffle` is the
   * shuffle-BN permutation of the key batch or the generator that draws it (omitted when the
   * keys come from outside, as in a data-parallel job). Changes no state: finishStep does.
   */
  planStep(stepIndex: number, enqueued: number, shuffle?: Rng | readonly number[]): StepPlan {
    this.checkQueue(enqueued);
    let perm: Int32Array | null = null;
    let inverse: Int32Array | null = null;
    if (shuffle !== undefined) {
      perm = Int32Array.from(Array.isArray(shuffle) ? shuffle : (shuffle as Rng).permutation(enqueued));
      if (perm.length !== enqueued)
        throw new Error(`shuffle permutation has ${perm.length} entries for a batch of ${enqueued}`);
      inverse = new Int32Array(enqueued);
      perm.forEach((p, i) => (inverse![p] = i));
    }
    const lambda = stepIndex < this.cfg.startIters ? 0 : this.cfg.lambda;
    return { index: stepIndex, perm, inverse, ptr: this.ptr, ptr2: this.ptr2, enqueued, lambda };
  }

  /**
   * The plan's values as a captured step takes them: the uploads and live uniform values that
   * runStep records under these names.
   */
  stepValues(plan: StepPlan): StepValues {
    const d = this.cfg.dim;
    const v: StepValues = { 'queue.row': plan.ptr * d };
    if (this.cfg.method === 'densecl') v['queue2.row'] = plan.ptr2 * d;
    if (plan.perm && plan.inverse) Object.assign(v, { 'shuffle.perm': plan.perm, 'shuffle.inverse': plan.inverse });
    return v;
  }

  /** Advances the queue pointers past the planned step's keys (after its GPU work is recorded). */
  finishStep(plan: StepPlan): void {
    this.ptr = (plan.ptr + plan.enqueued) % this.cfg.queueSize;
    if (this.cfg.method === 'densecl') this.ptr2 = (plan.ptr2 + plan.enqueued) % this.cfg.queueSize;
  }

  /**
   * One training step up to the optimiser: momentum update of the key encoder, both forwards,
   * the loss, backward into the query encoder's gradient store, then the enqueue of this step's
   * keys (after backward: the gradient must see the queue the logits were computed with).
   * `shuffle` is the shuffle-BN permutation of the key batch, or the generator that draws it.
   * The caller zeroes gradients before and steps SGD after.
   */
  trainStep(xq: Tensor, xk: Tensor, stepIndex: number, shuffle: Rng | readonly number[]): StepOutput {
    const plan = this.planStep(stepIndex, xk.shape[0], shuffle);
    const out = this.runStep(xq, xk, plan);
    this.finishStep(plan);
    return out;
  }

  /** The GPU work of a planned step (trainStep without the plan and the pointer advance): what a captured step records. */
  runStep(xq: Tensor, xk: Tensor, plan: StepPlan): StepOutput {
    return runThrough(this.stepWork({ key: () => xk, query: () => xq }, plan));
  }

  /**
   * The GPU work of a planned step, the one way every caller runs it: the key encoder's EMA
   * update and forward on the key views, a pause (yielding those keys, taking the step's keys:
   * a data-parallel job sends back the job's keys after exchanging them, one process nothing),
   * then the query forward, the loss, backward into the query encoder's gradient store, and the
   * enqueue of the step's keys (after backward: the gradient must see the queue the logits were
   * computed with). With `headsDone`, backward runs in two parts and `headsDone` is called
   * between them, when the heads' gradients (the parameters after the backbone's) are recorded: a
   * caller can submit and send them while the backbone's backward is recorded and runs. The
   * caller zeroes gradients before and steps SGD after.
   */
  stepWork(views: StepViews, plan: StepPlan, headsDone?: () => void): StepWork {
    return withPrecision(this.rt, this.cfg.precision ?? 'f32', this.stepParts(views, plan, headsDone));
  }

  private *stepParts(views: StepViews, plan: StepPlan, headsDone?: () => void): StepWork {
    const encoded = this.encodeKeys(views.key(), plan);
    const keys = (yield { at: 'keys', keys: encoded }) ?? { own: encoded, enqueue: encoded };
    if (!headsDone) return this.lossStep(this.encode(this.query, views.query(), true), keys, plan);
    const feats = this.backbone.forward(this.query, views.query(), {
      training: true,
      bnGroups: this.cfg.bnGroups,
      prefix: 'backbone.',
    });
    // The heads see a leaf cut from the backbone; its gradient is then carried through the backbone.
    const cut = detach(feats).requireGrad();
    return this.lossStep(this.heads(this.query, cut), keys, plan, () => {
      headsDone();
      const g = cut.grad!;
      backward(feats, g);
      g.dispose();
    });
  }

  private checkQueue(n: number): void {
    if (this.cfg.queueSize % n !== 0) {
      throw new Error(
        `queue size ${this.cfg.queueSize} is not divisible by the batch size ${n}; choose a queue size that is a multiple of the batch`,
      );
    }
  }

  private lossStep(q: KeyOutputs, keys: StepKeys, plan: StepPlan, afterBackward?: () => void): StepOutput {
    const N = q.globalEmbedding.shape[0];
    const k = keys.own;
    const tau = this.cfg.tau;
    const lossGlobal = queueContrastiveLoss(
      q.globalEmbedding,
      sum(mul(q.globalEmbedding, k.globalEmbedding), 1),
      this.queues.get('queue'),
      { tau },
    );
    let lossDense: Tensor | null = null;
    let correspondence: Tensor | null = null;
    let loss = lossGlobal;
    if (this.cfg.method === 'densecl') {
      const [, d, S2] = q.denseGrid!.shape;
      const ind = (correspondence = denseCorrespondence(q.features, k.features));
      const index = expandTo(reshape(ind, [N, 1, S2]), [N, d, S2]);
      const matchedKeys = gather(k.denseGrid!, index, 2);
      const posDense = reshape(sum(mul(q.denseGrid!, matchedKeys), 1), [N * S2]);
      const rows = reshape(permute(q.denseGrid!, [0, 2, 1]), [N * S2, d]);
      lossDense = queueContrastiveLoss(rows, posDense, this.queues.get('queue2'), { tau });
      const lambda = plan.lambda;
      loss = add(affine(lossGlobal, 1 - lambda, 0), affine(lossDense, lambda, 0));
    }
    backward(loss);
    afterBackward?.();
    noGrad(() => {
      const rows = this.stepValues(plan);
      this.enqueue('queue', keys.enqueue.globalEmbedding, rows['queue.row'] as number);
      if (keys.enqueue.densePooled) this.enqueue('queue2', keys.enqueue.densePooled, rows['queue2.row'] as number);
    });
    return { loss, lossGlobal, lossDense, correspondence };
  }

  /** Writes the keys [N, dim] into the queue from element `at` on (a live value: it moves every step). */
  private enqueue(name: string, keys: Tensor, at: number): void {
    const [N, d] = keys.shape;
    copyRows(
      keys,
      this.queues.get(name),
      { rows: 1, rowLen: N * d, srcStride: 0, srcOffset: 0, dstStride: 0, dstOffset: live(`${name}.row`, at) },
      `enqueue.${name}`,
    );
  }

  destroy(): void {
    this.query.destroy();
    this.key.destroy();
    this.queues.destroy();
  }
}

/** Runs a step's work to its end in one synchronous piece, answering no pause (the keys are used as encoded). */
export function runThrough<T>(work: Generator<unknown, T, undefined>): T {
  let r = work.next();
  while (!r.done) r = work.next();
  return r.value;
}

function randomUnitRows(rng: Rng, rows: number, dim: number): Float32Array {
  const v = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let n = 0;
    for (let c = 0; c < dim; c++) {
      const x = rng.normal();
      v[r * dim + c] = x;
      n += x * x;
    }
    const s = 1 / Math.max(Math.sqrt(n), 1e-12);
    for (let c = 0; c < dim; c++) v[r * dim + c] *= s;
  }
  return v;
}
