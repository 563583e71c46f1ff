// Every differentiable op of the public API against PyTorch 1.13 (test/fixtures/ops.json from
// scripts/make_fixtures.py): outputs and input gradients under a fixed random upstream gradient.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu } from './helpers.js';
import { loadFixtures, checkCase, type OpRunner } from './parity.js';
import {
  add,
  sub,
  mul,
  div,
  neg,
  exp,
  log,
  sqrt,
  relu,
  affine,
  powScalar,
  sum,
  mean,
  max,
  sumTo,
  matmul,
  permute,
  transpose,
  reshape,
  expandTo,
  concat,
  slice,
  gather,
  indexSelect,
  argmax,
  toFloat,
  l2Normalize,
  logSoftmax,
  crossEntropy,
} from '../engine/index.js';

const binary =
  (f: typeof add): OpRunner =>
  ([a, b], args) =>
    f(a, args.scalar ?? b);

const runners: Record<string, OpRunner> = {
  add: binary(add),
  sub: binary(sub),
  mul: binary(mul),
  div: binary(div),
  neg: ([x]) => neg(x),
  exp: ([x]) => exp(x),
  log: ([x]) => log(x),
  sqrt: ([x]) => sqrt(x),
  relu: ([x]) => relu(x),
  affine: ([x], a) => affine(x, a.alpha, a.beta),
  powScalar: ([x], a) => powScalar(x, a.p),
  sum: ([x], a) => sum(x, a.axes, a.keepDims),
  mean: ([x], a) => mean(x, a.axes, a.keepDims),
  max: ([x], a) => max(x, a.axis, a.keepDims),
  sumTo: ([x], a) => sumTo(x, a.shape),
  matmul: ([a, b]) => matmul(a, b),
  permute: ([x], a) => permute(x, a.perm),
  transpose: ([x], a) => transpose(x, a.dim0, a.dim1),
  reshape: ([x], a) => reshape(x, a.shape),
  expandTo: ([x], a) => expandTo(x, a.shape),
  concat: (xs, a) => concat(xs, a.axis),
  slice: ([x], a) => slice(x, a.axis, a.start, a.end),
  gather: ([x, i], a) => gather(x, i, a.axis),
  indexSelect: ([x, i], a) => indexSelect(x, i, a.axis),
  argmax: ([x], a) => argmax(x, a.axis, a.keepDims),
  toFloat: ([x]) => toFloat(x),
  l2Normalize: ([x], a) => l2Normalize(x, a.axis, a.eps),
  logSoftmax: ([x], a) => logSoftmax(x, a.axis),
  crossEntropy: ([x, y], a) => crossEntropy(x, y, a.reduction),
};

const fixtures = loadFixtures('ops');
const t = suite('ops parity with PyTorch');
t.before(async () => {
  await gpu();
});

t('every op has fixtures and every fixture an op', () => {
  const ops = new Set(fixtures.cases.map((c) => c.op));
  for (const op of Object.keys(runners))
    assert.ok(ops.has(op), `no fixture case for ${op}: add one to scripts/make_fixtures.py`);
  for (const op of ops) assert.ok(runners[op], `fixture op ${op} has no runner in test/ops_parity.test.ts`);
});

for (const c of fixtures.cases) {
  t(c.name, async () => {
    await checkCase(c, runners[c.op]);
  });
}

t.run();
