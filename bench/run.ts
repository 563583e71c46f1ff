// Runs the benchmark suites: `npm run bench` runs all, `npm run bench -- matmul conv` some.
// To add a suite, write bench/<name>.ts exporting `run(ctx: BenchContext)` and list it here.
import { createContext, type Suite } from './lib/context.js';
import { writeSummary } from './lib/summary.js';
import { run as matmul } from './matmul.js';
import { run as batchnorm } from './batchnorm.js';
import { run as conv } from './conv.js';
import { run as train_step } from './train_step.js';
import { run as profiler } from './profiler.js';
import { run as memory } from './memory.js';
import { run as comm } from './comm.js';
import { run as gpu } from './gpu.js';
import { run as contrastive } from './contrastive.js';
import { run as replay } from './replay.js';
import { run as loader } from './loader.js';
import { run as adapter } from './adapter.js';

const suites: Record<string, Suite> = {
  matmul,
  batchnorm,
  conv,
  train_step,
  profiler,
  memory,
  comm,
  contrastive,
  replay,
  loader,
  gpu,
  adapter,
};

// Suites that run only when named: gpu's and replay's default sizes are for a GPU (ResNet-50 at 224 px:
// minutes per step on lavapipe); adapter is a description, not a measurement.
const onlyWhenNamed = new Set(['gpu', 'replay', 'adapter']);
const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !(w in suites));
if (unknown.length) {
  console.error(`unknown suite(s): ${unknown.join(', ')}; available: ${Object.keys(suites).join(', ')}`);
  process.exit(2);
}
const ctx = await createContext();
console.log(`[bench] adapter: ${ctx.adapter}`);
try {
  const chosen = wanted.length ? wanted : Object.keys(suites).filter((s) => !onlyWhenNamed.has(s));
  for (const name of chosen) {
    console.log(`[bench] suite ${name}`);
    await suites[name](ctx);
  }
  console.log(`[bench] wrote ${writeSummary(ctx.adapter, chosen)}`);
} finally {
  ctx.rt.destroy();
}
