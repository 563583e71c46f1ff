// Acquiring a GPUDevice: from Dawn (npm package `webgpu`) in Node, from navigator.gpu in a
// browser. Ops never read globals: the device found here is handed to a Runtime.
//
// DENSECL_UNSAFE_APIS=1 (Node) creates Dawn with its allow_unsafe_apis toggle, under which Dawn
// exposes experimental features such as subgroup matrices (tensor cores: the f16 GEMM candidate
// of ops/subgroup-matrix.ts). Opt-in because the toggle is process-wide and unlocks every API
// Dawn has not declared safe, not only that one; a browser decides this by its own flags.
import { SUBGROUP_MATRIX } from './device-profile.js';

/** A region of a GPU buffer that kernels bind; offsets are multiples of 256 bytes. */
export interface BufferRef {
  buffer: GPUBuffer;
  offset: number;
  size: number;
}

export interface GpuHandle {
  device: GPUDevice;
  /** Kept referenced: if Dawn's GPU object is garbage collected, its instance dies under the device. */
  gpu?: GPU;
  adapterDescription: string;
  /** The adapter's identity and subgroup sizes (engine/device-profile.ts reads them). */
  adapterInfo?: GPUAdapterInfo;
  hasTimestamps: boolean;
  /** Waiting for the GPU busy-polls this thread (Dawn in Node), so waits should sleep first. */
  pollsWhileWaiting?: boolean;
  /** Releases Dawn's handle so a Node process can exit. */
  release(): void;
}

const SETUP_HINT = `No WebGPU adapter was found.
On Linux without a GPU, WebGPU needs a Vulkan driver that runs on the CPU (Mesa's lavapipe >= 25).
Run as root:  npm run setup     (installs libvulkan1 and mesa-vulkan-drivers from bookworm-backports)
or see scripts/setup-vulkan.sh for the exact apt commands.`;

const isNode = typeof process !== 'undefined' && !!process.versions?.node;

async function findGpu(adapter?: string): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (!isNode) {
    if (!nav?.gpu)
      throw new Error(
        'navigator.gpu is missing: this browser has no WebGPU (Chrome/Edge 113+, or --enable-unsafe-webgpu).',
      );
    return nav.gpu;
  }
  // The module name is built at run time so browser bundles never try to include Dawn.
  const dawnModule = 'webgpu';
  const dawn = (await import(/* @vite-ignore */ dawnModule).catch((e: { code?: string }) => {
    if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !String(e).includes("'webgpu'")) throw e;
    throw new Error(
      "WebGPU in Node needs the package 'webgpu' (Dawn), an optional peer dependency of densecl-webgpu: npm install webgpu",
    );
  })) as {
    create(flags: string[]): GPU;
    globals: Record<string, unknown>;
  };
  Object.assign(globalThis, dawn.globals);
  const unsafeApis = typeof process !== 'undefined' && process.env.DENSECL_UNSAFE_APIS === '1';
  const unsafe = unsafeApis ? ['enable-dawn-features=allow_unsafe_apis'] : [];
  // Dawn's node binding picks the first adapter whose device name contains `adapter`; it has no
  // way to pick the i-th of several identical GPUs.
  return dawn.create([
    'disable-dawn-features=timestamp_quantization',
    ...unsafe,
    ...(adapter ? [`adapter=${adapter}`] : []),
  ]);
}

export function describeAdapter(adapter: GPUAdapter): string {
  const info = adapter.info;
  const parts = [info.vendor, info.architecture, info.device, info.description].filter((s) => s && s.length > 0);
  return parts.length ? parts.join(' / ') : 'unknown adapter';
}

/**
 * Requests an adapter and a device with the adapter's largest buffer and workgroup limits.
 * `adapter` (Node only): a part of the wanted adapter's device name, e.g. one GPU model of several.
 * (powerPreference is spelled out: the package's declarations name WebGPU interfaces only, see
 * scripts/build-lib.mjs.)
 */
export async function acquireGpu(
  options: { powerPreference?: 'low-power' | 'high-performance'; adapter?: string } = {},
): Promise<GpuHandle> {
  const gpu = await findGpu(options.adapter);
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
  } catch (e) {
    if (!options.adapter) throw e;
    throw new Error(`no WebGPU adapter whose name contains '${options.adapter}': ${(e as Error)?.message ?? e}`);
  }
  if (!adapter)
    throw new Error(options.adapter ? `no WebGPU adapter whose name contains '${options.adapter}'` : SETUP_HINT);
  const hasTimestamps = adapter.features.has('timestamp-query');
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    // Optional features the kernels can use where present (variants are chosen per adapter).
    requiredFeatures: (['timestamp-query', 'subgroups', 'shader-f16', SUBGROUP_MATRIX] as GPUFeatureName[]).filter(
      (f) => adapter.features.has(f),
    ),
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: l.maxComputeWorkgroupSizeY,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    },
  });
  device.addEventListener('uncapturederror', (e) => {
    console.error(`WebGPU error: ${(e as GPUUncapturedErrorEvent).error.message}`);
  });
  return {
    device,
    gpu,
    adapterDescription: describeAdapter(adapter),
    adapterInfo: adapter.info,
    hasTimestamps,
    pollsWhileWaiting: isNode,
    release: () => device.destroy(),
  };
}
