// Every matmul kernel variant (scalar, vec4, sg8 and each tiled candidate) in every transpose
// combination, with and without bounds checks, batched and chunked over the workgroup limit,
// against a CPU loop; the profile's choice and the tuning class.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { gpu, assertClose, randomArray, gradCheck } from './helpers.js';
import { matmul, Runtime } from '../engine/index.js';
import {
  gemm,
  chooseGemmVariant,
  gemmCandidates,
  gemmShapeClass,
  gemmVariantProblem,
  hasSubgroups8,
  type GemmArgs,
  type GemmVariant,
  type TiledVariant,
} from '../engine/ops/matmul.js';
import { tensorOn } from '../engine/ops/create.js';
import { chooseContrastiveVariant } from '../models/ops/contrastive.js';
import { chooseCorrespondenceVariant } from '../models/ops/correspondence.js';
import { conv2dPlanFor } from '../engine/ops/conv2d/index.js';

const t = suite('matmul kernels');

let rt: Runtime;
/** The runtime when its device has 8-wide subgroups (engine/gpu.ts requests them where offered). */
let sgRt: Runtime | null = null;

t.before(async () => {
  rt = await gpu();
  sgRt = hasSubgroups8(rt) ? rt : null;
  if (!sgRt) console.log('  (matmul: no 8-wide subgroups on this adapter; sg8 cases skipped)');
});

/** C[b] = op(A[b]) op(B[b]) on the CPU, in double precision. */
function reference(a: Float32Array, b: Float32Array, g: GemmArgs): Float64Array {
  const c = new Float64Array(g.batch * g.M * g.N);
  for (let z = 0; z < g.batch; z++) {
    const oa = z * g.strideA;
    const ob = z * g.strideB;
    for (let m = 0; m < g.M; m++) {
      for (let n = 0; n < g.N; n++) {
        let s = 0;
        for (let k = 0; k < g.K; k++) {
          const av = g.transA ? a[oa + k * g.M + m] : a[oa + m * g.K + k];
          const bv = g.transB ? b[ob + n * g.K + k] : b[ob + k * g.N + n];
          s += av * bv;
        }
        c[(z * g.M + m) * g.N + n] = s;
      }
    }
  }
  return c;
}

async function check(
  on: Runtime,
  variant: GemmVariant,
  shape: Partial<GemmArgs> & { M: number; N: number; K: number },
  seed: number,
): Promise<void> {
  const g: GemmArgs = { batch: 1, transA: false, transB: false, strideA: 0, strideB: 0, ...shape, variant };
  const sizeA = g.strideA ? g.batch * g.strideA : g.M * g.K;
  const sizeB = g.strideB ? g.batch * g.strideB : g.K * g.N;
  const a = randomArray(sizeA, seed);
  const b = randomArray(sizeB, seed + 1);
  const ta = tensorOn(on, a, [sizeA]);
  const tb = tensorOn(on, b, [sizeB]);
  const c = gemm(ta, tb, g, 'matmul.test');
  const got = await c.data();
  for (const x of [ta, tb, c]) x.dispose();
  const what = `${variant} ${g.batch}x${g.M}x${g.N}x${g.K} transA=${g.transA} transB=${g.transB}`;
  assertClose(got, reference(a, b, g), 1e-4, 1e-4, what);
}

const TRANS = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
] as const;

t('variant choice follows the divisibility rules', () => {
  const base = { batch: 1, transA: false, transB: false, strideA: 0, strideB: 0 };
  const sg = hasSubgroups8(rt);
  assert.is(chooseGemmVariant(rt, { ...base, M: 7, N: 5, K: 13 }), 'scalar');
  assert.is(chooseGemmVariant(rt, { ...base, M: 7, N: 8, K: 6 }), 'vec4');
  assert.is(chooseGemmVariant(rt, { ...base, M: 7, N: 8, K: 12 }), sg ? 'sg8' : 'vec4');
  assert.is(chooseGemmVariant(rt, { ...base, M: 8, N: 8, K: 12, transB: true }), sg ? 'sg8' : 'scalar');
  assert.ok(gemmVariantProblem(rt, { ...base, M: 8, N: 8, K: 12, transB: true }, 'vec4'));
  assert.not.ok(gemmVariantProblem(rt, { ...base, M: 6, N: 8, K: 7, transA: true }, 'vec4'));
  assert.ok(gemmVariantProblem(rt, { ...base, M: 8, N: 8, K: 12, batch: 2, strideA: 96, strideB: 6 }, 'vec4'));
  if (sgRt) {
    assert.ok(gemmVariantProblem(sgRt, { ...base, M: 6, N: 8, K: 12, transA: true }, 'sg8'));
    assert.ok(gemmVariantProblem(sgRt, { ...base, M: 8, N: 8, K: 6 }, 'sg8'));
    assert.ok(gemmVariantProblem(sgRt, { ...base, M: 8, N: 8, K: 12, batch: 2, strideA: 6, strideB: 96 }, 'sg8'));
    assert.not.ok(gemmVariantProblem(sgRt, { ...base, M: 8, N: 8, K: 12, transA: true, transB: true }, 'sg8'));
  }
});

t('a variant that cannot run the shape is refused with the reason', () => {
  const a = tensorOn(rt, new Float32Array(6), [6]);
  const g: GemmArgs = {
    batch: 1,
    M: 2,
    N: 3,
    K: 3,
    transA: false,
    transB: false,
    strideA: 0,
    strideB: 0,
    variant: 'vec4',
  };
  assert.throws(() => gemm(a, a, g, 'matmul.test'), /vec4 matmul kernel cannot run .*multiple of 4/);
  a.dispose();
});

t('scalar kernel: odd shapes, all transposes, batched', async () => {
  let seed = 10;
  for (const [transA, transB] of TRANS) {
    await check(rt, 'scalar', { M: 7, N: 5, K: 13, transA, transB }, seed++);
    await check(rt, 'scalar', { M: 33, N: 35, K: 3, transA, transB }, seed++);
    await check(rt, 'scalar', { M: 5, N: 6, K: 7, transA, transB, batch: 3, strideA: 35, strideB: 42 }, seed++);
  }
  await check(rt, 'scalar', { M: 64, N: 96, K: 128 }, seed++);
  await check(rt, 'scalar', { M: 6, N: 5, K: 4, batch: 4, strideA: 24, strideB: 0 }, seed++);
});

t('vec4 kernel: both layouts of A, with and without bounds checks', async () => {
  let seed = 100;
  for (const transA of [false, true]) {
    await check(rt, 'vec4', { M: 13, N: 20, K: 7, transA }, seed++);
    await check(rt, 'vec4', { M: 64, N: 96, K: 128, transA }, seed++);
    await check(rt, 'vec4', { M: 12, N: 128, K: 12, transA }, seed++);
    await check(rt, 'vec4', { M: 5, N: 36, K: 3, transA, batch: 3, strideA: 15, strideB: 108 }, seed++);
  }
  await check(rt, 'vec4', { M: 13, N: 8, K: 4, batch: 2, strideA: 52, strideB: 0 }, seed++);
  await check(rt, 'vec4', { M: 1, N: 4, K: 1 }, seed++);
});

t('sg8 kernel: all transposes, with and without bounds checks', async () => {
  if (!sgRt) return;
  let seed = 200;
  for (const [transA, transB] of TRANS) {
    await check(sgRt, 'sg8', { M: 12, N: 20, K: 8, transA, transB }, seed++);
    await check(sgRt, 'sg8', { M: 64, N: 96, K: 128, transA, transB }, seed++);
    await check(sgRt, 'sg8', { M: 16, N: 128, K: 12, transA, transB }, seed++);
    await check(sgRt, 'sg8', { M: 20, N: 32, K: 16, transA, transB }, seed++);
    await check(sgRt, 'sg8', { M: 4, N: 36, K: 20, transA, transB, batch: 3, strideA: 80, strideB: 720 }, seed++);
  }
  // One right operand shared by the batch (strideB 0), odd M, K == 4 (a single k step).
  await check(sgRt, 'sg8', { M: 13, N: 8, K: 4, batch: 2, strideA: 52, strideB: 0 }, seed++);
  await check(sgRt, 'sg8', { M: 1, N: 4, K: 4 }, seed++);
});

const TILED: TiledVariant[] = ['t128x128', 't128x64', 't64x64', 't32x32', 't128x128k16'];

t('tiled kernels: odd shapes, all transposes, batched, with and without bounds checks', async () => {
  let seed = 500;
  for (const v of TILED) {
    const problem = gemmVariantProblem(
      rt,
      { batch: 1, M: 1, N: 1, K: 1, transA: false, transB: false, strideA: 0, strideB: 0 },
      v,
    );
    if (problem) {
      console.log(`  (matmul: ${v} skipped: ${problem})`);
      continue;
    }
    const t0 = performance.now();
    // Three specialisations per transpose pair: scalar loads with bounds checks (odd shapes,
    // odd strides), vec4 loads with checks, and no checks (every dimension divides the tile).
    for (const [transA, transB] of TRANS) {
      await check(rt, v, { M: 7, N: 5, K: 13, transA, transB }, seed++);
      await check(rt, v, { M: 70, N: 130, K: 37, transA, transB }, seed++);
      await check(rt, v, { M: 5, N: 6, K: 7, transA, transB, batch: 3, strideA: 35, strideB: 42 }, seed++);
      await check(rt, v, { M: 68, N: 72, K: 20, transA, transB }, seed++);
      await check(rt, v, { M: 128, N: 128, K: 32, transA, transB }, seed++);
    }
    // vec4 loads of B beside scalar ones of A (an odd batch stride); one operand for the whole batch.
    await check(rt, v, { M: 8, N: 12, K: 16, batch: 2, strideA: 130, strideB: 0 }, seed++);
    await check(rt, v, { M: 3, N: 4, K: 0 }, seed++); // empty sum: zeros
    console.log(`  (matmul: ${v} checked in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }
});

t('the profile picks per-lane kernels on CPU drivers and tiled ones elsewhere; tuning classes', async () => {
  const base = { batch: 1, transA: false, transB: false, strideA: 0, strideB: 0 };
  const saved = rt.profile.kernels.gemm;
  try {
    rt.profile.kernels.gemm = 'tiled';
    assert.is(chooseGemmVariant(rt, { ...base, M: 4096, N: 4096, K: 64 }), 't128x128');
    assert.is(chooseGemmVariant(rt, { ...base, M: 64, N: 64, K: 64 }), 't32x32');
    rt.profile.kernels.gemm = 'lanes';
    assert.is(chooseGemmVariant(rt, { ...base, M: 7, N: 5, K: 13 }), 'scalar');
  } finally {
    rt.profile.kernels.gemm = saved;
  }
  if (rt.profile.cpu) assert.is(rt.profile.kernels.gemm, 'lanes');
  const cands = gemmCandidates(rt, { ...base, M: 7, N: 5, K: 13 });
  assert.ok(cands.includes('t64x64') && !cands.includes('vec4'), cands.join());
  assert.is(gemmShapeClass({ ...base, M: 1000, N: 64, K: 3, transB: true }), 'matmul|f32|NT|b1|m1024|n64|k4|by4=11011');
  assert.is(gemmShapeClass({ ...base, M: 1000, N: 64, K: 3 }), gemmShapeClass({ ...base, M: 600, N: 40, K: 3 }));
});

t('a runtime made with profile overrides reads them in every choice', async () => {
  const p = rt.profile;
  assert.is(p.limits.workgroupStorageBytes, rt.device.limits.maxComputeWorkgroupStorageSize);
  assert.ok(p.adapter.key.startsWith(`${p.adapter.vendor}|`), p.adapter.key);
  const handle = {
    device: rt.device,
    adapterDescription: 'override',
    adapterInfo: rt.device.adapterInfo,
    hasTimestamps: rt.hasTimestamps,
    release: () => {},
  };
  // A CPU driver (lavapipe here) keeps the per-lane families everywhere; an override reaches every op.
  if (p.cpu) {
    assert.equal(p.kernels, {
      gemm: 'lanes',
      conv: 'classic',
      contrastive: 'gemm',
      correspondence: 'direct',
      batchnorm: 'two-pass',
      convSubgroups: true,
      convTile: null,
      convFoldMinOut: null,
      bnOnePassMax: null,
    });
  }
  const other = new Runtime(handle, {
    subgroups8: false,
    kernels: { gemm: 'tiled', conv: 'tiled', contrastive: 'tiled', correspondence: 'tiled' },
  });
  assert.is(hasSubgroups8(other), false);
  assert.equal(
    [
      chooseContrastiveVariant(other, 128),
      chooseCorrespondenceVariant(other),
      conv2dPlanFor(other, [2, 16, 8, 8], [64, 16, 3, 3], { padding: 1 }).path,
    ],
    ['tiled', 'tiled', 'tiled'],
  );
  const g = { batch: 1, M: 20, N: 12, K: 8, transA: false, transB: false, strideA: 0, strideB: 0 };
  assert.is(chooseGemmVariant(other, g), 't32x32');
  assert.ok(gemmVariantProblem(other, g, 'sg8'));
  await check(other, chooseGemmVariant(other, g), g, 600);
  other.destroy();
});

t('rows beyond 65535 workgroups are split over dispatches', async () => {
  // vec4 covers 6 rows per workgroup, sg8 16: these M need two dispatches each.
  await check(rt, 'vec4', { M: 65535 * 6 + 8, N: 4, K: 3, transA: true }, 300);
  if (sgRt) await check(sgRt, 'sg8', { M: 65535 * 16 + 8, N: 4, K: 4, transA: true }, 301);
  await check(rt, 't32x32', { M: 65535 * 32 + 8, N: 4, K: 3 }, 302);
});

t('matmul gradients through the fast-path shapes', async () => {
  // 8x4 * 4x8: forward and dB (transA) take the vec4 path, dA (transB) sg8 when available.
  await gradCheck(
    (a, b) => matmul(a, b),
    [
      { data: randomArray(32, 400), shape: [8, 4] },
      { data: randomArray(32, 401), shape: [4, 8] },
    ],
    { what: 'matmul 8x4x8' },
  );
});

t.run();
