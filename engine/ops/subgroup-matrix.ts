// The subgroup-matrix GEMM (shaders/matmul/subgroup_matrix.wgsl: f16 operands on the adapter's
// matrix units, f32 results), a candidate of f16 matmul (ops/matmul.ts) where the device has
// Dawn's experimental feature. It was written without such a device, so it is used only after
// it has proved itself on this one: each pair of transposes (both epilogues) is compiled and run
// once, apart from the runtime's work (own pipeline, buffers and command buffer), on a random
// problem beside the tiled f16 kernel; a compile error or a mismatch prints a warning naming the
// kernel and rules it out for the rest of the process. Until its check has passed a
// specialisation is no candidate, and ops/matmul.ts does not let the tuner decide its class.
//
//   subgroupMatrixShape(profile)       the kernel's shape on this device, or why there is none
//   subgroupMatrixKernel(rt, spec, unscale, runs)  the checked kernel, or null (starting the check if due)
//   checkSubgroupMatrix(rt, spec, ref) the check itself (awaitable; run once per specialisation)
import sgmSrc from '../../shaders/matmul/subgroup_matrix.wgsl';
import { halfBits } from '../half.js';
import { type Defines, type Kernel, kernelKey, specialize } from '../kernel.js';
import type { Runtime } from '../runtime.js';
import { packParams, type ParamValues, type ShaderInterface } from '../uniforms.js';
import { type DeviceProfile, type SubgroupMatrixConfig, workgroupProblem } from '../device-profile.js';
import { Rng } from '../random.js';

/** What the kernel is specialised for on a device. */
export interface SubgroupMatrixShape {
  config: SubgroupMatrixConfig;
  /** Defines of the shader: matrix and subgroup sizes, subgroups per workgroup and their tiles. */
  defines: Record<'SM' | 'SN' | 'SK' | 'SG' | 'WM' | 'WN' | 'FM' | 'FN' | 'KS', number>;
  /** The block of C a workgroup computes. */
  rows: number;
  cols: number;
  threads: number;
  storageBytes: number;
}

/** What one check covers: a pair of transposes, with and without the unscale epilogue (ops/grad-scale.ts). */
export interface SubgroupMatrixSpec {
  transA: boolean;
  transB: boolean;
}

/** 2 x 2 subgroups of 2 x 2 result matrices each, K slices of two matrix steps: a 64 x 64 block
 *  for 16 x 16 matrices (not tuned: no device with the feature has run it yet). */
const LAYOUT = { WM: 2, WN: 2, FM: 2, FN: 2, KS: 2 };

/**
 * The adapter's f16 x f16 -> f32 configuration the kernel uses (the first listed: Vulkan lists
 * the preferred ones first), with the workgroup around it; or a string saying why there is none.
 */
export function subgroupMatrixShape(p: DeviceProfile): SubgroupMatrixShape | string {
  if (!p.features.subgroupMatrix)
    return 'the device has no subgroup matrices (Dawn exposes them under DENSECL_UNSAFE_APIS=1 where the driver has them)';
  if (!p.features.shaderF16 || !p.features.subgroups) return 'subgroup matrices of f16 need shader-f16 and subgroups';
  const config = p.subgroupMatrixConfigs.find((c) => c.componentType === 'f16' && c.resultComponentType === 'f32');
  if (!config)
    return `the adapter offers no f16 x f16 -> f32 subgroup matrix (configs: ${JSON.stringify(p.subgroupMatrixConfigs)})`;
  // The kernel maps subgroup ids to tiles, so it needs to know how many subgroups a workgroup has.
  if (p.subgroupMinSize !== p.subgroupMaxSize || p.subgroupMaxSize === 0)
    return `subgroup sizes vary (${p.subgroupMinSize}..${p.subgroupMaxSize})`;
  const { WM, WN, FM, FN, KS } = LAYOUT;
  const rows = WM * FM * config.M;
  const cols = WN * FN * config.N;
  const bk = KS * config.K;
  const threads = WM * WN * p.subgroupMaxSize;
  const storageBytes = 2 * (rows * bk + bk * cols) + 4 * rows * cols;
  const problem = workgroupProblem(p, { x: threads, y: 1, storageBytes });
  if (problem) return problem;
  return {
    config,
    defines: { SM: config.M, SN: config.N, SK: config.K, SG: p.subgroupMaxSize, ...LAYOUT },
    rows,
    cols,
    threads,
    storageBytes,
  };
}

/** How a check runs one GEMM: a kernel, its dispatches, and (for the reference) nothing else. */
export interface GemmRun {
  kernel: Kernel;
  dispatches: { params: ParamValues; workgroups: [number, number, number] }[];
}

/** The problem a check multiplies: [batch, M, K] x [batch, K, N] in the spec's layouts. */
export interface CheckProblem {
  batch: number;
  M: number;
  N: number;
  K: number;
}

/** What the check needs from ops/matmul.ts (which imports this file): both kernels' runs of a problem. */
export interface CheckRuns {
  /** The tiled f16 kernel's run, the reference. */
  reference(p: CheckProblem, unscale: boolean): GemmRun;
  /** The subgroup-matrix kernel's run with the given (not yet trusted) kernel. */
  candidate(p: CheckProblem, kernel: Kernel): GemmRun;
}

type Verdict = { ok: true; plain: Kernel; unscale: Kernel } | { ok: false; reason: string };

interface Gate {
  source: string;
  verdicts: Map<string, Promise<Verdict>>;
  settled: Map<string, Verdict>;
}

const gates = new WeakMap<Runtime, Gate>();

function gateOf(rt: Runtime): Gate {
  let g = gates.get(rt);
  if (!g) {
    g = { source: sgmSrc, verdicts: new Map(), settled: new Map() };
    gates.set(rt, g);
  }
  return g;
}

/** Replaces the kernel source on `rt` (null: the real one) and forgets every verdict (tests: a
 *  stand-in with the same placeholders, bindings and dispatch geometry that runs without the feature). */
export function substituteSubgroupMatrixSource(rt: Runtime, source: string | null): void {
  gates.set(rt, { source: source ?? sgmSrc, verdicts: new Map(), settled: new Map() });
}

function definesOf(shape: SubgroupMatrixShape, spec: SubgroupMatrixSpec, unscale: boolean): Defines {
  return { ...shape.defines, TRANS_A: spec.transA, TRANS_B: spec.transB, UNSCALE: unscale };
}

/** The key a check is known by: its kernel without the epilogue. */
const checkKey = (shape: SubgroupMatrixShape, spec: SubgroupMatrixSpec) =>
  kernelKey('matmul_sgmat', definesOf(shape, spec, false));

/** 'passed', 'failed', 'pending' or 'unchecked' for this specialisation on rt. */
export function subgroupMatrixState(
  rt: Runtime,
  spec: SubgroupMatrixSpec,
): 'passed' | 'failed' | 'pending' | 'unchecked' {
  const shape = subgroupMatrixShape(rt.profile);
  if (typeof shape === 'string') return 'failed';
  const key = checkKey(shape, spec);
  const gate = gateOf(rt);
  const v = gate.settled.get(key);
  if (v) return v.ok ? 'passed' : 'failed';
  return gate.verdicts.has(key) ? 'pending' : 'unchecked';
}

/** The checked kernel for this specialisation, or null (then its check is started, if not yet). */
export function subgroupMatrixKernel(
  rt: Runtime,
  spec: SubgroupMatrixSpec,
  unscale: boolean,
  runs: CheckRuns,
): Kernel | null {
  const shape = subgroupMatrixShape(rt.profile);
  if (typeof shape === 'string') return null;
  const v = gateOf(rt).settled.get(checkKey(shape, spec));
  if (v) return v.ok ? (unscale ? v.unscale : v.plain) : null;
  void checkSubgroupMatrix(rt, spec, runs);
  return null;
}

/** Runs this specialisation's check once (later calls share it); true when the kernel may be used. */
export async function checkSubgroupMatrix(rt: Runtime, spec: SubgroupMatrixSpec, runs: CheckRuns): Promise<boolean> {
  const shape = subgroupMatrixShape(rt.profile);
  if (typeof shape === 'string') return false;
  const key = checkKey(shape, spec);
  const gate = gateOf(rt);
  let verdict = gate.verdicts.get(key);
  if (!verdict) {
    verdict = judge(rt, gate.source, shape, spec, runs).then((v) => {
      if (!v.ok) console.warn(`[matmul] kernel ${key} ${v.reason}; it is not used again in this process`);
      gate.settled.set(key, v);
      // The candidates changed: step programs captured meanwhile are recorded again (as after a tuning).
      rt.tuner.generation++;
      return v;
    });
    gate.verdicts.set(key, verdict);
  }
  return (await verdict).ok;
}

async function judge(
  rt: Runtime,
  source: string,
  shape: SubgroupMatrixShape,
  spec: SubgroupMatrixSpec,
  runs: CheckRuns,
): Promise<Verdict> {
  // Two batch items, partial blocks at every edge, several K slices and workgroups.
  const p: CheckProblem = { batch: 2, M: 2 * shape.rows + 5, N: shape.cols + 3, K: 5 * shape.defines.SK + 3 };
  const kernels: Kernel[] = [];
  const pairs: { unscale: boolean; runs: GemmRun[] }[] = [];
  for (const unscale of [false, true]) {
    const reference = runs.reference(p, unscale);
    const defines = definesOf(shape, spec, unscale);
    try {
      kernels.push(await compile(rt, source, kernelKey('matmul_sgmat', defines), defines, reference.kernel.iface));
    } catch (e) {
      return { ok: false, reason: `failed to compile${unscale ? ' (unscale epilogue)' : ''}: ${(e as Error).message}` };
    }
    pairs.push({ unscale, runs: [runs.candidate(p, kernels[kernels.length - 1]), reference] });
  }
  try {
    for (const pair of pairs) {
      const [got, want] = await runBoth(rt, p, pair.unscale, pair.runs);
      // Both sum the same f16 products in f32, in different orders: far inside 1e-3 of the scale.
      const tol = 1e-3 * want.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      for (let i = 0; i < want.length; i++) {
        if (!(Math.abs(got[i] - want[i]) <= tol))
          return {
            ok: false,
            reason: `disagrees with the tiled f16 kernel on a ${p.batch}x${p.M}x${p.K} * ${p.K}x${p.N} product${pair.unscale ? ' (unscaled by 2^-12)' : ''}: element ${i} is ${got[i]}, the tiled kernel's ${want[i]}`,
          };
      }
    }
  } catch (e) {
    return { ok: false, reason: `failed to run: ${(e as Error).message}` };
  }
  return { ok: true, plain: kernels[0], unscale: kernels[1] };
}

/**
 * The pipeline, built apart from rt.kernel so that a compile error reaches this check and not
 * the runtime's next read. The interface is the tiled kernel's (same parameters and bindings):
 * the WGSL reflector cannot parse subgroup matrix types.
 */
async function compile(
  rt: Runtime,
  source: string,
  key: string,
  defines: Defines,
  iface: ShaderInterface,
): Promise<Kernel> {
  const code = specialize(source, 'matmul_sgmat', defines);
  const device = rt.device;
  // Scopes only around synchronous calls: while awaiting, other work's errors would land in them.
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ label: key, code });
  const layout = device.createBindGroupLayout({
    label: key,
    entries: [
      { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true } },
      ...iface.storageWritable.map((w, i) => ({
        binding: i + 1,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: (w ? 'storage' : 'read-only-storage') as GPUBufferBindingType },
      })),
    ],
  });
  const pipelineLayout = device.createPipelineLayout({ bindGroupLayouts: [layout] });
  const scoped = device.popErrorScope();
  const errors = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error');
  if (errors.length) throw new Error(errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; '));
  const setupError = await scoped;
  if (setupError) throw new Error(setupError.message);
  // Rejects with the pipeline's error (the adapter's configurations, the workgroup size).
  const pipeline = await device.createComputePipelineAsync({
    label: key,
    layout: pipelineLayout,
    compute: { module, entryPoint: 'main' },
  });
  return { key, label: 'matmul_sgmat', iface, pipeline, layout, used: false };
}

/** Runs the candidate and the reference on the same random f16 operands in a command buffer of
 *  their own; their f32 results. */
async function runBoth(rt: Runtime, p: CheckProblem, unscale: boolean, both: GemmRun[]): Promise<Float32Array[]> {
  const device = rt.device;
  const rng = new Rng(p.M * 131 + p.N);
  const created: GPUBuffer[] = [];
  const buffer = (bytes: number, usage: number): GPUBuffer => {
    const b = device.createBuffer({ size: Math.max(16, Math.ceil(bytes / 16) * 16), usage });
    created.push(b);
    return b;
  };
  const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
  const halves = (n: number): GPUBuffer => {
    const bits = new Uint16Array(n + (n % 2));
    for (let i = 0; i < n; i++) bits[i] = halfBits(rng.uniform(-1, 1));
    const b = buffer(bits.byteLength, STORAGE);
    device.queue.writeBuffer(b, 0, bits);
    return b;
  };
  try {
    const a = halves(p.batch * p.M * p.K);
    const b = halves(p.batch * p.K * p.N);
    // max |g| = 3: 1/s = 2^-12 (grad_scale.wgsl), so an unscale the kernel forgot shows.
    const amax = buffer(4, STORAGE);
    device.queue.writeBuffer(amax, 0, new Float32Array([3]));
    const outBytes = 4 * p.batch * p.M * p.N;
    const reads = both.map(() => buffer(outBytes, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST));
    // The scope spans synchronous calls only (while awaiting, other work's errors would land in it).
    device.pushErrorScope('validation');
    let scoped: Promise<GPUError | null>;
    try {
      const encoder = device.createCommandEncoder({ label: 'subgroup-matrix check' });
      both.forEach((run, r) => {
        const c = buffer(outBytes, STORAGE);
        const operands = [a, b, c, ...(unscale ? [amax] : [])];
        const pass = encoder.beginComputePass();
        for (const d of run.dispatches) encodeDispatch(device, pass, run.kernel, d, operands, buffer);
        pass.end();
        encoder.copyBufferToBuffer(c, 0, reads[r], 0, outBytes);
      });
      device.queue.submit([encoder.finish()]);
    } finally {
      scoped = device.popErrorScope();
    }
    const err = await scoped;
    if (err) throw new Error(err.message);
    const results: Float32Array[] = [];
    for (const r of reads) {
      await r.mapAsync(GPUMapMode.READ);
      results.push(new Float32Array(r.getMappedRange(0, outBytes).slice(0)));
      r.unmap();
    }
    return results;
  } finally {
    for (const x of created) x.destroy();
  }
}

/** One dispatch with its parameters in a uniform buffer of its own. */
function encodeDispatch(
  device: GPUDevice,
  pass: GPUComputePassEncoder,
  k: Kernel,
  d: GemmRun['dispatches'][number],
  operands: GPUBuffer[],
  buffer: (bytes: number, usage: number) => GPUBuffer,
): void {
  const size = Math.ceil(k.iface.uniformSize / 16) * 16;
  const image = new ArrayBuffer(size);
  packParams(k.iface, d.params, new DataView(image), 0, k.key);
  const u = buffer(size, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
  device.queue.writeBuffer(u, 0, image);
  const entries: GPUBindGroupEntry[] = [
    { binding: 0, resource: { buffer: u, size } },
    ...operands.map((o, i) => ({ binding: i + 1, resource: { buffer: o } })),
  ];
  pass.setPipeline(k.pipeline);
  pass.setBindGroup(0, device.createBindGroup({ layout: k.layout, entries }), [0]);
  pass.dispatchWorkgroups(...d.workgroups);
}
