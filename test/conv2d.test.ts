import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gpu, runtime, assertClose, randomArray, gradCheck } from './helpers.js';
import {
  tensor,
  backward,
  noGrad,
  conv2d,
  type Tensor,
  type Conv2dOptions,
  type DispatchObserver,
} from '../engine/index.js';
import {
  conv2dPlan,
  conv2dPlanFor,
  conv2dInputGrad,
  conv2dWeightGrad,
  conv2dGeometry,
  TILED_TILES,
  type TiledTileName,
} from '../engine/ops/conv2d/index.js';
import { overrideKernels, type KernelChoices } from '../engine/device-profile.js';
import { hasSubgroups8 } from '../engine/ops/matmul.js';

// Tests run from the bundle in .build/test/; fixtures stay in the source tree.
const fixturePath = fileURLToPath(new URL('../../test/fixtures/conv2d.json', import.meta.url));

interface Arr {
  shape: number[];
  data: number[];
}
interface Case {
  name: string;
  args: { stride: [number, number]; padding: [number, number]; dilation: [number, number] };
  inputs: { x: Arr; weight: Arr; bias?: Arr };
  outputShape: number[];
  output: number[];
  upstream: number[];
  grads: { x: number[]; weight: number[]; bias?: number[] };
}

const t = suite('conv2d');
let cases: Case[] = [];
t.before(async () => {
  await gpu();
  cases = JSON.parse(readFileSync(fixturePath, 'utf8')).cases;
});

/** Changes the test runtime's kernel choices; call the result to restore them. */
const kernels = (changes: Partial<KernelChoices>): (() => void) => overrideKernels(runtime().profile, changes);

/** Kernel keys of every dispatch fn records (through the runtime's observer seam). */
function dispatchedKernels(fn: () => void): string[] {
  const rt = runtime();
  const keys: string[] = [];
  const prev = rt.observer;
  const spy: DispatchObserver = {
    timestampWrites: (info) => {
      keys.push(info.kernel);
      return undefined;
    },
    beforeSubmit: () => {},
    afterSubmit: () => {},
  };
  rt.observer = spy;
  try {
    fn();
  } finally {
    rt.observer = prev;
  }
  return keys;
}

/** Runs one fixture case forward and backward; returns the kernel keys it dispatched. */
async function runCase(c: Case): Promise<string[]> {
  const x = tensor(c.inputs.x.data, c.inputs.x.shape).requireGrad();
  const w = tensor(c.inputs.weight.data, c.inputs.weight.shape).requireGrad();
  const b = c.inputs.bias ? tensor(c.inputs.bias.data, c.inputs.bias.shape).requireGrad() : null;
  const opts: Conv2dOptions = c.args;
  let y: Tensor | null = null;
  const keys = dispatchedKernels(() => {
    y = conv2d(x, w, b, opts);
    backward(y, tensor(c.upstream, c.outputShape));
  });
  const out = y as unknown as Tensor;
  assert.equal([...out.shape], c.outputShape, `${c.name}: output shape`);
  // Sums here are at most a few hundred terms; the weight and bias gradients are the longest.
  assertClose(await out.data(), c.output, 1e-4, 1e-4, `${c.name} output`);
  assertClose(await x.grad!.data(), c.grads.x, 1e-4, 1e-4, `${c.name} grad x`);
  assertClose(await w.grad!.data(), c.grads.weight, 1e-3, 1e-4, `${c.name} grad weight`);
  if (b) assertClose(await b.grad!.data(), c.grads.bias!, 1e-3, 1e-4, `${c.name} grad bias`);
  for (const v of [x, w, b, out]) {
    v?.grad?.dispose();
    v?.dispose();
  }
  return keys;
}

t('matches PyTorch on the fixture grid: output, input, weight and bias gradients', async () => {
  assert.ok(cases.length >= 15, 'fixture has the case grid');
  for (const c of cases) await runCase(c);
});

// Where the device has 8-wide subgroups the grid above ran the subgroup kernels; the per-lane
// kernels (every other adapter) get a spread of the grid here.
t('the per-lane kernels match PyTorch too', async () => {
  const names = ['3x3 s1 p1 odd sizes', '3x3 s2 p1', '7x7 s2 p3 stem, 3 channels', '5x3 stride'];
  const restore = kernels({ convSubgroups: false });
  try {
    for (const n of names) {
      const c = cases.find((k) => k.name.startsWith(n));
      assert.ok(c, `fixture case ${n}`);
      const keys = await runCase(c!);
      assert.ok(
        keys.some((k) => k.startsWith('conv2d_gemm[')) && !keys.some((k) => k.includes('_sg8')),
        `${n}: per-lane kernels only`,
      );
    }
  } finally {
    restore();
  }
});

// The tiled family (GPUs): all three products from shaders/conv2d/tiled.wgsl only (1x1 included: it has
// no separate GEMM path). The tile the default rule gives small problems (4x4) runs the whole
// fixture grid; the others a spread that reaches every code path (bias, 1x1 stride 2, stride-2
// residue classes, an empty class, the 3-channel stem's padded channel slices, odd strides and
// dilations): lavapipe compiles each specialisation slowly.
t('every tile of the tiled kernels matches PyTorch on the fixture grid', async () => {
  const spread = [
    '1x1 s1 small image, bias',
    '1x1 s2 downsample',
    '3x3 s2 p1',
    '7x7 s2 p3 stem, 3 channels',
    '5x3 stride',
    '3x3 s3 p1',
  ];
  for (const tile of Object.keys(TILED_TILES) as TiledTileName[]) {
    const restore = kernels({ conv: 'tiled', convTile: tile });
    try {
      for (const c of cases) {
        if (tile !== '4x4' && !spread.some((n) => c.name.startsWith(n))) continue;
        const keys = await runCase(c);
        const convKeys = keys.filter((k) => k.startsWith('conv2d') && !k.startsWith('conv2d_relayout'));
        assert.ok(
          convKeys.length >= 3 &&
            convKeys.every((k) => k.startsWith('conv2d_tiled[') && k.includes(`TM=${tile[0]},TN=${tile[2]}`)),
          `${c.name} (${tile}): tiled kernels only: ${keys.join(' ')}`,
        );
      }
    } finally {
      restore();
    }
  }
});

t(
  'the tiled family is the default where the device profile asks for it (GPUs, not CPU drivers), with checks compiled out where shapes divide',
  () => {
    const rt = runtime();
    const auto = conv2dPlanFor(rt, [2, 16, 8, 8], [64, 16, 3, 3], { padding: 1 });
    assert.is(auto.path === 'tiled', rt.profile.kernels.conv === 'tiled', `auto plan on this device: ${auto.path}`);
    if (rt.profile.cpu) assert.is(auto.path === 'tiled', false, 'a CPU driver keeps the classic kernels');
    // 16 channels, 2 x 64 pixels, 64 output channels divide the 4x4 tile (64 x 64, BK 16).
    const exact = conv2dPlan([2, 16, 8, 8], [64, 16, 3, 3], { padding: 1 }, false, false, {
      family: 'tiled',
      tile: '4x4',
    }).tiled!;
    assert.equal(
      [
        exact.forward.defines.CHECK_M,
        exact.forward.defines.CHECK_N,
        exact.forward.defines.KPAD,
        exact.forward.defines.PAD,
      ],
      [false, false, false, true],
    );
    // ResNet-50 layer shapes at batch 32: the large tile where the grid fills a big GPU, smaller
    // tiles where it would not; the weight gradient fills it with chunks of K instead.
    const big = conv2dPlan([32, 256, 56, 56], [64, 256, 1, 1], {}, false, false, { family: 'tiled', tile: null })
      .tiled!;
    assert.is(big.tile, '4x8', '64 output channels: 64-row tile');
    assert.is(
      conv2dPlan([32, 128, 28, 28], [512, 128, 1, 1], {}, false, false, { family: 'tiled', tile: null }).tiled!.tile,
      '8x8',
    );
    const deep = conv2dPlan([32, 512, 7, 7], [512, 512, 3, 3], { padding: 1 }, false, false, {
      family: 'tiled',
      tile: null,
    }).tiled!;
    assert.is(deep.tile, '4x4', '7x7 maps: small tiles');
    assert.ok(
      deep.chunks > 1 && deep.weightGradTile === '8x8',
      `deep weight gradient: ${deep.weightGradTile} in ${deep.chunks} chunks`,
    );
  },
);

/** An unpadded 1x1 convolution (the GEMM path): output and all three gradients vs CPU loops.
 *  Strided, or with a pixel count that is no multiple of 4, it runs on packed planes. */
async function checkGemmPath(stride: number, [N, C, H, W, O]: number[]): Promise<void> {
  const OH = Math.ceil(H / stride);
  const OW = Math.ceil(W / stride);
  const xd = randomArray(N * C * H * W, 31);
  const wd = randomArray(O * C, 32, -0.5, 0.5);
  const bd = randomArray(O, 33);
  const up = randomArray(N * O * OH * OW, 34);
  const x = tensor(xd, [N, C, H, W]).requireGrad();
  const w = tensor(wd, [O, C, 1, 1]).requireGrad();
  const b = tensor(bd, [O]).requireGrad();
  let y: Tensor | null = null;
  const keys = dispatchedKernels(() => {
    y = conv2d(x, w, b, { stride });
    backward(y, tensor(up, [N, O, OH, OW]));
  });
  assert.ok(keys.filter((k) => k.startsWith('matmul')).length >= 3, `1x1 uses matmul: ${keys.join(' ')}`);
  assert.not.ok(
    keys.some((k) => k.startsWith('conv2d_gemm') || k.startsWith('conv2d_wgrad')),
    '1x1 avoids the implicit kernels',
  );
  const packed = stride > 1 || (OH * OW) % 4 !== 0;
  assert.is(
    keys.some((k) => k.startsWith('conv2d_planes')),
    packed,
    `packs planes only where it must: ${keys.join(' ')}`,
  );
  const ref = {
    y: new Float64Array(N * O * OH * OW),
    dx: new Float64Array(N * C * H * W),
    dw: new Float64Array(O * C),
    db: new Float64Array(O),
  };
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++)
      for (let p = 0; p < OH * OW; p++) {
        const g = up[(n * O + o) * OH * OW + p];
        const src = Math.floor(p / OW) * stride * W + (p % OW) * stride;
        let acc = bd[o];
        for (let c = 0; c < C; c++) {
          acc += wd[o * C + c] * xd[(n * C + c) * H * W + src];
          ref.dx[(n * C + c) * H * W + src] += wd[o * C + c] * g;
          ref.dw[o * C + c] += xd[(n * C + c) * H * W + src] * g;
        }
        ref.y[(n * O + o) * OH * OW + p] = acc;
        ref.db[o] += g;
      }
  const out = y as unknown as Tensor;
  assertClose(await out.data(), ref.y, 1e-4, 1e-5, 'gemm path output');
  assertClose(await x.grad!.data(), ref.dx, 1e-4, 1e-5, 'gemm path grad x');
  assertClose(await w.grad!.data(), ref.dw, 1e-4, 1e-4, 'gemm path grad weight');
  assertClose(await b.grad!.data(), ref.db, 1e-4, 1e-4, 'gemm path grad bias');
  for (const v of [x, w, b, out]) {
    v.grad?.dispose();
    v.dispose();
  }
}

t('variants are taken where the shape asks for them, and are correct there', async () => {
  const byName = (s: string): Case => {
    const c = cases.find((k) => k.name.startsWith(s));
    assert.ok(c, `fixture case ${s}`);
    return c!;
  };
  // Unpadded 1x1: plain GEMM for all three products, checked against a CPU loop (stride 1 on
  // planes used as they are; stride 2 and pixel counts that are no multiple of 4 on packed
  // planes), also on a 7x7 map; a padded 1x1 takes the core (its 6x6 output's weight gradient is
  // a folded GEMM with subgroups).
  await checkGemmPath(1, [2, 6, 8, 9, 5]);
  await checkGemmPath(2, [2, 6, 17, 19, 5]);
  await checkGemmPath(1, [2, 4, 9, 9, 8]);
  await checkGemmPath(2, [3, 8, 14, 13, 12]);
  const paddedKeys = await runCase(byName('1x1 s1 padded (implicit path)'));
  assert.is(
    paddedKeys.filter((k) => k.startsWith('conv2d_gemm')).length,
    2,
    `padded 1x1: core forward and input gradient: ${paddedKeys.join(' ')}`,
  );
  // Exact tile: the forward kernel is compiled without bounds checks.
  const exact = byName('3x3 s1 p1 exact tile');
  for (const sg8 of [false, true]) {
    const exactPlan = conv2dPlan(exact.inputs.x.shape, exact.inputs.weight.shape, exact.args, false, sg8);
    assert.is(exactPlan.forward!.defines.CHECK, false, 'exact-tile plan drops the checks');
  }
  const exactKeys = await runCase(exact);
  assert.ok(
    exactKeys.some((k) => k.startsWith('conv2d_gemm') && k.includes('CHECK=false')),
    `exact tile runs unchecked: ${exactKeys.join(' ')}`,
  );
  // With 8-wide subgroups the implicit kernels are the subgroup ones.
  const sg = hasSubgroups8(runtime());
  assert.is(
    exactKeys.some((k) => k.startsWith('conv2d_gemm_sg8[')),
    sg,
    'forward kernel matches the device',
  );
  // A shape that does not divide the tile keeps them.
  const odd = byName('3x3 s1 p1 odd sizes');
  assert.is(conv2dPlan(odd.inputs.x.shape, odd.inputs.weight.shape, odd.args).forward!.defines.CHECK, true);
  // The RGB stem: 7 hand-unrolled tap columns over a stride-2 window.
  const stemKeys = await runCase(byName('7x7 s2 p3 stem, 3 channels'));
  assert.ok(
    stemKeys.some((k) => k.startsWith('conv2d_gemm') && k.includes('NTC=7') && k.includes('SCS=2')),
    `stem variant: ${stemKeys.join(' ')}`,
  );
  // Outputs of a few pixels (here 3x3): all three products as batch-folded GEMMs via im2col
  // (from 256 output channels by default; this fixture has fewer).
  const restore = kernels({ convFoldMinOut: 0 });
  let tinyKeys: string[];
  try {
    tinyKeys = await runCase(byName('3x3 s3 p1'));
  } finally {
    restore();
  }
  assert.is(
    tinyKeys.some((k) => k.startsWith('conv2d_im2col')) &&
      !tinyKeys.some((k) => k.startsWith('conv2d_gemm') || k.startsWith('conv2d_wgrad')),
    sg,
    `tiny maps fold with subgroups: ${tinyKeys.join(' ')}`,
  );
  // Stride 2: the input gradient runs one dispatch per residue class (4 here), or with 8-wide
  // subgroups (3x3, padding 1) one fused dispatch for all four.
  const s2Keys = await runCase(byName('3x3 s2 p1'));
  assert.is(
    s2Keys.filter((k) => k.startsWith('conv2d_gemm')).length,
    sg ? 1 : 1 + 4,
    'forward + input-gradient classes',
  );
  assert.is(
    s2Keys.filter((k) => k.startsWith('conv2d_dgrad_s2_sg8')).length,
    sg ? 1 : 0,
    'fused stride-2 input gradient',
  );
});

t('the fused stride-2 input gradient matches a CPU loop on odd sizes and both kernel families', async () => {
  // H odd (its last row pair has no dy row i + 1), W even, channels no multiple of the tile.
  const [N, C, H, W, O] = [2, 13, 15, 10, 12];
  const opts: Conv2dOptions = { stride: 2, padding: 1 };
  const [OH, OW] = [Math.ceil(H / 2), Math.ceil(W / 2)];
  const wd = randomArray(O * C * 9, 41, -0.5, 0.5);
  const dyd = randomArray(N * O * OH * OW, 42);
  const ref = new Float64Array(N * C * H * W);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let y = 0; y < H; y++)
        for (let x = 0; x < W; x++) {
          let s = 0;
          for (let o = 0; o < O; o++)
            for (let kh = 0; kh < 3; kh++)
              for (let kw = 0; kw < 3; kw++) {
                const r = y + 1 - kh;
                const q = x + 1 - kw;
                if (r % 2 || q % 2 || r < 0 || q < 0 || r / 2 >= OH || q / 2 >= OW) continue;
                s += wd[((o * C + c) * 3 + kh) * 3 + kw] * dyd[((n * O + o) * OH + r / 2) * OW + q / 2];
              }
          ref[((n * C + c) * H + y) * W + x] = s;
        }
  const sg = hasSubgroups8(runtime());
  assert.is(
    conv2dPlan([N, C, H, W], [O, C, 3, 3], opts, false, sg).inputGradStride2,
    sg,
    'fused kernel where subgroups exist',
  );
  for (const mode of ['auto', 'off'] as const) {
    const restore = kernels({ convSubgroups: mode === 'auto' });
    try {
      const w = tensor(wd, [O, C, 3, 3]);
      const dy = tensor(dyd, [N, O, OH, OW]);
      const dx = conv2dInputGrad(dy, w, [N, C, H, W], opts);
      assertClose(await dx.data(), ref, 1e-4, 1e-5, `stride-2 input gradient (subgroups ${mode})`);
      for (const v of [w, dy, dx]) v.dispose();
    } finally {
      restore();
    }
  }
});

// Outputs of up to 196 pixels with 256+ output channels take the folded weight gradient; the
// weight-gradient kernels also get larger outputs here: the stem's 7 columns and a stride-2
// 3x3, in both kernel families, against a CPU loop.
t('weight-gradient kernels on larger outputs match a CPU loop', async () => {
  const cases: [number[], number[], Conv2dOptions][] = [
    [[2, 3, 30, 29], [4, 3, 7, 7], { stride: 2, padding: 3 }],
    [[2, 5, 30, 31], [6, 5, 3, 3], { stride: 2, padding: 1 }],
  ];
  for (const [xs, ws, opts] of cases) {
    const g = conv2dGeometry(xs, ws, opts);
    const xd = randomArray(
      xs.reduce((a, b) => a * b),
      51,
    );
    const dyd = randomArray(g.N * g.O * g.OH * g.OW, 52);
    const ref = new Float64Array(ws.reduce((a, b) => a * b));
    for (let n = 0; n < g.N; n++)
      for (let o = 0; o < g.O; o++)
        for (let c = 0; c < g.C; c++)
          for (let kh = 0; kh < g.KH; kh++)
            for (let kw = 0; kw < g.KW; kw++)
              for (let oh = 0; oh < g.OH; oh++)
                for (let ow = 0; ow < g.OW; ow++) {
                  const ih = oh * g.SH - g.PH + kh;
                  const iw = ow * g.SW - g.PW + kw;
                  if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
                  ref[((o * g.C + c) * g.KH + kh) * g.KW + kw] +=
                    dyd[((n * g.O + o) * g.OH + oh) * g.OW + ow] * xd[((n * g.C + c) * g.H + ih) * g.W + iw];
                }
    // Classic family with and without subgroups, and the tiled one (the stem: 225 pixels per
    // image, scalar dy loads, K in 3 chunks; the 3x3: 240 pixels, vec4 dy loads, one chunk).
    for (const mode of ['auto', 'off', 'tiled'] as const) {
      const restore = kernels(mode === 'tiled' ? { conv: 'tiled' } : { convSubgroups: mode === 'auto' });
      try {
        if (mode === 'tiled') {
          const chunks = conv2dPlanFor(runtime(), xs, ws, opts).tiled!.chunks;
          assert.is(chunks, g.KH === 7 ? 3 : 1, 'tiled weight gradient chunks (58 slices of 8 pixels / 30 of 16)');
        } else {
          const sg8 = mode === 'auto' && hasSubgroups8(runtime());
          assert.is(
            conv2dPlan(xs, ws, opts, false, sg8).weightGrad?.sg8,
            sg8,
            'weight-gradient kernel of the device planned',
          );
        }
        const x = tensor(xd, xs);
        const dy = tensor(dyd, [g.N, g.O, g.OH, g.OW]);
        const dw = conv2dWeightGrad(x, dy, ws, opts);
        assertClose(await dw.data(), ref, 1e-3, 1e-4, `dw ${ws.join('x')} stride ${g.SH} (${mode})`);
        for (const v of [x, dy, dw]) v.dispose();
      } finally {
        restore();
      }
    }
  }
});

t('weight gradient is split into chunks and reduced deterministically', async () => {
  const xs = [2, 16, 40, 40];
  const ws = [16, 16, 3, 3];
  const plan = conv2dPlan(xs, ws, { padding: 1 });
  assert.ok(plan.weightGrad!.chunks > 1, `K is split (${plan.weightGrad!.chunks} chunks)`);
  const tiled = conv2dPlan(xs, ws, { padding: 1 }, false, false, { family: 'tiled', tile: null }).tiled!;
  assert.ok(tiled.chunks > 1, `K is split in the tiled kernel too (${tiled.chunks} chunks)`);
  const xd = randomArray(
    xs.reduce((a, b) => a * b),
    11,
  );
  const wd = randomArray(
    ws.reduce((a, b) => a * b),
    12,
    -0.3,
    0.3,
  );
  for (const family of ['classic', 'tiled'] as const) {
    const restore = kernels({ conv: family });
    try {
      await chunkedWeightGrad(xs, ws, xd, wd, family);
    } finally {
      restore();
    }
  }
});

async function chunkedWeightGrad(
  xs: number[],
  ws: number[],
  xd: Float32Array,
  wd: Float32Array,
  family: string,
): Promise<void> {
  const run = async (): Promise<Float32Array> => {
    const x = tensor(xd, xs);
    const w = tensor(wd, ws).requireGrad();
    const y = conv2d(x, w, null, { padding: 1 });
    backward(y, tensor(randomArray(y.size, 13), y.shape));
    const g = (await w.grad!.data()) as Float32Array;
    for (const v of [x, w.grad!, w, y]) v.dispose();
    return g;
  };
  const a = await run();
  const b = await run();
  assert.ok(
    a.every((v, i) => Object.is(v, b[i])),
    'bitwise identical across runs',
  );
  // Against a float64 CPU reference.
  const [N, C, H, W] = xs;
  const [O, , KH, KW] = ws;
  const up = randomArray(N * O * H * W, 13);
  const ref = new Float64Array(O * C * KH * KW);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++)
      for (let c = 0; c < C; c++)
        for (let kh = 0; kh < KH; kh++)
          for (let kw = 0; kw < KW; kw++) {
            let s = 0;
            for (let oh = 0; oh < H; oh++)
              for (let ow = 0; ow < W; ow++) {
                const ih = oh - 1 + kh;
                const iw = ow - 1 + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                s += up[((n * O + o) * H + oh) * W + ow] * xd[((n * C + c) * H + ih) * W + iw];
              }
            ref[((o * C + c) * KH + kh) * KW + kw] += s;
          }
  assertClose(a, ref, 1e-3, 1e-4, `chunked weight gradient (${family})`);
}

t('gradients match finite differences on tiny shapes', async () => {
  const conv = (opts: Conv2dOptions) => (x: Tensor, w: Tensor, b: Tensor) => conv2d(x, w, b, opts);
  await gradCheck(
    conv({ padding: 1 }),
    [
      { data: randomArray(2 * 2 * 4 * 3, 21), shape: [2, 2, 4, 3] },
      { data: randomArray(3 * 2 * 3 * 3, 22, -0.5, 0.5), shape: [3, 2, 3, 3] },
      { data: randomArray(3, 23), shape: [3] },
    ],
    { what: '3x3 padding 1' },
  );
  await gradCheck(
    conv({ stride: 2, padding: 1, dilation: [1, 2] }),
    [
      { data: randomArray(1 * 3 * 5 * 6, 24), shape: [1, 3, 5, 6] },
      { data: randomArray(2 * 3 * 3 * 2, 25, -0.5, 0.5), shape: [2, 3, 3, 2] },
      { data: randomArray(2, 26), shape: [2] },
    ],
    { what: 'stride 2, dilation (1, 2)' },
  );
  await gradCheck(
    conv({}),
    [
      { data: randomArray(2 * 3 * 2 * 2, 27), shape: [2, 3, 2, 2] },
      { data: randomArray(2 * 3, 28, -0.5, 0.5), shape: [2, 3, 1, 1] },
      { data: randomArray(2, 29), shape: [2] },
    ],
    { what: '1x1 (gemm path)' },
  );
});

t('clear errors name the shapes', () => {
  const x = noGrad(() => tensor(new Float32Array(1 * 3 * 5 * 5), [1, 3, 5, 5]));
  const w = (shape: number[]): Tensor => tensor(new Float32Array(shape.reduce((a, b) => a * b)), shape);
  const throwsWith = (fn: () => unknown, ...parts: string[]): void => {
    try {
      fn();
    } catch (e) {
      const msg = (e as Error).message;
      for (const p of parts) assert.ok(msg.includes(p), `"${msg}" should mention ${p}`);
      return;
    }
    assert.unreachable(`expected an error mentioning ${parts.join(', ')}`);
  };
  throwsWith(() => conv2d(x, w([4, 2, 3, 3])), 'conv2d', '[1, 3, 5, 5]', '[4, 2, 3, 3]', 'channels');
  throwsWith(() => conv2d(x, w([4, 3, 7, 7])), 'conv2d', '[1, 3, 5, 5]', '[4, 3, 7, 7]', 'larger than');
  throwsWith(() => conv2d(x, w([4, 3, 3, 3]), null, { dilation: 3 }), 'conv2d', 'dilated to 7x7', 'larger than');
  throwsWith(() => conv2d(x, w([4, 3, 3, 3]), null, { stride: 0 }), 'conv2d', 'stride', 'positive');
  throwsWith(() => conv2d(x, w([4, 3, 3, 3]), null, { stride: 1.5 }), 'conv2d', 'stride', 'integer');
  throwsWith(() => conv2d(x, w([4, 3, 3, 3]), null, { padding: -1 }), 'conv2d', 'padding', 'non-negative');
  throwsWith(() => conv2d(x, w([4, 3, 3, 3]), w([3])), 'conv2d', 'bias', '[3]', '[4]');
  throwsWith(() => conv2d(tensor([1, 2, 3, 4], [1, 1, 4]), w([1, 1, 1, 1])), 'conv2d', '[N, C, H, W]', '[1, 1, 4]');
  throwsWith(
    () => conv2d(tensor(new Float32Array(0), [1, 3, 0, 5]), w([4, 3, 1, 1])),
    'conv2d',
    'positive',
    '[1, 3, 0, 5]',
  );
});

t.run();
