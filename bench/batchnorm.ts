// Training-mode BatchNorm2d on ResNet-18's shapes at batch 8 (56x56x64 and 28x28x128): forward,
// and forward + backward (gradients of input, weight and bias), our engine against
// TensorFlow.js's WebGPU backend on the same GPUDevice. tfjs is channels-last, so it runs the
// same problem as NHWC: tf.moments over N, H, W, then tf.batchNorm, and the backward pass
// written with tfjs ops (its Node bundle has no gradients registered). Before timing, outputs and gradients of both are compared (after
// the layout change) so that a fast wrong kernel cannot win.
import { batchNorm2d, backward, noGrad, scope, tensor, Rng, type Tensor } from '../engine/index.js';
import type { BenchContext } from './lib/context.js';
import { engineCase, measureCases, type Case, type Measurement } from './lib/timing.js';
import { writeReport } from './lib/report.js';
import type { Tfjs } from './lib/tfjs.js';
import type { Tensor as TfTensor } from '@tensorflow/tfjs-core';

const SHAPES: [number, number, number, number][] = [
  [8, 64, 56, 56],
  [8, 128, 28, 28],
];
const EPS = 1e-5;

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  return worst;
}

/** NHWC data of an NCHW array. */
function toNhwc(v: ArrayLike<number>, [N, C, H, W]: number[]): Float32Array {
  const out = new Float32Array(v.length);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let i = 0; i < H * W; i++) out[(n * H * W + i) * C + c] = v[(n * C + c) * H * W + i];
  return out;
}

/** A tfjs case whose op makes several tensors: all of them are freed once the next op is queued. */
function tfjsMultiCase(name: string, tfjs: Tfjs, runOne: () => TfTensor[]): Case {
  return {
    name,
    async batch(reps) {
      for (let i = 0; i < reps; i++) for (const t of runOne()) t.dispose();
      await tfjs.sync();
    },
  };
}

export async function run(ctx: BenchContext): Promise<void> {
  const { rt } = ctx;
  const tfjs = await ctx.tfjs();
  const { tf } = tfjs;
  const measurements: Measurement[] = [];
  const notes: string[] = [];
  for (const shape of SHAPES) {
    const [N, C, H, W] = shape;
    const n = N * C * H * W;
    const rng = new Rng(n);
    const xs = Float32Array.from({ length: n }, () => rng.normal() * 2 + 0.5);
    const dys = Float32Array.from({ length: n }, () => rng.normal());
    const ws = Float32Array.from({ length: C }, () => rng.uniform(0.5, 1.5));
    const bs = Float32Array.from({ length: C }, () => rng.uniform(-0.5, 0.5));

    const x = tensor(xs, shape).requireGrad();
    const dy = tensor(dys, shape);
    const w = tensor(ws, [C]).requireGrad();
    const b = tensor(bs, [C]).requireGrad();
    const rm = tensor(new Float32Array(C), [C]);
    const rv = tensor(new Float32Array(C).fill(1), [C]);
    const opts = { training: true };
    const clearGrads = (): void => {
      for (const p of [x, w, b]) {
        p.grad?.dispose();
        p.grad = null;
      }
    };
    const forwardBackward = (): void =>
      scope(() => {
        backward(batchNorm2d(x, w, b, rm, rv, opts), dy);
      });

    const tx = tf.tensor4d(toNhwc(xs, shape), [N, H, W, C]);
    const tdy = tf.tensor4d(toNhwc(dys, shape), [N, H, W, C]);
    const tw = tf.tensor1d(ws);
    const tb = tf.tensor1d(bs);
    const tfForward = (): TfTensor => {
      const { mean, variance } = tf.moments(tx, [0, 1, 2]);
      return tf.batchNorm(tx, mean, variance, tb, tw, EPS);
    };
    // tfjs-core's Node bundle registers no gradients (tf.grads fails on Reshape), so the
    // backward pass is written out with tfjs ops: the textbook formula, one kernel per op.
    const tfForwardBackward = (): TfTensor[] =>
      tf.tidy(() => {
        const m = N * H * W;
        const { mean, variance } = tf.moments(tx, [0, 1, 2]);
        const y = tf.batchNorm(tx, mean, variance, tb, tw, EPS);
        const invstd = tf.rsqrt(tf.add(variance, EPS));
        const xhat = tf.mul(tf.sub(tx, mean), invstd);
        const db = tf.sum(tdy, [0, 1, 2]);
        const dw = tf.sum(tf.mul(tdy, xhat), [0, 1, 2]);
        const dx = tf.mul(tf.div(tf.mul(tw, invstd), m), tf.sub(tf.sub(tf.mul(tdy, m), db), tf.mul(xhat, dw)));
        return [y, dx, dw, db];
      });

    // Agreement before timing.
    const ours = await (async () => {
      const y = noGrad(() => batchNorm2d(x, w, b, rm, rv, opts));
      const yv = await y.data();
      y.dispose();
      forwardBackward();
      const grads = [await x.grad!.data(), await w.grad!.data(), await b.grad!.data()];
      clearGrads();
      return { y: toNhwc(yv, shape), dx: toNhwc(grads[0], shape), dw: grads[1], db: grads[2] };
    })();
    const theirs = await (async () => {
      const [y, gx, gw, gb] = tfForwardBackward();
      const out = {
        y: (await y.data()) as Float32Array,
        dx: (await gx.data()) as Float32Array,
        dw: (await gw.data()) as Float32Array,
        db: (await gb.data()) as Float32Array,
      };
      for (const t of [y, gx, gw, gb]) t.dispose();
      return out;
    })();
    const diffs = (['y', 'dx', 'dw', 'db'] as const).map((k) => [k, maxRelDiff(ours[k], theirs[k])] as const);
    if (diffs.some(([, d]) => d > 1e-3))
      throw new Error(
        `batchnorm bench ${shape}: results disagree with tfjs: ${diffs.map(([k, d]) => `${k} ${d}`).join(', ')}`,
      );
    notes.push(
      `${shape.join('x')}: max relative difference ours vs tfjs ${diffs.map(([k, d]) => `${k} ${d.toExponential(1)}`).join(', ')}`,
    );

    const label = `${N}x${C}x${H}x${W}`;
    // Bytes that must move at least once: forward reads x and writes y; backward reads x and dy
    // and writes dx. FLOPs: about 5 per element forward (statistics 3, affine 2), 9 backward.
    measurements.push(
      ...(await measureCases(
        'batchnorm',
        { label: `forward ${label}`, flops: 5 * n, bytes: 8 * n },
        [
          engineCase('ours', rt, () => noGrad(() => batchNorm2d(x, w, b, rm, rv, opts)).dispose()),
          tfjsMultiCase('tfjs', tfjs, () => [tfForward()]),
        ],
        ctx.timing,
      )),
    );
    measurements.push(
      ...(await measureCases(
        'batchnorm',
        { label: `forward+backward ${label}`, flops: 14 * n, bytes: 20 * n },
        [
          engineCase('ours', rt, () => {
            forwardBackward();
            clearGrads();
          }),
          tfjsMultiCase('tfjs', tfjs, tfForwardBackward),
        ],
        ctx.timing,
      )),
    );
    for (const t of [x, dy, w, b, rm, rv] as Tensor[]) t.dispose();
    for (const t of [tx, tdy, tw, tb]) t.dispose();
  }
  notes.push(
    'ours: engine batchNorm2d in training mode (NCHW; batch statistics, running-statistics update in place); forward+backward also computes the gradients of input, weight and bias.',
    'tfjs: @tensorflow/tfjs-backend-webgpu on the same GPUDevice' +
      (tfjs.sharedDevice ? '' : ' (NOT shared: own device on the same adapter)') +
      ', NHWC, tf.moments + tf.batchNorm; backward written with tfjs ops (dx, dweight, dbias, as in our backward); no running-statistics update.',
    'GB/s counts the bytes that must move at least once (forward: x in, y out; backward: x and dy in, dx out), the same for both engines.',
    'Each sample is a batch of ops recorded back to back and awaited once (GPU work finished); ms/op = median batch time / ops per batch.',
  );
  const out = writeReport({ suite: 'batchnorm', adapter: ctx.adapter, ours: 'ours', measurements, notes });
  console.log(out.table);
  console.log(`[bench] wrote ${out.json} and ${out.markdown}`);
}
