// TensorFlow.js's WebGPU backend on the same Dawn GPUDevice as our engine, so both run on one
// adapter in one process and a side-by-side comparison measures kernels, not devices.
// WebGPUBackend takes a GPUDevice in its constructor; its module only reads navigator.gpu to
// decide whether WebGPU exists, so navigator.gpu must be set before the module is loaded.
import type { GpuHandle } from '../../engine/index.js';

type Tf = typeof import('@tensorflow/tfjs-core');
type WebGPUBackendClass = typeof import('@tensorflow/tfjs-backend-webgpu').WebGPUBackend;
type WebGPUBackend = InstanceType<WebGPUBackendClass>;

export interface Tfjs {
  tf: Tf;
  backend: WebGPUBackend;
  /** True when tfjs dispatches on the engine's own GPUDevice. */
  sharedDevice: boolean;
  /** Submits what tfjs has recorded and waits until the GPU has finished it. */
  sync(): Promise<void>;
}

let loaded: Promise<Tfjs> | null = null;

/** Registers tfjs's 'webgpu' backend on the engine's device (once per process) and selects it. */
export function setupTfjs(handle: GpuHandle): Promise<Tfjs> {
  loaded ??= load(handle);
  return loaded;
}

async function load(handle: GpuHandle): Promise<Tfjs> {
  if (!handle.gpu)
    throw new Error(
      'setupTfjs: the GpuHandle has no `gpu` object; acquire the device with acquireGpu() so tfjs can share it',
    );
  const nav = (globalThis as { navigator?: { userAgent?: string } }).navigator;
  Object.defineProperty(globalThis, 'navigator', {
    value: { userAgent: nav?.userAgent ?? `Node.js/${process.version}`, gpu: handle.gpu },
    configurable: true,
    writable: true,
  });
  // Module names built at run time: esbuild leaves them external and tsc still checks the types.
  const coreName = '@tensorflow/tfjs-core';
  const webgpuName = '@tensorflow/tfjs-backend-webgpu';
  const tf = (await import(coreName)) as Tf;
  const { WebGPUBackend } = (await import(webgpuName)) as { WebGPUBackend: WebGPUBackendClass };
  const device = handle.device;
  // tfjs registers kernels under the backend name 'webgpu'; replace its self-made device factory.
  tf.removeBackend('webgpu');
  tf.registerBackend('webgpu', () => new WebGPUBackend(device, device.adapterInfo), 10);
  if (!(await tf.setBackend('webgpu')))
    throw new Error('setupTfjs: tfjs could not initialise its WebGPU backend on the shared device');
  await tf.ready();
  const backend = tf.backend() as WebGPUBackend;
  return {
    tf,
    backend,
    sharedDevice: backend.device === device,
    sync: async () => {
      // submitQueue() finishes tfjs's encoder, so its open compute pass must be ended first.
      backend.ensureCommandEncoderReady();
      backend.endComputePassEncoder();
      backend.submitQueue();
      await backend.device.queue.onSubmittedWorkDone();
    },
  };
}
