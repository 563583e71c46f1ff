// Shared by the tests: one GPU runtime, closeness checks and a finite-difference gradient check.
import type { TrainerOptions } from '../train/trainer.js';
import type { PretrainOptions } from '../cli/pretrain.js';
import { PRETRAIN_PRESETS } from '../train/presets.js';
import * as assert from 'uvu/assert';
import type { DispatchInfo } from '../engine/runtime.js';
import {
  init,
  runtime,
  setRuntime,
  scope,
  backward,
  noGrad,
  tensor,
  type Tensor,
  type Runtime,
  Rng,
} from '../engine/index.js';

let ready: Promise<Runtime> | null = null;

export function gpu(): Promise<Runtime> {
  ready ??= init({ quiet: true }).then((rt) => {
    setRuntime(rt);
    return rt;
  });
  return ready;
}

export { runtime };

/** The dispatches `fn` records, as the runtime's observer sees them. */
export function dispatchesOf(fn: () => void): DispatchInfo[] {
  const rt = runtime();
  const seen: DispatchInfo[] = [];
  rt.observer = {
    timestampWrites(info: DispatchInfo) {
      seen.push(info);
      return undefined;
    },
    beforeSubmit() {},
    afterSubmit() {},
  };
  try {
    fn();
  } finally {
    rt.observer = null;
  }
  return seen;
}

export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol = 1e-4,
  atol = 1e-5,
  what = 'values',
): void {
  assert.is(actual.length, expected.length, `${what}: length ${actual.length} vs ${expected.length}`);
  let worst = -1;
  let worstErr = 0;
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i] - expected[i]) - (atol + rtol * Math.abs(expected[i]));
    if (!(err <= 0) && (worst < 0 || err > worstErr || Number.isNaN(err))) {
      worst = i;
      worstErr = err;
    }
  }
  if (worst >= 0) {
    assert.unreachable(
      `${what}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} (rtol ${rtol}, atol ${atol})`,
    );
  }
}

export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = new Rng(seed);
  return Float32Array.from({ length: n }, () => r.uniform(lo, hi));
}

/**
 * Checks the gradients of fn at the given inputs against central finite differences of the
 * scalar sum(fn(inputs) * w) for a fixed random w (so every output element matters).
 */
export async function gradCheck(
  fn: (...xs: Tensor[]) => Tensor,
  inputs: { data: Float32Array; shape: number[] }[],
  opts: { eps?: number; rtol?: number; atol?: number; what?: string } = {},
): Promise<void> {
  const eps = opts.eps ?? 1e-2;
  const rtol = opts.rtol ?? 2e-2;
  const atol = opts.atol ?? 2e-3;
  const probe = noGrad(() => fn(...inputs.map((i) => tensor(i.data, i.shape))));
  const w = randomArray(probe.size, 99);
  const outShape = [...probe.shape];
  probe.dispose();
  const objective = (datas: Float32Array[]): Promise<number> => {
    const out = noGrad(() => scope(() => fn(...datas.map((d, k) => tensor(d, inputs[k].shape)))));
    return out.data().then((v) => {
      out.dispose();
      let s = 0;
      for (let i = 0; i < v.length; i++) s += v[i] * w[i];
      return s;
    });
  };
  const leaves = inputs.map((i) => tensor(i.data, i.shape).requireGrad());
  const analytic = await (async () => {
    const out = fn(...leaves);
    backward(out, tensor(w, outShape));
    const gs = [];
    for (const l of leaves) gs.push(l.grad ? await l.grad.data() : new Float32Array(l.size));
    out.dispose();
    return gs;
  })();
  for (let k = 0; k < inputs.length; k++) {
    const base = inputs.map((i) => Float64Array.from(i.data));
    const numeric = new Float32Array(inputs[k].data.length);
    for (let j = 0; j < numeric.length; j++) {
      const plus = base.map((b) => Float32Array.from(b));
      const minus = base.map((b) => Float32Array.from(b));
      plus[k][j] += eps;
      minus[k][j] -= eps;
      numeric[j] = ((await objective(plus)) - (await objective(minus))) / (2 * eps);
    }
    assertClose(analytic[k], numeric, rtol, atol, `${opts.what ?? 'gradient'} of input ${k}`);
  }
  for (const l of leaves) {
    l.grad?.dispose();
    l.dispose();
  }
}

/** Asserts that an async call rejects with a message matching `pattern`. */
export async function rejects(fn: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  let message: string | null = null;
  try {
    await fn();
  } catch (e) {
    message = (e as Error).message;
  }
  if (message === null) assert.unreachable(`expected a rejection matching ${pattern}`);
  assert.match(message!, pattern);
}

/** A trainer small enough for tests: batches of 4 views of 16 px, queue 8 (its pointer wraps every second step). */
export const TINY_TRAINER: Partial<TrainerOptions> = {
  batchSize: 4,
  bnGroups: 2,
  imgSize: 16,
  width: 1 / 16,
  dim: 8,
  queueSize: 8,
  seed: 5,
};

/** One seeded batch of TINY_TRAINER's views. */
export const tinyBatch = (seed: number): Float32Array => randomArray(4 * 3 * 16 * 16, seed);

/** `densecl pretrain` options for a run of seconds: the tiny preset made smaller, two epochs of 16 built-in images. */
export const tinyPretrain = (out: string, extra: Partial<PretrainOptions> = {}): PretrainOptions => ({
  ...PRETRAIN_PRESETS.tiny.options,
  width: 1 / 16,
  imgSize: 16,
  batchSize: 8,
  bnGroups: 2,
  queueSize: 16,
  dim: 16,
  builtinImages: 16,
  epochs: 2,
  workers: 0,
  checkpointEvery: 2,
  out,
  ...extra,
});
