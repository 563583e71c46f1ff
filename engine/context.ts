// The runtime that creation functions (tensor, zeros, randn) use when none is passed. Ops
// themselves always take the runtime of their inputs, so several devices can coexist.
import { Runtime } from './runtime.js';
import { acquireGpu } from './gpu.js';

let current: Runtime | null = null;

/** Acquires a GPU (or wraps the device you pass) and makes it the default runtime. */
export async function init(options: { device?: GPUDevice; adapterDescription?: string; quiet?: boolean } = {}): Promise<Runtime> {
  const handle = options.device
    ? {
        device: options.device,
        adapterDescription: options.adapterDescription ?? 'caller-provided device',
        hasTimestamps: options.device.features.has('timestamp-query'),
        release: () => {},
      }
    : await acquireGpu();
  current = new Runtime(handle);
  if (!options.quiet) console.log(`[engine] WebGPU adapter: ${handle.adapterDescription}`);
  return current;
}

export function setRuntime(rt: Runtime | null): void {
  current = rt;
}

export function runtime(): Runtime {
  if (!current) throw new Error('no GPU runtime: call `await init()` first (or pass a device with init({ device }))');
  return current;
}
