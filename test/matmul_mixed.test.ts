// f16 operands: matmul / gemm on f16 x f16 with f32 accumulation (every transpose, vec4 and scalar
// bindings, checked and divisible shapes, batched), and linear under precision 'mixed' forward
// and backward, each against a float64 CPU loop on the f16-rounded operands, so what is left is
// the f32 accumulation error alone (bounded here by 2^-20 of the sum of |products|, while
// skipping the f16 rounding would be off by ~2^-11 of it).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu, randomArray, dispatchesOf } from './helpers.js';
import { halfBits, halfValue } from '../engine/half.js';
import { autocast, backward, linear, matmul, noGrad, setPrecision, tensor, type Runtime } from '../engine/index.js';
import {
  gemm,
  chooseGemmVariant,
  gemmCandidates,
  gemmShapeClass,
  gemmVariantProblem,
  type GemmArgs,
  type GemmVariant,
} from '../engine/ops/matmul.js';
import { toHalf } from '../engine/ops/cast.js';
import { specialize } from '../engine/kernel.js';
import type { DeviceProfile } from '../engine/device-profile.js';
import {
  subgroupMatrixShape,
  subgroupMatrixState,
  substituteSubgroupMatrixSource,
} from '../engine/ops/subgroup-matrix.js';
import { subgroupMatrixReady } from '../engine/ops/matmul.js';
import sgmatSrc from '../shaders/matmul/subgroup_matrix.wgsl';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const t = suite('f16 matmul and mixed-precision linear');
let rt: Runtime;
t.before(async () => {
  rt = await gpu();
});

const h = (v: number) => halfValue(halfBits(v));
const rounded = (a: ArrayLike<number>) => Float64Array.from(a, h);

/** C = op(A) op(B) in float64, and the sum of |products| per element (the accumulation's error scale). */
function reference(a: ArrayLike<number>, b: ArrayLike<number>, g: GemmArgs): { c: Float64Array; mag: Float64Array } {
  const c = new Float64Array(g.batch * g.M * g.N);
  const mag = new Float64Array(c.length);
  for (let z = 0; z < g.batch; z++)
    for (let m = 0; m < g.M; m++)
      for (let n = 0; n < g.N; n++) {
        let s = 0;
        let abs = 0;
        for (let k = 0; k < g.K; k++) {
          const av = a[z * g.strideA + (g.transA ? k * g.M + m : m * g.K + k)];
          const bv = b[z * g.strideB + (g.transB ? n * g.K + k : k * g.N + n)];
          s += av * bv;
          abs += Math.abs(av * bv);
        }
        c[(z * g.M + m) * g.N + n] = s;
        mag[(z * g.M + m) * g.N + n] = abs;
      }
  return { c, mag };
}

/** |got - want| <= 2^-20 * mag elementwise (f32 accumulation over these K is well inside it). */
function assertAccumulated(got: ArrayLike<number>, want: Float64Array, mag: Float64Array, what: string): void {
  assert.is(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    if (!(err <= 2 ** -20 * mag[i] + 1e-30))
      assert.unreachable(
        `${what}: element ${i} is ${got[i]}, f16-operand reference ${want[i]} (error ${err}, scale ${mag[i]})`,
      );
  }
}

const args = (s: Partial<GemmArgs> & { M: number; N: number; K: number }): GemmArgs => ({
  batch: 1,
  transA: false,
  transB: false,
  strideA: 0,
  strideB: 0,
  ...s,
});

async function checkGemm(g: GemmArgs, seed: number): Promise<string> {
  const lenA = (g.batch - 1) * g.strideA + g.M * g.K;
  const lenB = (g.batch - 1) * g.strideB + g.K * g.N;
  const va = randomArray(lenA, seed);
  const vb = randomArray(lenB, seed + 1, -2, 2);
  const a = tensor(va, [lenA], 'f16');
  const b = tensor(vb, [lenB], 'f16');
  let c = null as unknown as ReturnType<typeof gemm>;
  const seen = dispatchesOf(() => {
    c = gemm(a, b, g, 'test');
  });
  assert.is(c.dtype, 'f32');
  const { c: want, mag } = reference(rounded(va), rounded(vb), g);
  const what = `${g.variant ?? chooseGemmVariant(rt, { ...g, dtype: 'f16' })} ${JSON.stringify({ ...g, variant: undefined })}`;
  assertAccumulated(await c.data(), want, mag, what);
  for (const x of [a, b, c]) x.dispose();
  return seen[0].kernel;
}

// Shader compilation dominates this file on lavapipe (3-7 s per specialisation cold), so the
// cases are few: each transpose of A and of B, vec4 and scalar bindings of each, checked and
// divisible; the transposed reads themselves are shared with f32 (test/matmul.test.ts).
t(
  'f16 gemm: each transpose, vec4 and scalar bindings, checked and divisible shapes, against f16-rounded operands',
  async () => {
    const cases: [Partial<GemmArgs> & { M: number; N: number; K: number }, GemmVariant?][] = [
      [{ M: 37, N: 29, K: 19 }], // odd everywhere: scalar bindings, bound checks
      [{ M: 64, N: 32, K: 48, transB: true }, 't32x32'], // vec4 bindings, divisible: no checks
      [{ M: 36, N: 40, K: 20, transA: true }, 't32x32'], // vec4 bindings, 36 % 32: checked
      [{ M: 40, N: 21, K: 33, transA: true, transB: true }, 't64x64'], // vec4 A, scalar B
    ];
    const keys: string[] = [];
    for (const [shape, variant] of cases) keys.push(await checkGemm(args({ ...shape, variant }), keys.length * 7 + 1));
    const has = (re: RegExp) => keys.some((k) => re.test(k));
    assert.ok(
      keys.every((k) => /matmul_tiled\[/.test(k) && /,T=f16,/.test(k)),
      `all on the tiled f16 kernel: ${keys.join(' ')}`,
    );
    for (const re of [/VEC_A=true/, /VEC_A=false/, /VEC_B=true/, /VEC_B=false/, /CHECKED=true/, /CHECKED=false/])
      assert.ok(has(re), `some case has ${re.source}: ${keys.join(' ')}`);
  },
);

t('f16 gemm: batched, with a per-item and a shared right operand', async () => {
  await checkGemm(args({ batch: 3, M: 12, N: 20, K: 8, strideA: 96, strideB: 160 }), 50);
  // scalar A (K = 5), vec4 B shared by both items
  const key = await checkGemm(args({ batch: 2, M: 9, N: 8, K: 5, strideA: 45, strideB: 0 }), 51);
  assert.match(key, /VEC_A=false,VEC_B=true/);
});

t('matmul of f16 tensors: f32 result, batch dimensions, no gradient', async () => {
  const va = randomArray(2 * 5 * 12, 60);
  const vb = randomArray(2 * 12 * 8, 61);
  const c = noGrad(() => matmul(tensor(va, [2, 5, 12], 'f16'), tensor(vb, [2, 12, 8], 'f16')));
  assert.equal(c.shape, [2, 5, 8]);
  assert.is(c.dtype, 'f32');
  const g = args({ batch: 2, M: 5, N: 8, K: 12, strideA: 60, strideB: 96 });
  const { c: want, mag } = reference(rounded(va), rounded(vb), g);
  assertAccumulated(await c.data(), want, mag, 'batched matmul');
});

t('f16 kernel choice and tuning class: tiled whatever the f32 family, keyed by dtype', () => {
  const g = args({ M: 64, N: 64, K: 64, dtype: 'f16' });
  assert.ok(/^t\d/.test(chooseGemmVariant(rt, g)), `f16 runs tiled, got ${chooseGemmVariant(rt, g)}`);
  assert.ok(gemmCandidates(rt, g).length > 0);
  assert.ok(
    gemmCandidates(rt, g).every((v) => v.startsWith('t')),
    gemmCandidates(rt, g).join(),
  );
  assert.match(gemmVariantProblem(rt, g, 'vec4') ?? '', /f32 only/);
  assert.match(gemmShapeClass(g), /^matmul\|f16\|/);
  assert.match(gemmShapeClass({ ...g, dtype: undefined }), /^matmul\|f32\|/);
});

t('errors: mixed dtypes, a forced per-lane kernel, unscaleBy on f32, no shader-f16', () => {
  const a16 = tensor([1, 2, 3, 4], [2, 2], 'f16');
  const a32 = tensor([1, 2, 3, 4], [2, 2]);
  assert.throws(() => matmul(a16, a32), /both be f32 or both f16.*f16\[2, 2\].*f32\[2, 2\].*toHalf/);
  assert.throws(() => matmul(tensor([1, 2], [1, 2], 'i32'), tensor([1, 2], [2, 1], 'i32')), /both be f32 or both f16/);
  const g = args({ M: 2, N: 2, K: 2 });
  assert.throws(() => gemm(a16, a16, { ...g, variant: 'scalar' }, 'test'), /scalar matmul kernel cannot run.*f32 only/);
  assert.throws(() => gemm(a32, a32, g, 'test', tensor([0], [1], 'u32')), /unscaleBy must be scaledHalf's amax/);
  const saved = rt.profile.features.shaderF16;
  rt.profile.features.shaderF16 = false;
  try {
    assert.throws(() => matmul(a16, a16), /shader-f16/);
    assert.throws(() => setPrecision(rt, 'mixed'), /shader-f16/);
  } finally {
    rt.profile.features.shaderF16 = saved;
  }
});

/** A mixed-precision linear step on [2, 7, inF] -> out: y, dx, dw, db and the kernels it ran. */
async function mixedLinear(vx: Float32Array, vw: Float32Array, vb: Float32Array, vdy: Float32Array, inF: number) {
  const out = vw.length / inF;
  const x = tensor(vx, [2, 7, inF]).requireGrad();
  const w = tensor(vw, [out, inF]).requireGrad();
  const b = tensor(vb, [out]).requireGrad();
  let y = null as unknown as ReturnType<typeof linear>;
  const kernels = dispatchesOf(() => {
    y = autocast(rt, () => linear(x, w, b));
    backward(y, tensor(vdy, [2, 7, out])); // outside autocast: the backward keeps the forward's precision
  }).map((d) => d.kernel);
  const res = {
    y: await y.data(),
    dx: await x.grad!.data(),
    dw: await w.grad!.data(),
    db: await b.grad!.data(),
    kernels,
  };
  for (const v of [x, w, b, y, x.grad!, w.grad!, b.grad!]) v.dispose();
  return res;
}

t('linear under mixed precision: f16 operands forward and backward, tiny gradients, run-to-run identical', async () => {
  const inF = 20;
  const out = 12;
  const rows = 14;
  const vx = randomArray(rows * inF, 70);
  const vw = randomArray(out * inF, 71);
  const vb = randomArray(out, 72);
  for (const dyMag of [1, 1e-8]) {
    const vdy = randomArray(rows * out, 73, -dyMag, dyMag);
    const got = await mixedLinear(vx, vw, vb, vdy, inF);
    assert.equal(rt.precision, 'f32', 'autocast restored the precision');
    // Forward: f16(x) f16(w)^T in f32, plus the f32 bias.
    const x16 = rounded(vx);
    const w16 = rounded(vw);
    const fwd = reference(x16, w16, args({ M: rows, N: out, K: inF, transB: true }));
    const y = fwd.c.map((v, i) => v + vb[i % out]);
    assertAccumulated(
      got.y,
      y,
      fwd.mag.map((m, i) => m + Math.abs(vb[i % out])),
      `y (dy ${dyMag})`,
    );
    // Backward: dy scaled by s = 2^(14 - ceil(log2 max|dy|)) before its f16 rounding, unscaled exactly.
    const amax = Math.max(...vdy.map(Math.abs));
    const s = 2 ** (14 - Math.ceil(Math.log2(amax)));
    const dy16 = Float64Array.from(vdy, (v) => h(v * s));
    const dx = reference(dy16, w16, args({ M: rows, N: inF, K: out }));
    const dw = reference(dy16, x16, args({ M: out, N: inF, K: rows, transA: true }));
    assertAccumulated(
      got.dx,
      dx.c.map((v) => v / s),
      dx.mag.map((v) => v / s),
      `dx (dy ${dyMag})`,
    );
    assertAccumulated(
      got.dw,
      dw.c.map((v) => v / s),
      dw.mag.map((v) => v / s),
      `dw (dy ${dyMag})`,
    );
    // The tiny dy is far below f16's normal range; scaled, its gradients keep f16 precision.
    const exactDx = reference(Float64Array.from(vdy), w16, args({ M: rows, N: inF, K: out }));
    for (let i = 0; i < exactDx.c.length; i++)
      assert.ok(Math.abs(got.dx[i] - exactDx.c[i]) <= 2 ** -10 * exactDx.mag[i], `dx[${i}] near the unrounded dy`);
    // The bias gradient sums the f32 dy.
    for (let o = 0; o < out; o++) {
      let sum = 0;
      let mag = 0;
      for (let r = 0; r < rows; r++) {
        sum += vdy[r * out + o];
        mag += Math.abs(vdy[r * out + o]);
      }
      assert.ok(Math.abs(got.db[o] - sum) <= 2 ** -20 * mag, `db[${o}] ${got.db[o]} vs ${sum}`);
    }
    const gemms = got.kernels.filter((k) => k.startsWith('matmul_tiled'));
    assert.is(gemms.length, 3, gemms.join(' '));
    assert.ok(gemms.every((k) => k.includes('T=f16')));
    assert.is(gemms.filter((k) => k.includes('UNSCALE=true')).length, 2, 'both gradient GEMMs unscale');
    const again = await mixedLinear(vx, vw, vb, vdy, inF);
    for (const k of ['y', 'dx', 'dw', 'db'] as const) assert.equal(again[k], got[k], `${k} run to run`);
  }
});

t('linear at f32 precision is untouched; toHalf operands are not accepted by linear', async () => {
  const x = tensor(randomArray(6, 80), [2, 3]);
  const w = tensor(randomArray(6, 81), [2, 3]);
  const kernels = dispatchesOf(() => noGrad(() => linear(x, w)).dispose()).map((d) => d.kernel);
  assert.ok(!kernels.some((k) => k.includes('f16')), kernels.join(' '));
  assert.throws(() => linear(toHalf(x), w), /expects f32 tensors/);
});

t('//#if blocks: kept or dropped by a boolean define, errors for other values and strays', () => {
  const src = '//! X = false\na;\n//#if X\nb;\n//#endif\n//#if !X\nc;\n//#endif\nd;';
  const lines = (defines: Record<string, boolean>) =>
    specialize(src, 'cond', defines)
      .split('\n')
      .filter((l) => l && !l.startsWith('//'));
  assert.equal(lines({ X: true }), ['a;', 'b;', 'd;']);
  assert.equal(lines({}), ['a;', 'c;', 'd;']);
  assert.throws(() => specialize('//#if Y\nb;\n//#endif', 'cond', { Y: 3 } as never), /Y true or false, got 3/);
  assert.throws(() => specialize('//#if Y\nb;', 'cond', { Y: true }), /no matching/);
});

// ---- the subgroup-matrix candidate: it cannot run here (lavapipe has no subgroup matrices), so
// what is tested is its configuration, its WGSL (validated by Dawn's null backend, which offers
// the feature under allow_unsafe_apis), and the gate, with stand-in kernels substituted.

const F16_16x8 = { componentType: 'f16', resultComponentType: 'f32', M: 16, N: 8, K: 16 };

function fakeProfile(p: Partial<DeviceProfile>): DeviceProfile {
  const base = rt.profile;
  return {
    ...base,
    features: { ...base.features, subgroupMatrix: true },
    subgroupMinSize: 32,
    subgroupMaxSize: 32,
    ...p,
  };
}

t('subgroupMatrixShape: the first f16 -> f32 configuration, and why there is none', () => {
  const s = subgroupMatrixShape(
    fakeProfile({
      subgroupMatrixConfigs: [{ ...F16_16x8, componentType: 'f32' }, F16_16x8, { ...F16_16x8, M: 8, N: 8, K: 8 }],
    }),
  );
  assert.ok(typeof s !== 'string', String(s));
  if (typeof s === 'string') return;
  assert.equal(s.config, F16_16x8);
  assert.equal({ rows: s.rows, cols: s.cols, threads: s.threads }, { rows: 64, cols: 32, threads: 128 });
  assert.equal([s.defines.SM, s.defines.SN, s.defines.SK, s.defines.SG], [16, 8, 16, 32]);
  assert.match(String(subgroupMatrixShape(rt.profile)), /DENSECL_UNSAFE_APIS=1/);
  assert.match(String(subgroupMatrixShape(fakeProfile({ subgroupMatrixConfigs: [] }))), /no f16 x f16 -> f32/);
  assert.match(
    String(subgroupMatrixShape(fakeProfile({ subgroupMatrixConfigs: [F16_16x8], subgroupMinSize: 16 }))),
    /subgroup sizes vary/,
  );
  const small = fakeProfile({ subgroupMatrixConfigs: [F16_16x8] });
  small.limits = { ...small.limits, workgroupStorageBytes: 4096 };
  assert.match(String(subgroupMatrixShape(small)), /workgroup storage/);
});

/** Validates WGSL modules on Dawn's null backend with unsafe APIs (it offers subgroup matrices) in
 *  a child process (a second Dawn instance in the test process hung or crashed it); the
 *  messages per module, or null where that backend lacks the feature. */
function validateOnNullBackend(codes: string[]): string[][] | null {
  const child = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      [
        "import { create } from 'webgpu';",
        "import { readFileSync } from 'node:fs';",
        "const codes = JSON.parse(readFileSync(0, 'utf8'));",
        "const feature = 'chromium-experimental-subgroup-matrix';",
        // Held to the end: a collected GPU object takes its instance down under the device.
        "globalThis.gpu = create(['backend=null', 'enable-dawn-features=allow_unsafe_apis']);",
        'const adapter = await globalThis.gpu.requestAdapter();',
        'if (!adapter?.features.has(feature)) { console.log("null"); process.exit(0); }',
        "const device = await adapter.requestDevice({ requiredFeatures: [feature, 'subgroups', 'shader-f16'] });",
        'const out = [];',
        'for (const code of codes) {',
        '  const info = await device.createShaderModule({ code }).getCompilationInfo();',
        "  out.push(info.messages.filter((m) => m.type !== 'info').map((m) => m.lineNum + ':' + m.linePos + ' ' + m.message));",
        '}',
        'console.log(JSON.stringify(out));',
        'process.exit(0);',
      ].join('\n'),
    ],
    { input: JSON.stringify(codes), encoding: 'utf8', timeout: 60_000, cwd: ROOT },
  );
  const last = child.stdout.trim().split('\n').pop() ?? '';
  if (child.status !== 0 || !last) throw new Error(`null-backend validation failed: ${child.status} ${child.stderr}`);
  return JSON.parse(last);
}

t('the subgroup-matrix WGSL passes Dawn validation (null backend, unsafe APIs) in every specialisation', () => {
  const cases: Record<string, number | boolean>[] = [];
  for (const [SM, SN, SK] of [
    [16, 16, 16],
    [16, 8, 16],
    [8, 8, 8],
  ])
    for (const TRANS_A of [false, true])
      for (const TRANS_B of [false, true])
        for (const UNSCALE of [false, true]) cases.push({ SM, SN, SK, SG: 32, TRANS_A, TRANS_B, UNSCALE });
  const messages = validateOnNullBackend(cases.map((d) => specialize(sgmatSrc, 'sgmat', d)));
  if (!messages) {
    console.log('  (no Dawn null backend with subgroup matrices here: WGSL validation skipped)');
    return;
  }
  const failures = cases.flatMap((d, i) => messages[i].map((m) => `${JSON.stringify(d)} ${m}`));
  assert.equal(failures, [], failures.join('\n'));
  // The validation is real: an error is reported.
  const bad = validateOnNullBackend([specialize(sgmatSrc, 'sgmat', {}).replace('row_major>(&Cs', 'row_major>(&As')]);
  assert.ok(bad && bad[0].length > 0, 'storing f32 results into the f16 tile is an error');
});

/** A plain-WGSL stand-in with the real kernel's placeholders, bindings and geometry (a workgroup
 *  of WM*WN*SG invocations per BM x BN block); BUG drops the last k. */
const standIn = (bug: boolean) => `
//! SM = 8
//! SN = 8
//! SK = 8
//! SG = 8
//! WM = 2
//! WN = 2
//! FM = 2
//! FN = 2
//! KS = 2
//! TRANS_A = false
//! TRANS_B = false
//! UNSCALE = false
//#include "lib/gemm_params.wgsl"
@group(0) @binding(1) var<storage, read> A: array<f16>;
@group(0) @binding(2) var<storage, read> B: array<f16>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
//#include "lib/out_scale.wgsl"
const BM: u32 = $WM * $FM * $SM;
const BN: u32 = $WN * $FN * $SN;
const THREADS: u32 = $WM * $WN * $SG;
@compute @workgroup_size(THREADS, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lix: u32) {
  let M = params.M; let N = params.N; let K = params.K;
  for (var v = lix; v < BM * BN; v += THREADS) {
    let m = params.rowStart + wid.y * BM + v / BN;
    let n = wid.x * BN + v % BN;
    if (m >= M || n >= N) { continue; }
    var s = 0.0;
    for (var k = 0u; k < K - ${bug ? 1 : 0}u; k++) {
      let a = A[wid.z * params.strideA + select(m * K + k, k * M + m, $TRANS_A)];
      let b = B[wid.z * params.strideB + select(k * N + n, n * K + k, $TRANS_B)];
      s += f32(a) * f32(b);
    }
    C[wid.z * params.strideC + m * N + n] = s * outScale();
  }
}`;

/** Runs fn with rt pretending to have M x N x K subgroup matrices (8 x 8 x 8 unless given) and
 *  `source` as their kernel; the warnings printed. */
async function withStandIn(source: string, fn: () => Promise<void>, mnk = { M: 8, N: 8, K: 8 }): Promise<string[]> {
  const saved = { ...rt.profile };
  Object.assign(rt.profile, {
    features: { ...saved.features, subgroupMatrix: true },
    subgroupMatrixConfigs: [{ componentType: 'f16', resultComponentType: 'f32', ...mnk }],
    subgroupMinSize: 8,
    subgroupMaxSize: 8,
  });
  substituteSubgroupMatrixSource(rt, source);
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (...a: unknown[]) => void warnings.push(a.join(' '));
  try {
    await fn();
  } finally {
    console.warn = warn;
    Object.assign(rt.profile, saved);
    substituteSubgroupMatrixSource(rt, null);
  }
  return warnings;
}

t(
  'subgroup-matrix gate: a correct stand-in passes its check and becomes a candidate; it runs with unscale',
  async () => {
    const warnings = await withStandIn(standIn(false), async () => {
      const g = args({ M: 70, N: 45, K: 37, transA: true, dtype: 'f16' });
      assert.is(subgroupMatrixState(rt, g), 'unchecked');
      assert.match(gemmVariantProblem(rt, g, 'sgmat') ?? '', /not passed its check/);
      assert.ok(!gemmCandidates(rt, g).includes('sgmat'));
      assert.ok(await subgroupMatrixReady(rt, g));
      assert.is(subgroupMatrixState(rt, g), 'passed');
      assert.ok(gemmCandidates(rt, g).includes('sgmat'), gemmCandidates(rt, g).join());
      assert.is(
        subgroupMatrixState(rt, { ...g, transA: false }),
        'unchecked',
        'each pair of transposes is checked apart',
      );
      // Forced, through the unscale epilogue: dy-like operand cast by scaledHalf.
      const va = randomArray(70 * 37, 90, -1e-6, 1e-6);
      const vb = randomArray(37 * 45, 91);
      const { scaledHalf } = await import('../engine/ops/grad-scale.js');
      const sa = scaledHalf(tensor(va));
      const c = gemm(sa.half, tensor(vb, [37 * 45], 'f16'), { ...g, variant: 'sgmat' }, 'test', sa.amax);
      const s = 2 ** (14 - Math.ceil(Math.log2(Math.max(...va.map(Math.abs)))));
      const ref = reference(
        Float64Array.from(va, (v) => h(v * s)),
        rounded(vb),
        g,
      );
      assertAccumulated(
        await c.data(),
        ref.c.map((v) => v / s),
        ref.mag.map((v) => v / s),
        'sgmat stand-in, unscaled',
      );
    });
    assert.equal(warnings, []);
  },
);

t(
  'subgroup-matrix gate: a wrong kernel and one that does not compile are ruled out with a warning naming them',
  async () => {
    const g = args({ M: 20, N: 20, K: 20, dtype: 'f16' });
    const wrong = await withStandIn(standIn(true), async () => {
      assert.not.ok(await subgroupMatrixReady(rt, g));
      assert.is(subgroupMatrixState(rt, g), 'failed');
      assert.not.ok(gemmCandidates(rt, g).includes('sgmat'));
      assert.throws(
        () => gemm(tensor([1], [1], 'f16'), tensor([1], [1], 'f16'), { ...g, variant: 'sgmat' }, 'test'),
        /failed its check/,
      );
      assert.not.ok(await subgroupMatrixReady(rt, g), 'not checked again');
    });
    assert.is(wrong.length, 1, wrong.join('\n'));
    assert.match(wrong[0], /matmul_sgmat\[.*disagrees with the tiled f16 kernel.*not used again/);
    const broken = await withStandIn(standIn(false).replace('s * outScale()', 's * undefined_name'), async () => {
      assert.not.ok(await subgroupMatrixReady(rt, g));
    });
    assert.is(broken.length, 1, broken.join('\n'));
    assert.match(broken[0], /matmul_sgmat\[.*failed to compile.*undefined_name/);
    // The compile error stayed in the check: the runtime reads as usual.
    assert.equal([...(await matmul(tensor([1, 2], [1, 2]), tensor([3, 4], [2, 1])).data())], [11]);
  },
);

/**
 * The real kernel with its subgroup matrices emulated in plain WGSL, so that its tiling, staging
 * and indexing run here: each invocation holds a whole matrix (as f32, row-major); a load reads
 * and a store writes all of it (the subgroup's invocations write the same values), by the
 * extension's rule (row-major: element [r, c] at offset + stride * r + c; column-major: offset +
 * stride * c + r); the multiply-accumulate is a plain loop; the subgroup id is the local x index
 * over SG (lavapipe's subgroups are the consecutive 8).
 */
function emulated(source: string): string {
  const types: Record<string, string> = {
    left: 'array<f32, SM * SK>',
    right: 'array<f32, SK * SN>',
    result: 'array<f32, SM * SN>',
  };
  const out = source
    .replace(/^enable chromium_experimental_subgroup_matrix;$/m, '')
    .replace(/^diagnostic\(off, chromium_experimental\.subgroup_matrix_uniformity\);$/m, '')
    .replace(/subgroup_matrix_(left|right|result)<[^>]*>/g, (_, use: string) => types[use])
    .replace(/subgroupMatrixLoad<(Left|Right), (row_major|col_major)>\(&(\w+), /g, 'emuLoad$1_$2_$3(')
    .replace(/subgroupMatrixStore<(row_major|col_major)>\(&(\w+), /g, 'emuStore_$1_$2(')
    .replace(/subgroupMatrixMultiplyAccumulate\(/g, 'emuMMA(')
    .replace(
      '@builtin(subgroup_id) sg: u32) {',
      '@builtin(local_invocation_id) emuLid: vec3<u32>) {\n  let sg = emuLid.x / $SG;',
    );
  const at = (layout: string) => (layout === 'row' ? 'off + stride * r + c' : 'off + stride * c + r');
  const load = (use: string, tile: string, rows: string, cols: string, layout: string) => `
fn emuLoad${use}_${layout}_major_${tile}(off: u32, stride: u32) -> ${use} {
  var x: ${use};
  for (var r = 0u; r < ${rows}; r++) { for (var c = 0u; c < ${cols}; c++) { x[r * ${cols} + c] = f32(${tile}[${at(layout)}]); } }
  return x;
}`;
  return `${out}
${load('Left', 'As', 'SM', 'SK', 'row')}${load('Left', 'As', 'SM', 'SK', 'col')}
${load('Right', 'Bs', 'SK', 'SN', 'row')}${load('Right', 'Bs', 'SK', 'SN', 'col')}
fn emuMMA(l: Left, r: Right, acc: Result) -> Result {
  var x = acc;
  for (var m = 0u; m < SM; m++) {
    for (var n = 0u; n < SN; n++) {
      for (var k = 0u; k < SK; k++) { x[m * SN + n] += l[m * SK + k] * r[k * SN + n]; }
    }
  }
  return x;
}
fn emuStore_row_major_Cs(off: u32, v: Result, stride: u32) {
  for (var r = 0u; r < SM; r++) { for (var c = 0u; c < SN; c++) { Cs[${at('row')}] = v[r * SN + c]; } }
}`;
}

// Compiling the emulation is slow on lavapipe (its arrays live in scratch memory: 2 minutes cold
// at 8 x 4 x 4, ~10 s at 2 x 4 x 8): tiny matrices, all three sizes different (a swapped
// dimension shows), and the two transpose pairs that between them load both operands both ways.
t('the real subgroup-matrix kernel, its matrices emulated, passes the gate and multiplies', async () => {
  const warnings = await withStandIn(
    emulated(sgmatSrc),
    async () => {
      assert.ok(await subgroupMatrixReady(rt, args({ M: 1, N: 1, K: 1, dtype: 'f16' })), 'A and B as stored');
      const tt = args({ batch: 2, M: 70, N: 41, K: 29, strideA: 70 * 29, strideB: 0, transA: true, transB: true });
      assert.ok(await subgroupMatrixReady(rt, { ...tt, dtype: 'f16' }), 'both transposed');
      await checkGemm({ ...tt, variant: 'sgmat' }, 97);
    },
    { M: 2, N: 4, K: 8 },
  );
  assert.equal(warnings, []);
});

t('subgroup-matrix gate under tuning: the class waits for the check instead of being decided without it', async () => {
  const saved = rt.tuner.mode;
  await withStandIn(standIn(false), async () => {
    rt.tuner.mode = 'on';
    try {
      const g = args({ M: 12, N: 12, K: 12, dtype: 'f16' });
      const a = tensor(randomArray(144, 95), [144], 'f16');
      const kernels = dispatchesOf(() => gemm(a, a, g, 'test').dispose()).map((d) => d.kernel);
      assert.ok(kernels[0].startsWith('matmul_tiled'), kernels.join());
      assert.is(subgroupMatrixState(rt, g), 'pending');
      assert.not.ok(rt.tuner.busy, 'no timing started while the check is due');
      const generation = rt.tuner.generation;
      assert.ok(await subgroupMatrixReady(rt, g));
      assert.ok(rt.tuner.generation > generation, 'the verdict makes captured steps record again');
    } finally {
      rt.tuner.mode = saved;
    }
  });
});

t.run();
