// What every benchmark suite receives. A suite is a file bench/<name>.ts (other than run.ts)
// that exports `async function run(ctx: BenchContext): Promise<void>` and is listed in
// bench/run.ts; it times its cases with lib/timing.ts and writes lib/report.ts's files.
import { acquireGpu, Runtime, setRuntime, type GpuHandle } from '../../engine/index.js';
import { setupTfjs, type Tfjs } from './tfjs.js';
import { DEFAULT_TIMING, QUICK_TIMING, type TimingOptions } from './timing.js';

export interface BenchContext {
  /** Our engine's runtime; also the default runtime for tensor(), zeros(), ... */
  rt: Runtime;
  gpu: GpuHandle;
  adapter: string;
  timing: TimingOptions;
  /** TensorFlow.js's WebGPU backend on the same GPUDevice (loaded on first call). */
  tfjs(): Promise<Tfjs>;
}

export type Suite = (ctx: BenchContext) => Promise<void>;

/** BENCH_QUICK=1 takes fewer samples (a smoke run; figures are noisier). */
export async function createContext(): Promise<BenchContext> {
  const gpu = await acquireGpu();
  const rt = new Runtime(gpu);
  setRuntime(rt);
  return {
    rt,
    gpu,
    adapter: gpu.adapterDescription,
    timing: process.env.BENCH_QUICK ? QUICK_TIMING : DEFAULT_TIMING,
    tfjs: () => setupTfjs(gpu),
  };
}
