// This machine's measured peaks, the yardstick for the profiler's "share of peak" columns: an
// FMA-bound kernel for FLOP/s and a streaming copy for memory bandwidth, each the best of a few
// timed dispatches, plus the time of an empty-ish dispatch (the floor under every kernel).
// Measured once per runtime (about a second on a CPU Vulkan driver) and cached.
import fmaSrc from './fma.wgsl';
import copySrc from './copy.wgsl';
import { profile } from '../profiler.js';
import type { Runtime } from '../runtime.js';

export interface Peak {
  gflops: number;
  gbps: number;
  /** Median GPU time of a one-workgroup dispatch. */
  launchMs: number;
  /** 'timestamps' or 'coarse', as the profiler that timed it. */
  method: string;
}

const cache = new WeakMap<Runtime, Promise<Peak>>();
const REPEATS = 6;
const FMA_WG = 64;
const COPY_WG = 256;
/** The FMA kernel is run longer until a dispatch takes this long, so launch cost is negligible. */
const MIN_MS = 5;

/** The peaks of `rt`'s device, measured on first call. */
export function measurePeak(rt: Runtime): Promise<Peak> {
  let p = cache.get(rt);
  if (!p) {
    p = run(rt);
    cache.set(rt, p);
    p.catch(() => cache.delete(rt));
  }
  return p;
}

async function run(rt: Runtime): Promise<Peak> {
  const storage = GPUBufferUsage.STORAGE;
  const fma = rt.kernel('peak_fma', fmaSrc, { WG: FMA_WG });
  const copy = rt.kernel('peak_copy', copySrc, { WG: COPY_WG });
  const groups = 1024;
  const out = rt.device.createBuffer({ size: groups * FMA_WG * 16, usage: storage });
  const vec4s = Math.floor(Math.min(64 << 20, rt.limits.maxStorageBufferBindingSize) / 16);
  const src = rt.device.createBuffer({ size: vec4s * 16, usage: storage });
  const dst = rt.device.createBuffer({ size: vec4s * 16, usage: storage });
  try {
    let gflops = 0;
    for (let iters = 64; ; iters *= 4) {
      const flops = groups * FMA_WG * iters * 8 * 4 * 2;
      const r = await profile(
        rt,
        () => {
          for (let i = 0; i < REPEATS; i++)
            rt.dispatch(fma, {
              params: { iters, seed: 1e-7 },
              buffers: [out],
              workgroups: [groups, 1, 1],
              op: 'peak.fma',
              flops,
            });
        },
        { groupMs: 0 },
      );
      const best = Math.min(...r.records.map((x) => x.gpuMs));
      gflops = flops / (best * 1e6);
      if (best >= MIN_MS || iters >= 1 << 16) break;
    }
    const bytes = vec4s * 32;
    const rc = await profile(
      rt,
      () => {
        for (let i = 0; i < REPEATS; i++)
          rt.dispatch(copy, {
            params: { n: vec4s },
            buffers: [src, dst],
            workgroups: rt.grid1d(vec4s, COPY_WG),
            op: 'peak.copy',
            bytes,
          });
      },
      { groupMs: 0 },
    );
    const gbps = bytes / (Math.min(...rc.records.map((x) => x.gpuMs)) * 1e6);
    const rl = await profile(
      rt,
      () => {
        for (let i = 0; i < 16; i++)
          rt.dispatch(copy, {
            params: { n: COPY_WG },
            buffers: [src, dst],
            workgroups: [1, 1, 1],
            op: 'peak.launch',
            bytes: COPY_WG * 32,
          });
      },
      { groupMs: 0 },
    );
    const launches = rl.records.map((x) => x.gpuMs).sort((a, b) => a - b);
    return { gflops, gbps, launchMs: launches[launches.length >> 1], method: rc.method };
  } finally {
    await rt.sync();
    for (const b of [out, src, dst]) b.destroy();
  }
}
