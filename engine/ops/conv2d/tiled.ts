// The workgroup-tiled convolution kernels for GPUs (shaders/conv2d/tiled.wgsl): all three products as
// implicit GEMMs on one core, NCHW, no im2col buffer.
// - forward: M = output channels, columns = N*OH*OW output pixels (the contiguous axis of x and
//   y, so B loads and y stores coalesce), K = taps x input channels.
// - input gradient: the same core on dy and the weight re-laid transposed, one dispatch per
//   residue class of dx modulo the stride with only the taps that reach that class: no FLOPs on
//   the structural zeros a stride-2 gather formulation multiplies (3 of 4 taps for 3x3 stride 2),
//   and each class is a dense GEMM over its pixels; a class no tap reaches is zero-filled.
// - weight gradient: dW[O, C*KH*KW] = dy[O, N*OH*OW] . im2col(x)^T with K = N*OH*OW split into
//   a fixed number of chunks (by shape only), one partial per chunk, summed in a fixed order by
//   the reduction kernel: deterministic, no float atomics (for a model's weights, one reduction
//   per gradient store when the backward pass ends: grad-partials.ts).
// Tiles: 16 x 16 invocations, each a TM x TN register tile (4 or 8 each), K slices of BK, two
// workgroup buffers of BK x (16*TM + 16*TN) floats: 16 KiB at 8x8 (BK 8) and 4x4 (BK 16).
// Mixed precision: the same kernels on f16 operands (the source and the re-laid weight forward,
// dy and the weight for dx, x and dy for dw), converted to f32 as they are loaded, so the
// workgroup tiles stay f32 (f16 tiles would halve workgroup memory but need their own layout
// and conversions at every FMA read); results are f32. An f16 dy was cast scaled
// (ops/grad-scale.ts): the kernel multiplies each result by the exact 2^-k in its epilogue, once
// per output element, which also covers the weight gradient's partials (a power of two commutes
// with their sum) and a result added straight into .grad; no pass of its own.
import src from '../../../shaders/conv2d/tiled.wgsl';
import type { Tensor } from '../../tensor.js';
import { formatShape, storageBytes } from '../../tensor.js';
import type { Defines } from '../../kernel.js';
import type { Runtime, Kernel } from '../../runtime.js';
import { residueClassWindow, type ConvGeometry } from './geometry.js';
import { TILED_TILES, type TiledTile, type TiledTileName } from './tiles.js';
import { empty } from '../alloc.js';
import { relayoutWeight } from './relayout.js';
import { fillTensor } from '../pointwise.js';
import { sumPartials } from './pointwise.js';
import { partialsFor } from './grad-partials.js';

/** Taps per dispatch the uniform table holds (7x7 = 49, padded to whole slices). */
const MAX_TAPS = 64;
/** Workgroups below which the default rule takes a smaller tile (or, for the weight gradient,
 *  more chunks of K): a few per compute unit of a large GPU. */
const MIN_WORKGROUPS = 512;
/** Each weight-gradient chunk covers at least this many K slices... */
const MIN_SLICES_PER_CHUNK = 16;
/** ...and the partials stay under this many floats. */
const MAX_PARTIAL = 8 << 20;

export interface TiledDispatch {
  defines: Defines;
  params: Record<string, number | number[]>;
  workgroups: [number, number, number];
  flops: number;
  /** The tile came from autotuning (tune.ts): the profiler marks the dispatch. */
  tuned?: boolean;
}

export interface TiledPlan {
  hasBias: boolean;
  /** One tile was forced for all products (no tuning). */
  forced: boolean;
  tile: TiledTileName;
  forward: TiledDispatch;
  /** Residue classes of dx (row-major over stride rows x columns); null: no tap reaches it. */
  inputGrad: (TiledDispatch | null)[];
  inputGradTile: TiledTileName;
  weightGrad: TiledDispatch;
  weightGradTile: TiledTileName;
  /** Chunks of K in the weight gradient (partials summed by a second pass when more than 1). */
  chunks: number;
}

interface Tap {
  dr: number;
  dc: number;
  a: number;
}

/** Whether the tiled kernels take this geometry (the tap table's size). */
export const tiledFits = (g: ConvGeometry): boolean => g.KH * g.KW <= MAX_TAPS - 7;

const ceilTo = (v: number, m: number): number => Math.ceil(v / m) * m;
const BM = (t: TiledTile): number => 16 * t.TM;
const BN = (t: TiledTile): number => 16 * t.TN;

/** The tap table as the uniform's 64 vec4s. */
function tapTable(taps: Tap[]): number[] {
  const out = new Array<number>(4 * MAX_TAPS).fill(0);
  taps.forEach((t, i) => out.splice(4 * i, 3, t.dr, t.dc, t.a));
  return out;
}

/** Whether some tap of some grid position falls outside a source of `size` (1-D). */
const leaves = (offsets: number[], count: number, step: number, size: number): boolean =>
  offsets.some((o) => o < 0 || (count - 1) * step + o >= size);

/** Default tile for a GEMM of m rows and cols columns: 8-row/column tiles where those dims fill
 *  them, shrunk while the grid is too small to occupy a large GPU. */
function defaultTile(m: number, cols: number): TiledTileName {
  let TM: 4 | 8 = m > 64 ? 8 : 4;
  let TN: 4 | 8 = cols > 64 ? 8 : 4;
  const groups = (): number => Math.ceil(m / (16 * TM)) * Math.ceil(cols / (16 * TN));
  if (groups() < MIN_WORKGROUPS && TN === 8) TN = 4;
  if (groups() < MIN_WORKGROUPS && TM === 8) TM = 4;
  return `${TM}x${TN}` as TiledTileName;
}

/** Source channels per K slice and their padding: CINP a multiple of BK, or a power of two below it. */
function channelSlicing(cin: number, BK: number): { CPS: number; CINP: number } {
  if (cin >= BK) return { CPS: BK, CINP: ceilTo(cin, BK) };
  let CPS = 1;
  while (CPS < cin) CPS *= 2;
  return { CPS, CINP: CPS };
}

/** [x, y, z] workgroups with y folded into z beyond 65535 (the shader rebuilds y + z * ny). */
function foldGrid(x: number, y: number): [number, number, number] {
  const z = Math.ceil(y / 65535);
  return [x, Math.ceil(y / z), z];
}

/** One forward or input-gradient-class dispatch: m rows of output from a source of cin channels. */
function coreDispatch(
  g: ConvGeometry,
  tileName: TiledTileName,
  M: number,
  cin: number,
  src: { H: number; W: number },
  out: { H: number; W: number },
  taps: Tap[],
  place: { NR: number; NQ: number; SRS: number; SCS: number; ORS: number; OR0: number; OCS: number; OC0: number },
  bias: boolean,
): TiledDispatch {
  const tile = TILED_TILES[tileName];
  const { CPS, CINP } = channelSlicing(cin, tile.BK);
  const NTP = ceilTo(taps.length, tile.BK / CPS);
  const NCOL = g.N * place.NR * place.NQ;
  const MP = ceilTo(M, BM(tile));
  const pad =
    leaves(
      taps.map((t) => t.dr),
      place.NR,
      place.SRS,
      src.H,
    ) ||
    leaves(
      taps.map((t) => t.dc),
      place.NQ,
      place.SCS,
      src.W,
    );
  return {
    defines: {
      TM: tile.TM,
      TN: tile.TN,
      BK: tile.BK,
      CPS,
      WGRAD: false,
      CHECK_N: NCOL % BN(tile) !== 0,
      CHECK_M: M % BM(tile) !== 0,
      PAD: pad,
      KPAD: CINP !== cin || NTP !== taps.length,
      DYV: false,
    },
    params: {
      SC: cin,
      SH: src.H,
      SW: src.W,
      NCOL,
      NR: place.NR,
      NQ: place.NQ,
      SRS: place.SRS,
      SCS: place.SCS,
      M,
      MP4: MP / 4,
      OH: out.H,
      OW: out.W,
      ORS: place.ORS,
      OR0: place.OR0,
      OCS: place.OCS,
      OC0: place.OC0,
      CINP,
      NT: taps.length,
      KT: (NTP * CINP) / tile.BK,
      HAS_BIAS: bias ? 1 : 0,
      SPI: 0,
      KSC: 0,
      KST: 0,
      NPIX: place.NR * place.NQ,
      TAPS: tapTable(taps),
    },
    workgroups: foldGrid(MP / BM(tile), Math.ceil(NCOL / BN(tile))),
    flops: 2 * NCOL * M * cin * taps.length,
  };
}

const range = (n: number): number[] => [...Array(n).keys()];
const mod = (a: number, m: number): number => ((a % m) + m) % m;

/** Plans all three products on the tiled kernels; `force` fixes one tile for all of them. */
export function tiledPlan(g: ConvGeometry, hasBias: boolean, force: TiledTileName | null = null): TiledPlan {
  return {
    hasBias,
    forced: force !== null,
    ...tiledForward(g, hasBias, force),
    ...tiledInputGrad(g, force),
    ...tiledWeightGrad(g, force),
  };
}

/** The forward product with `force`'s tile or the default rule's. */
export function tiledForward(
  g: ConvGeometry,
  hasBias: boolean,
  force: TiledTileName | null,
): Pick<TiledPlan, 'tile' | 'forward'> {
  const { N, C, H, W, O, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW } = g;
  const tile = force ?? defaultTile(O, N * OH * OW);
  const forward = coreDispatch(
    g,
    tile,
    O,
    C,
    { H, W },
    { H: OH, W: OW },
    range(KH * KW).map((t) => ({ dr: Math.floor(t / KW) * DH - PH, dc: (t % KW) * DW - PW, a: t })),
    { NR: OH, NQ: OW, SRS: SH, SCS: SW, ORS: 1, OR0: 0, OCS: 1, OC0: 0 },
    hasBias,
  );
  return { tile, forward };
}

/** The input gradient's residue classes with `force`'s tile or the default rule's. */
export function tiledInputGrad(
  g: ConvGeometry,
  force: TiledTileName | null,
): Pick<TiledPlan, 'inputGradTile' | 'inputGrad'> {
  const { N, C, H, W, O, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW } = g;
  // dx pixel (ry + SH*r, rx + SW*q) receives tap (kh, kw) from dy pixel (r + (ry + PH - kh*DH)/SH,
  // q + (rx + PW - kw*DW)/SW) exactly when both divisions are exact.
  const inputGradTile = force ?? defaultTile(C, N * H * W);
  const inputGrad: (TiledDispatch | null)[] = [];
  for (let ry = 0; ry < Math.min(SH, H); ry++) {
    for (let rx = 0; rx < Math.min(SW, W); rx++) {
      const rows = range(KH).filter((kh) => mod(ry + PH - kh * DH, SH) === 0);
      const cols = range(KW).filter((kw) => mod(rx + PW - kw * DW, SW) === 0);
      const taps = rows.flatMap((kh) =>
        cols.map((kw) => ({ dr: (ry + PH - kh * DH) / SH, dc: (rx + PW - kw * DW) / SW, a: kh * KW + kw })),
      );
      inputGrad.push(
        taps.length === 0
          ? null
          : coreDispatch(
              g,
              inputGradTile,
              C,
              O,
              { H: OH, W: OW },
              { H, W },
              taps,
              residueClassWindow(g, ry, rx),
              false,
            ),
      );
    }
  }
  return { inputGradTile, inputGrad };
}

/** The weight gradient with `force`'s tile or the default rule's. */
export function tiledWeightGrad(
  g: ConvGeometry,
  force: TiledTileName | null,
): Pick<TiledPlan, 'weightGrad' | 'weightGradTile' | 'chunks'> {
  const wg = weightGradDispatch(g, force);
  return { weightGrad: wg.dispatch, weightGradTile: wg.tile, chunks: wg.chunks };
}

function weightGradDispatch(
  g: ConvGeometry,
  force: TiledTileName | null,
): { dispatch: TiledDispatch; tile: TiledTileName; chunks: number } {
  const { N, C, H, W, O, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW } = g;
  const NT = KH * KW;
  const NCOL = C * NT;
  // The grid is filled by chunks of K, so the tile follows the output's shape only.
  const tileName = force ?? (`${O > 64 ? 8 : 4}x${NCOL > 64 ? 8 : 4}` as TiledTileName);
  const tile = TILED_TILES[tileName];
  const NPIX = OH * OW;
  const SPI = Math.ceil(NPIX / tile.BK);
  const KST = N * SPI;
  const grid = Math.ceil(O / BM(tile)) * Math.ceil(NCOL / BN(tile));
  const maxChunks = Math.max(1, Math.min(Math.floor(KST / MIN_SLICES_PER_CHUNK), Math.floor(MAX_PARTIAL / (O * NCOL))));
  const wanted = Math.min(maxChunks, Math.ceil(MIN_WORKGROUPS / grid));
  const KSC = Math.ceil(KST / wanted);
  const chunks = Math.ceil(KST / KSC);
  const taps = range(NT).map((t) => ({ dr: Math.floor(t / KW) * DH - PH, dc: (t % KW) * DW - PW, a: t }));
  const pad =
    leaves(
      taps.map((t) => t.dr),
      OH,
      SH,
      H,
    ) ||
    leaves(
      taps.map((t) => t.dc),
      OW,
      SW,
      W,
    );
  return {
    tile: tileName,
    chunks,
    dispatch: {
      defines: {
        TM: tile.TM,
        TN: tile.TN,
        BK: tile.BK,
        CPS: tile.BK,
        WGRAD: true,
        CHECK_N: NCOL % BN(tile) !== 0,
        CHECK_M: O % BM(tile) !== 0,
        PAD: pad,
        KPAD: NPIX % tile.BK !== 0,
        DYV: NPIX % 4 === 0,
      },
      params: {
        SC: C,
        SH: H,
        SW: W,
        NCOL,
        NR: OH,
        NQ: OW,
        SRS: SH,
        SCS: SW,
        M: O,
        MP4: 0,
        OH,
        OW,
        ORS: 0,
        OR0: 0,
        OCS: 0,
        OC0: 0,
        CINP: 0,
        NT,
        KT: 0,
        HAS_BIAS: 0,
        SPI,
        KSC,
        KST,
        NPIX,
        TAPS: tapTable(taps),
      },
      workgroups: [Math.ceil(O / BM(tile)), Math.ceil(NCOL / BN(tile)), chunks],
      flops: 2 * N * NPIX * O * NCOL,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Execution.

/** The weight as A[kh, kw, cin, m], cin padded to CINP and m to MP (trans: cin = o, m = c). */
const relayout = (w: Tensor, g: ConvGeometry, trans: boolean, d: TiledDispatch, op: string, half: boolean): Tensor =>
  relayoutWeight(
    w,
    g,
    trans,
    { mp: 4 * (d.params.MP4 as number), cinp: d.params.CINP as number },
    op,
    half ? 'f16' : 'f32',
  );

/** The dispatch on f16 operands (none of f32's defines change, so f32 kernel keys stay as they
 *  were); `unscale`: its A operand is a scaled f16 gradient (input and weight gradients). */
export function halfDispatch(d: TiledDispatch, unscale: boolean): TiledDispatch {
  const wgrad = d.defines.WGRAD === true;
  return { ...d, defines: { ...d.defines, ST: 'f16', AT: 'f16', A1T: wgrad ? 'f16' : 'f32', UNSCALE: unscale } };
}

/** The pipeline of one dispatch. */
export const tiledKernel = (rt: Runtime, d: TiledDispatch): Kernel => rt.kernel('conv2d_tiled', src, d.defines);

/** Bytes of workgroup storage a tile's two buffers take. */
export const tiledStorageBytes = (t: TiledTile): number => 2 * 4 * t.BK * (BM(t) + BN(t));

/** Runs one dispatch; bindings: S, A4, A1, Y, and the amax of an f16 gradient (UNSCALE). */
function run(d: TiledDispatch, bindings: Tensor[], op: string, shapes: string): void {
  const rt = bindings[0].rt;
  rt.dispatch(tiledKernel(rt, d), {
    params: d.params,
    buffers: bindings.map((t) => t.buffer(op)),
    workgroups: d.workgroups,
    op,
    flops: d.flops,
    bytes: bindings.slice(0, 4).reduce((acc, t) => acc + storageBytes(t.size, t.dtype), 0),
    shapes,
    tuned: d.tuned,
  });
}

/** An f16 gradient operand comes with its amax (ops/grad-scale.ts); f32 ones with none. */
function checkScaled(dy: Tensor, amax: Tensor | null, op: string): void {
  if ((dy.dtype === 'f16') !== (amax !== null))
    throw new Error(`${op}: a ${dy.dtype} gradient ${amax ? 'takes no' : 'needs its'} amax (scaledHalf gives both)`);
}

export function forwardTiled(
  x: Tensor,
  w: Tensor,
  bias: Tensor | null,
  g: ConvGeometry,
  plan: TiledPlan,
  op: string,
): Tensor {
  // An f16 x (mixed precision) takes the weight re-laid as f16 too.
  const half = x.dtype === 'f16';
  const d = half ? halfDispatch(plan.forward, false) : plan.forward;
  const a = relayout(w, g, false, d, op, half);
  const y = empty(x.rt, [g.N, g.O, g.OH, g.OW], 'f32', op);
  run(d, [x, a, bias ?? a, y], op, `${formatShape(x.shape)} -> ${formatShape(y.shape)}`);
  a.dispose();
  return y;
}

/** dx; an f16 dy (mixed precision) comes with its amax, and the weight is then re-laid as f16. */
export function inputGradTiled(
  dy: Tensor,
  w: Tensor,
  g: ConvGeometry,
  plan: TiledPlan,
  op: string,
  amax: Tensor | null = null,
): Tensor {
  checkScaled(dy, amax, op);
  const shape = [g.N, g.C, g.H, g.W];
  const dx = plan.inputGrad.some((d) => d === null) ? fillTensor(dy.rt, shape, 0, op) : empty(dy.rt, shape, 'f32', op);
  const first = plan.inputGrad.find((d) => d !== null)!;
  // Every class has the same source channels and tile, so one re-laid weight serves them all.
  const a = relayout(w, g, true, first, op, amax !== null);
  for (const d of plan.inputGrad) {
    if (d)
      run(
        amax ? halfDispatch(d, true) : d,
        amax ? [dy, a, a, dx, amax] : [dy, a, a, dx],
        op,
        `${formatShape(dy.shape)} -> ${formatShape(shape)}`,
      );
  }
  a.dispose();
  return dx;
}

export function weightGradTiled(
  x: Tensor,
  dy: Tensor,
  g: ConvGeometry,
  plan: TiledPlan,
  op: string,
  into: Tensor | null,
  amax: Tensor | null = null,
): Tensor | null {
  checkScaled(dy, amax, op);
  if (amax && x.dtype !== 'f16') throw new Error(`${op}: an f16 dy needs an f16 x, got ${x.describe()}`);
  const size = g.O * g.C * g.KH * g.KW;
  const d = amax ? halfDispatch(plan.weightGrad, true) : plan.weightGrad;
  const shapes = `x${formatShape(x.shape)} dy${formatShape(dy.shape)}`;
  // One chunk with an accumulating .grad: the kernel adds its result there itself.
  if (plan.chunks === 1 && into) {
    run(
      { ...d, defines: { ...d.defines, ACCUMULATE: true } },
      amax ? [x, dy, dy, into, amax] : [x, dy, dy, into],
      op,
      shapes,
    );
    return null;
  }
  const { partial, deferred } = partialsFor(x.rt, into, plan.chunks, size, op);
  run(d, amax ? [x, dy, dy, partial, amax] : [x, dy, dy, partial], op, shapes);
  return deferred ? null : sumPartials(partial, [g.O, g.C, g.KH, g.KW], into, op);
}
