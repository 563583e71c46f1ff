// What a Runtime knows about its device, read once from the adapter and the device, and the
// kernel choices that follow from it. Plans read `rt.profile` instead of module globals; tests
// and benchmarks pass overrides (init({ profile })), change them for a while (overrideKernels)
// or force a kernel per call.
//
//   deviceProfile(device, info, overrides?)  the profile of a device (engine/gpu.ts supplies info)
//   profile.adapter.key                      "vendor|architecture|device|description": the tuning
//                                            cache's key (Dawn's description carries the driver)
//   profile.subgroups8                       8-wide subgroups (lavapipe on AVX2): the sg8 kernels
//   profile.cpu                              a CPU driver (lavapipe, SwiftShader, WARP)
//   profile.kernels                          the kernel families to use when nothing is tuned
//
// A candidate kernel "fits" when its workgroup storage and invocations are within the limits
// (fitsWorkgroup); the GPU-class kernels keep to 16 KiB unless the device allows more.

import type { TiledTileName } from './ops/conv2d/tiles.js';

export interface AdapterIdentity {
  vendor: string;
  architecture: string;
  device: string;
  /** Dawn puts the driver and its version here (e.g. "NVIDIA: 580.159.04 ..."). */
  description: string;
  /** vendor|architecture|device|description: what tuning decisions are cached under. */
  key: string;
}

export interface KernelChoices {
  /**
   * GEMM without tuning: 'lanes' takes the first applicable of the per-lane kernels (sg8, vec4,
   * scalar: fastest on CPU drivers, where barriers are expensive); 'tiled' the workgroup-memory
   * tiled kernels (GPUs), with a tile size picked from the product's shape.
   */
  gemm: 'lanes' | 'tiled';
  /** Convolutions: 'classic' (per-lane implicit GEMM, tuned on lavapipe) or 'tiled' (ops/conv2d/tiled.ts). */
  conv: 'classic' | 'tiled';
  /** The queue contrastive loss: 'gemm' (logits GEMM + row kernels) or 'tiled' (fused, no R x K buffer). */
  contrastive: 'gemm' | 'tiled';
  /** DenseCL's correspondence argmax: 'direct' (one invocation per cell) or 'tiled'. */
  correspondence: 'direct' | 'tiled';
  /**
   * Batch norm in training: 'two-pass' (chunk partials, a per-channel merge, then the
   * elementwise pass: three dispatches each way) or 'one-pass' (two each way: a workgroup per
   * channel for the statistics of channels of at most bnOnePassMax values, and for larger ones
   * the merge folded into the elementwise pass; engine/ops/batchnorm.ts). On lavapipe the
   * one-pass kernels' barriers cost more than the dispatches they save (scripts/count-dispatches.mjs).
   */
  batchnorm: 'two-pass' | 'one-pass';
  /** Under 'one-pass', the largest channel (N * H * W values) for the workgroup-per-channel kernels; null: ONE_PASS_MAX (tests lower it). */
  bnOnePassMax: number | null;
  /** Classic convolutions use the 8-wide subgroup kernels where the device has them; false: the per-lane ones (tests compare the two). */
  convSubgroups: boolean;
  /** One tile for every tiled convolution (tests, benchmarks); null: the default rule's, or the tuner's where tuning is on. */
  convTile: TiledTileName | null;
  /** Output channels from which classic convolutions of a few output pixels fold into batch GEMMs; null: ops/conv2d/plan.ts's default (tests lower it). */
  convFoldMinOut: number | null;
}

/** One shape of subgroup matrix multiply the adapter offers (Dawn's GPUSubgroupMatrixConfig). */
export interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

export interface DeviceProfile {
  adapter: AdapterIdentity;
  features: { subgroups: boolean; shaderF16: boolean; timestamps: boolean; subgroupMatrix: boolean };
  /** The adapter's subgroup matrix shapes where the device has the feature, else none. */
  subgroupMatrixConfigs: SubgroupMatrixConfig[];
  subgroupMinSize: number;
  subgroupMaxSize: number;
  /** Whether the device runs 8-wide subgroups, which the sg8 kernels assume. */
  subgroups8: boolean;
  cpu: boolean;
  limits: {
    workgroupStorageBytes: number;
    invocationsPerWorkgroup: number;
    workgroupSizeX: number;
    workgroupSizeY: number;
    storageBuffersPerStage: number;
  };
  kernels: KernelChoices;
}

export interface ProfileOverrides {
  subgroups8?: boolean;
  kernels?: Partial<KernelChoices>;
}

/** Dawn's experimental feature name for subgroup matrices (engine/gpu.ts requests it where offered). */
export const SUBGROUP_MATRIX = 'chromium-experimental-subgroup-matrix';

const CPU_DRIVER = /llvmpipe|lavapipe|swiftshader|\bwarp\b|software/i;

export function adapterIdentity(info: Partial<GPUAdapterInfo> | undefined): AdapterIdentity {
  const vendor = info?.vendor ?? '';
  const architecture = info?.architecture ?? '';
  const device = info?.device ?? '';
  const description = info?.description ?? '';
  return { vendor, architecture, device, description, key: [vendor, architecture, device, description].join('|') };
}

const SETTINGS = { convSubgroups: true, convTile: null, convFoldMinOut: null, bnOnePassMax: null } as const;
const CPU_KERNELS: KernelChoices = {
  gemm: 'lanes',
  conv: 'classic',
  contrastive: 'gemm',
  correspondence: 'direct',
  batchnorm: 'two-pass',
  ...SETTINGS,
};
const GPU_KERNELS: KernelChoices = {
  gemm: 'tiled',
  conv: 'tiled',
  contrastive: 'tiled',
  correspondence: 'tiled',
  batchnorm: 'one-pass',
  ...SETTINGS,
};

/** The profile of `device`; `info` is its adapter's (device.adapterInfo where the browser has it). */
export function deviceProfile(
  device: GPUDevice,
  info?: Partial<GPUAdapterInfo>,
  overrides: ProfileOverrides = {},
): DeviceProfile {
  info ??= (device as { adapterInfo?: GPUAdapterInfo }).adapterInfo;
  const adapter = adapterIdentity(info);
  const subgroups = device.features.has('subgroups');
  const subgroupMinSize = (info as { subgroupMinSize?: number } | undefined)?.subgroupMinSize ?? 0;
  const subgroupMaxSize = (info as { subgroupMaxSize?: number } | undefined)?.subgroupMaxSize ?? 0;
  const subgroups8 = overrides.subgroups8 ?? (subgroups && subgroupMinSize === 8 && subgroupMaxSize === 8);
  const cpu = CPU_DRIVER.test(`${adapter.architecture} ${adapter.device} ${adapter.description}`);
  const l = device.limits;
  const subgroupMatrix = device.features.has(SUBGROUP_MATRIX as GPUFeatureName);
  const configs = (info as { subgroupMatrixConfigs?: SubgroupMatrixConfig[] } | undefined)?.subgroupMatrixConfigs;
  return {
    adapter,
    features: {
      subgroups,
      shaderF16: device.features.has('shader-f16'),
      timestamps: device.features.has('timestamp-query'),
      subgroupMatrix,
    },
    subgroupMatrixConfigs: subgroupMatrix
      ? [...(configs ?? [])].map((c) => ({
          componentType: c.componentType,
          resultComponentType: c.resultComponentType,
          M: c.M,
          N: c.N,
          K: c.K,
        }))
      : [],
    subgroupMinSize,
    subgroupMaxSize,
    subgroups8,
    cpu,
    limits: {
      workgroupStorageBytes: l.maxComputeWorkgroupStorageSize,
      invocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      workgroupSizeX: l.maxComputeWorkgroupSizeX,
      workgroupSizeY: l.maxComputeWorkgroupSizeY,
      storageBuffersPerStage: l.maxStorageBuffersPerShaderStage,
    },
    // On CPU drivers (barriers and workgroup memory are slow there) the per-lane kernels measured
    // 2-100x faster than the workgroup-tiled ones (bench/results/matmul_variants.md, contrastive.md;
    // conv: scripts/time-conv.ts); GPUs get the tiled families (not yet measured on one).
    kernels: { ...(cpu || subgroups8 ? CPU_KERNELS : GPU_KERNELS), ...overrides.kernels },
  };
}

/** Changes some kernel choices of a runtime's profile (tests, benchmarks); the function returned restores the previous ones. */
export function overrideKernels(p: DeviceProfile, changes: Partial<KernelChoices>): () => void {
  const before = p.kernels;
  p.kernels = { ...before, ...changes };
  return () => void (p.kernels = before);
}

/** Why a kernel with this workgroup does not fit the device, or null when it does. */
export function workgroupProblem(p: DeviceProfile, w: { x: number; y: number; storageBytes: number }): string | null {
  if (w.x * w.y > p.limits.invocationsPerWorkgroup)
    return `${w.x * w.y} invocations per workgroup exceed the device's ${p.limits.invocationsPerWorkgroup}`;
  if (w.x > p.limits.workgroupSizeX || w.y > p.limits.workgroupSizeY)
    return `workgroup ${w.x}x${w.y} exceeds the device's ${p.limits.workgroupSizeX}x${p.limits.workgroupSizeY}`;
  if (w.storageBytes > p.limits.workgroupStorageBytes)
    return `${w.storageBytes} bytes of workgroup storage exceed the device's ${p.limits.workgroupStorageBytes}`;
  return null;
}
