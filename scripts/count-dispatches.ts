// Dispatches per training step, by op and kernel, and the JS+GPU time of a step on this adapter.
//   node scripts/count-dispatches.mjs [--arch resnet50] [--width 0.25] [--img 64] [--batch 4] [--steps 4] [--gpu-kernels] [--profile] [--record-only]
// --gpu-kernels takes the kernel families a GPU gets (tiled GEMM, convolution, contrastive and
// correspondence kernels, one-pass batch norm), so the counts are those of a GPU step; --profile adds GPU ms per kernel.
// --record-only counts the second step's dispatches as they are recorded and exits without
// waiting for the GPU: the way to count a full-size step on a CPU driver.
import { init, profile } from '../engine/index.js';
import type { DispatchInfo } from '../engine/runtime.js';
import { Trainer } from '../train/trainer.js';
import { Rng } from '../engine/random.js';
import type { Arch } from '../models/resnet.js';

const argv = process.argv.slice(2);
const arg = (name: string, dflt: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
const arch = arg('arch', 'resnet50') as Arch;
const width = Number(arg('width', '0.25'));
const imgSize = Number(arg('img', '64'));
const batchSize = Number(arg('batch', '4'));
const steps = Number(arg('steps', '4'));

const gpuKernels = {
  gemm: 'tiled',
  conv: 'tiled',
  contrastive: 'tiled',
  correspondence: 'tiled',
  batchnorm: 'one-pass',
} as const;
const rt = await init({
  quiet: true,
  profile: argv.includes('--gpu-kernels') ? { subgroups8: false, kernels: gpuKernels } : {},
});
const trainer = new Trainer(rt, {
  arch,
  width,
  imgSize,
  batchSize,
  smallStem: false,
  bnGroups: 2,
  queueSize: 4 * batchSize,
  dim: 32,
});
const rng = new Rng(7);
const n = batchSize * 3 * imgSize * imgSize;
const batch = () => Float32Array.from({ length: n }, () => rng.normal());
const q = batch();
const k = batch();

const counts = new Map<string, number>();
let counting = false;
rt.observer = {
  timestampWrites(info: DispatchInfo) {
    if (counting)
      counts.set(
        `${info.op} | ${info.kernel.split('(')[0].trim()}`,
        (counts.get(`${info.op} | ${info.kernel.split('(')[0].trim()}`) ?? 0) + 1,
      );
    return undefined;
  },
  beforeSubmit() {},
  afterSubmit() {},
};
if (argv.includes('--record-only')) {
  void trainer.trainStep(q, k); // registers the weight layouts, compiles the pipelines
  counting = true;
  const d0 = rt.stats.dispatches;
  void trainer.trainStep(q, k);
  console.log(
    `${arch} width ${width} ${imgSize}px batch ${batchSize}: ${rt.stats.dispatches - d0} dispatches recorded in step 2`,
  );
  for (const [key, c] of [...counts].sort((a, b) => b[1] - a[1])) console.log(`${String(c).padStart(5)}  ${key}`);
  process.exit(0);
}
await trainer.trainStep(q, k); // compiles the pipelines
const perStep: number[] = [];
const ms: number[] = [];
// CPU time of the whole process (JS and lavapipe's worker threads): steadier than wall time on a shared machine.
const cpu: number[] = [];
for (let s = 0; s < steps; s++) {
  counting = s === 0;
  const d0 = rt.stats.dispatches;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  await trainer.trainStep(q, k);
  const c1 = process.cpuUsage(c0);
  ms.push(performance.now() - t0);
  cpu.push((c1.user + c1.system) / 1000);
  perStep.push(rt.stats.dispatches - d0);
}
console.log(`adapter: ${rt.adapterDescription}`);
console.log(`${arch} width ${width} ${imgSize}px batch ${batchSize}: dispatches per step ${perStep.join(', ')}`);
const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1].toFixed(0);
console.log(`wall ms per step: ${ms.map((m) => m.toFixed(0)).join(', ')} (median ${median(ms)})`);
console.log(
  `CPU ms per step (process, all threads): ${cpu.map((m) => m.toFixed(0)).join(', ')} (median ${median(cpu)})`,
);
for (const [key, c] of [...counts].sort((a, b) => b[1] - a[1])) console.log(`${String(c).padStart(5)}  ${key}`);
rt.observer = null;
if (argv.includes('--profile')) {
  // GPU ms per kernel (timestamp queries) over one step, by shader.
  let pending: Promise<unknown> | null = null;
  const res = await profile(rt, () => {
    pending = trainer.trainStep(q, k);
  });
  await pending;
  const byKernel = new Map<string, number>();
  for (const r of res.records)
    byKernel.set(r.kernel.split('[')[0], (byKernel.get(r.kernel.split('[')[0]) ?? 0) + r.gpuMs);
  const total = res.records.reduce((a, r) => a + r.gpuMs, 0);
  console.log(`profiled step: ${total.toFixed(1)} ms of kernel time (${res.method})`);
  for (const [name, t] of [...byKernel].sort((a, b) => b[1] - a[1]).slice(0, 15))
    console.log(`${t.toFixed(1).padStart(8)} ms  ${name}`);
  const bn = [...byKernel].filter(([name]) => name.startsWith('batchnorm')).reduce((a, [, t]) => a + t, 0);
  console.log(`batch norm kernels: ${bn.toFixed(1)} ms`);
}
trainer.destroy();
process.exit(0);
