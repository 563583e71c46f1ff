// Quick timing of conv2d's three kernels on this machine's adapter, for development:
//   node scripts/time-conv.mjs [--shapes=name,...] [--reps=3] [--batch=8] [--kernels=auto|classic|tiled] [--tile=8x8|4x8|8x4|4x4]
// Prints ms (best of reps) and GFLOP/s for forward, input gradient and weight gradient.
import { init, setRuntime, randn, noGrad, type Tensor } from '../engine/index.js';
import {
  conv2d,
  conv2dInputGrad,
  conv2dWeightGrad,
  conv2dGeometry,
  conv2dPlanFor,
  TILED_TILES,
  type Conv2dOptions,
  type TiledTileName,
} from '../engine/ops/conv2d/index.js';
import { overrideKernels } from '../engine/device-profile.js';

interface Shape {
  name: string;
  C: number;
  O: number;
  H: number;
  K: number;
  stride: number;
  pad: number;
}
const SHAPES: Shape[] = [
  { name: 'r18.stem', C: 3, O: 64, H: 224, K: 7, stride: 2, pad: 3 },
  { name: 'r18.l1', C: 64, O: 64, H: 56, K: 3, stride: 1, pad: 1 },
  { name: 'r18.l2.down', C: 64, O: 128, H: 56, K: 3, stride: 2, pad: 1 },
  { name: 'r18.l2', C: 128, O: 128, H: 28, K: 3, stride: 1, pad: 1 },
  { name: 'r18.l2.ds', C: 64, O: 128, H: 56, K: 1, stride: 2, pad: 0 },
  { name: 'r18.l3.down', C: 128, O: 256, H: 28, K: 3, stride: 2, pad: 1 },
  { name: 'r18.l3.ds', C: 128, O: 256, H: 28, K: 1, stride: 2, pad: 0 },
  { name: 'r18.l3', C: 256, O: 256, H: 14, K: 3, stride: 1, pad: 1 },
  { name: 'r18.l4.down', C: 256, O: 512, H: 14, K: 3, stride: 2, pad: 1 },
  { name: 'r18.l4.ds', C: 256, O: 512, H: 14, K: 1, stride: 2, pad: 0 },
  { name: 'r18.l4', C: 512, O: 512, H: 7, K: 3, stride: 1, pad: 1 },
  // Deep layers at the 64x64 demo size.
  { name: 'r18.l3@64', C: 256, O: 256, H: 4, K: 3, stride: 1, pad: 1 },
  { name: 'r18.l4.down@64', C: 256, O: 512, H: 4, K: 3, stride: 2, pad: 1 },
  { name: 'r18.l4.ds@64', C: 256, O: 512, H: 4, K: 1, stride: 2, pad: 0 },
  { name: 'r18.l4@64', C: 512, O: 512, H: 2, K: 3, stride: 1, pad: 1 },
  { name: 'r50.1x1', C: 256, O: 64, H: 56, K: 1, stride: 1, pad: 0 },
  { name: 'r50.l3.1x1', C: 1024, O: 256, H: 14, K: 1, stride: 1, pad: 0 },
  { name: 'r50.l4.1x1a', C: 512, O: 2048, H: 7, K: 1, stride: 1, pad: 0 },
  { name: 'r50.l4.1x1b', C: 2048, O: 512, H: 7, K: 1, stride: 1, pad: 0 },
];

const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, '').split(/=(.*)/s)));
const reps = Number(args.reps ?? 3);
const batch = Number(args.batch ?? 8);
const only = args.shapes ? new Set(String(args.shapes).split(',')) : null;
const dirs = args.dirs ? String(args.dirs).split(',') : ['fwd', 'dx', 'dw'];
// --idle=ms submits, then sleeps that long before waiting: dawn.node busy-polls the main thread
// while a wait is pending, which takes CPU from the driver's threads on a small machine.
const idleMs = Number(args.idle ?? 0);

const cores = Number(args.cores ?? (await import('node:os')).availableParallelism());
const rt = await init({ quiet: true });
setRuntime(rt);
if (args.kernels && !['auto', 'classic', 'tiled'].includes(args.kernels))
  throw new Error(`--kernels=${args.kernels}: use auto, classic or tiled`);
if (args.tile && !(args.tile in TILED_TILES))
  throw new Error(`--tile=${args.tile}: use one of ${Object.keys(TILED_TILES).join(', ')}`);
overrideKernels(rt.profile, {
  ...(args.kernels && args.kernels !== 'auto' ? { conv: args.kernels as 'classic' | 'tiled' } : {}),
  ...(args.tile ? { convTile: args.tile as TiledTileName } : {}),
});
console.log(
  `adapter: ${rt.adapterDescription}; kernels: ${args.kernels ?? 'auto'}${args.tile ? ` tile ${args.tile}` : ''}`,
);

// Wall time, and the process's CPU time (lavapipe runs the kernels on threads of this process):
// when other work shares the cores, CPU time / cores still estimates the uncontended time.
async function time(fn: () => Tensor): Promise<{ ms: number; cpuMs: number }> {
  let best = { ms: Infinity, cpuMs: Infinity };
  for (let i = 0; i <= reps; i++) {
    await rt.sync();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const y = fn();
    if (idleMs > 0) {
      rt.flush();
      await new Promise((r) => setTimeout(r, idleMs));
    }
    await rt.sync();
    const ms = performance.now() - t0;
    const c = process.cpuUsage(c0);
    y.dispose();
    // The first run compiles pipelines.
    if (i > 0) best = { ms: Math.min(best.ms, ms), cpuMs: Math.min(best.cpuMs, (c.user + c.system) / 1000) };
  }
  return best;
}

for (const s of SHAPES) {
  if (only && !only.has(s.name)) continue;
  const opts: Conv2dOptions = { stride: s.stride, padding: s.pad };
  const xs = [batch, s.C, s.H, s.H];
  const ws = [s.O, s.C, s.K, s.K];
  const g = conv2dGeometry(xs, ws, opts);
  const flops = 2 * g.N * g.O * g.OH * g.OW * g.C * g.KH * g.KW;
  const x = randn(xs, 1);
  const w = randn(ws, 2, 0.05);
  const dy = randn([g.N, g.O, g.OH, g.OW], 3);
  const plan = conv2dPlanFor(rt, xs, ws, opts);
  const t = plan.tiled;
  const row = [
    `${s.name.padEnd(12)} ${(t ? `tiled ${t.tile}/${t.inputGradTile}/${t.weightGradTile} dw ${t.chunks} chunk(s)` : plan.path).padEnd(34)}`,
  ];
  for (const d of dirs) {
    const { ms, cpuMs } = await time(() =>
      noGrad(() =>
        d === 'fwd'
          ? conv2d(x, w, null, opts)
          : d === 'dx'
            ? conv2dInputGrad(dy, w, xs, opts)
            : conv2dWeightGrad(x, dy, ws, opts),
      ),
    );
    const est = cpuMs / cores;
    row.push(
      `${d} ${ms.toFixed(0).padStart(6)} ms ${(flops / ms / 1e6).toFixed(2).padStart(6)} GF/s (cpu/${cores} ${est.toFixed(0).padStart(6)} ms ${(flops / est / 1e6).toFixed(2).padStart(6)})`,
    );
  }
  console.log(row.join('  |  '));
  for (const t of [x, w, dy]) t.dispose();
}
rt.destroy();
