// A tiny end-to-end check of the engine: a 2-layer MLP fits y = sin(3x) + 0.5 cos(5x) on the
// GPU with the fused SGD kernel; the loss must fall.
import { init, tensor, matmul, add, sub, mul, relu, mean, backward, scope, noGrad } from '../engine/index.js';
import { ModelState, kaimingNormal, constant } from '../models/state.js';
import { Sgd } from '../engine/ops/sgd.js';
import { Rng } from '../engine/random.js';

export interface MlpDemoOptions {
  steps: number;
  hidden: number;
  batch: number;
  lr: number;
  seed: number;
}

export async function mlpDemo(o: MlpDemoOptions): Promise<{ first: number; last: number }> {
  const rt = await init();
  const h = o.hidden;
  const model = new ModelState(
    rt,
    [
      { name: 'fc1.weight', shape: [1, h], init: kaimingNormal(1) },
      { name: 'fc1.bias', shape: [h], init: constant(0) },
      { name: 'fc2.weight', shape: [h, h], init: kaimingNormal(h) },
      { name: 'fc2.bias', shape: [h], init: constant(0) },
      { name: 'fc3.weight', shape: [h, 1], init: kaimingNormal(h) },
      { name: 'fc3.bias', shape: [1], init: constant(0) },
    ],
    [],
    o.seed,
    'mlp',
  );
  const sgd = new Sgd(model.params, model.grads, { momentum: 0.9, weightDecay: 0 });
  const rng = new Rng(o.seed + 1);
  const losses: number[] = [];
  const t0 = performance.now();
  for (let step = 0; step < o.steps; step++) {
    const xs = Float32Array.from({ length: o.batch }, () => rng.uniform(-1, 1));
    const ys = xs.map((x) => Math.sin(3 * x) + 0.5 * Math.cos(5 * x));
    const loss = scope(() => {
      model.zeroGrad();
      const x = tensor(xs, [o.batch, 1]);
      const y = tensor(ys, [o.batch, 1]);
      const h1 = relu(add(matmul(x, model.p('fc1.weight')), model.p('fc1.bias')));
      const h2 = relu(add(matmul(h1, model.p('fc2.weight')), model.p('fc2.bias')));
      const out = add(matmul(h2, model.p('fc3.weight')), model.p('fc3.bias'));
      const diff = sub(out, y);
      const l = mean(mul(diff, diff));
      backward(l);
      noGrad(() => sgd.step(o.lr));
      return l;
    });
    if (step % 50 === 0 || step === o.steps - 1) {
      const v = await loss.item();
      losses.push(v);
      console.log(`step ${String(step).padStart(4)}  mse ${v.toFixed(5)}`);
    }
    loss.dispose();
  }
  const ms = performance.now() - t0;
  console.log(
    `trained ${o.steps} steps in ${(ms / 1000).toFixed(1)} s on ${rt.adapterDescription}; loss ${losses[0].toFixed(4)} -> ${losses[losses.length - 1].toFixed(4)}`,
  );
  model.destroy();
  sgd.destroy();
  rt.destroy();
  return { first: losses[0], last: losses[losses.length - 1] };
}
