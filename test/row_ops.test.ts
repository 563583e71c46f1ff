// l2Normalize and logSoftmax along every axis of a 3-D tensor (a middle axis has inner > 1, where
// the row kernels' line indexing differs from the last axis), forward and backward, against
// plain CPU loops.
import { suite } from 'uvu';
import { gpu, assertClose, randomArray } from './helpers.js';
import { tensor, backward, sum, mul, l2Normalize, logSoftmax, type Tensor } from '../engine/index.js';

const t = suite('row ops along any axis');
const SHAPE = [2, 3, 4];

/** Calls f(lineStart, stride, length) for every line along `axis` of SHAPE. */
function lines(axis: number, f: (start: number, stride: number, n: number) => void): void {
  const stride = SHAPE.slice(axis + 1).reduce((a, b) => a * b, 1);
  const n = SHAPE[axis];
  const outer = SHAPE.slice(0, axis).reduce((a, b) => a * b, 1);
  for (let o = 0; o < outer; o++) for (let i = 0; i < stride; i++) f(o * n * stride + i, stride, n);
}

function l2Cpu(x: Float32Array, axis: number): Float32Array {
  const y = new Float32Array(x.length);
  lines(axis, (s, st, n) => {
    let q = 0;
    for (let j = 0; j < n; j++) q += x[s + j * st] ** 2;
    const inv = 1 / Math.max(Math.sqrt(q), 1e-12);
    for (let j = 0; j < n; j++) y[s + j * st] = x[s + j * st] * inv;
  });
  return y;
}

function logSoftmaxCpu(x: Float32Array, axis: number): Float32Array {
  const y = new Float32Array(x.length);
  lines(axis, (s, st, n) => {
    let m = -Infinity;
    for (let j = 0; j < n; j++) m = Math.max(m, x[s + j * st]);
    let e = 0;
    for (let j = 0; j < n; j++) e += Math.exp(x[s + j * st] - m);
    for (let j = 0; j < n; j++) y[s + j * st] = x[s + j * st] - m - Math.log(e);
  });
  return y;
}

/** The gradient of sum(w * f(x)) by central differences of the CPU function. */
function numericGrad(f: (x: Float32Array) => Float32Array, x: Float32Array, w: Float32Array): Float32Array {
  const g = new Float32Array(x.length);
  const h = 1e-3;
  const dot = (y: Float32Array) => y.reduce((a, v, i) => a + v * w[i], 0);
  for (let i = 0; i < x.length; i++) {
    const p = Float32Array.from(x);
    const m = Float32Array.from(x);
    p[i] += h;
    m[i] -= h;
    g[i] = (dot(f(p)) - dot(f(m))) / (2 * h);
  }
  return g;
}

t.before(async () => {
  await gpu();
});

for (const [name, op, cpu] of [
  ['l2Normalize', (x: Tensor, a: number) => l2Normalize(x, a), l2Cpu],
  ['logSoftmax', (x: Tensor, a: number) => logSoftmax(x, a), logSoftmaxCpu],
] as const) {
  t(`${name}: forward and backward along each axis match a CPU loop`, async () => {
    for (let axis = 0; axis < 3; axis++) {
      const xv = randomArray(24, 10 + axis);
      const wv = randomArray(24, 20 + axis);
      const x = tensor(xv, SHAPE).requireGrad();
      const y = op(x, axis);
      assertClose(await y.data(), cpu(xv, axis), 1e-5, 1e-6, `${name} axis ${axis}`);
      backward(sum(mul(y, tensor(wv, SHAPE))));
      assertClose(
        await x.grad!.data(),
        numericGrad((v) => cpu(v, axis), xv, wv),
        2e-2,
        2e-3,
        `${name} gradient, axis ${axis}`,
      );
    }
  });
}

t.run();
