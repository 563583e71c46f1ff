// The runtime that creation functions (tensor, zeros, randn) use when none is passed. Ops
// themselves always take the runtime of their inputs, so several devices can coexist.
import { Runtime } from './runtime.js';
import { acquireGpu } from './gpu.js';
import type { ProfileOverrides } from './device-profile.js';
import { KERNEL_VERSION, parseTuneMode, type TuneMode } from './tune/tuner.js';
import { defaultCachePath, diskStore } from './tune/disk.js';

let current: Runtime | null = null;

export interface InitOptions {
  device?: GPUDevice;
  adapterDescription?: string;
  quiet?: boolean;
  /** Overrides of the device profile's choices (tests, benchmarks). */
  profile?: ProfileOverrides;
  /**
   * Kernel autotuning (engine/tune/tuner.ts): 'off' (default), 'cached', 'on'. In Node the
   * default comes from DENSECL_TUNE, and decisions persist in `tuneCacheFile` (default
   * $DENSECL_TUNE_CACHE or ~/.cache/densecl-webgpu/tune.json); in a browser they stay in memory
   * (rt.tuner.export() / import()).
   */
  tune?: TuneMode;
  tuneCacheFile?: string;
}

const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env;

/** Acquires a GPU (or wraps the device you pass) and makes it the default runtime. */
export async function init(options: InitOptions = {}): Promise<Runtime> {
  const handle = options.device
    ? {
        device: options.device,
        adapterDescription: options.adapterDescription ?? 'caller-provided device',
        adapterInfo: (options.device as { adapterInfo?: GPUAdapterInfo }).adapterInfo,
        hasTimestamps: options.device.features.has('timestamp-query'),
        release: () => {},
      }
    : await acquireGpu();
  const rt = new Runtime(handle, options.profile);
  const mode = options.tune ?? parseTuneMode(env?.DENSECL_TUNE, 'DENSECL_TUNE');
  const file = env && mode !== 'off' ? (options.tuneCacheFile ?? (await defaultCachePath())) : null;
  rt.tuner.configure({ mode, store: file ? await diskStore(file, KERNEL_VERSION) : undefined });
  current = rt;
  if (!options.quiet) console.log(`[engine] WebGPU adapter: ${handle.adapterDescription}`);
  return rt;
}

export function setRuntime(rt: Runtime | null): void {
  current = rt;
}

export function runtime(): Runtime {
  if (!current) throw new Error('no GPU runtime: call `await init()` first (or pass a device with init({ device }))');
  return current;
}
