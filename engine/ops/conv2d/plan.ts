// The kernel choices of a conv2d (see index.ts for the kernels, geometry.ts for the validated
// sizes): the plan of dispatches per direction, by shape and device.
import { formatShape } from '../../tensor.js';
import { conv2dGeometry, residueClassWindow, type Conv2dOptions, type ConvGeometry } from './geometry.js';
import type { Defines } from '../../kernel.js';
import { fusedStride2 } from './dgrad_s2.js';
import { tiledFits, tiledPlan, type TiledPlan } from './tiled.js';
import type { TiledTileName } from './tiles.js';

const OP = 'conv2d';

/** Bytes of dy and x rows one weight-gradient chunk covers (about a core's L2). */
const WGRAD_CHUNK_BYTES = 256 << 10;
/** Upper bound on the weight-gradient partials, in floats. */
const WGRAD_MAX_PARTIAL = 8 << 20;

// Planning: which kernels run, with which tiles. Exported so tests and benchmarks can name the
// variant a shape takes; the dispatches themselves carry the same choices in their kernel keys.

/** One dispatch of the implicit-GEMM core (forward, or one residue class of the input gradient). */
export interface CoreDispatch {
  /** Compile-time choices: tile, tap-column window, checks. */
  defines: Defines;
  /** Run-time geometry for the shader's uniforms (tap rows, kernel columns, placement). */
  params: Record<string, number | number[]>;
  /** Rows and columns of output this dispatch covers (class grid for the input gradient). */
  NR: number;
  NQ: number;
  TM: number;
  TN: number;
  WG: number;
  taps: number;
  /** Runs shaders/conv2d/gemm_sg8.wgsl (A shared by subgroup broadcast). */
  sg8: boolean;
}

export interface ConvPlan {
  geometry: ConvGeometry;
  /** 'tiled' where the workgroup-tiled kernels are asked for (tiled.ts); else 'fold' for
   *  outputs of at most FOLD_MAX_PIXELS pixels per image with 8-wide subgroups (fold.ts),
   *  'gemm' for unpadded 1x1 convolutions (pointwise.ts), else 'implicit' (the core and
   *  the weight-gradient kernel); for all three products. */
  path: 'tiled' | 'fold' | 'gemm' | 'implicit';
  /** The tiled kernels' dispatches (path 'tiled'). */
  tiled: TiledPlan | null;
  forward: CoreDispatch | null;
  /** Residue classes of the input gradient; a class with no taps is null (its pixels get zero).
   *  Empty when inputGradStride2 is set. */
  inputGrad: (CoreDispatch | null)[];
  /** The input gradient runs on the fused stride-2 kernel (dgrad_s2.ts). */
  inputGradStride2: boolean;
  /** The weight-gradient kernel's plan; null where the weight gradient is a GEMM. */
  weightGrad: WgradPlan | null;
  /** The weight gradient is one batch-folded GEMM (fold.ts): always on the 'fold' path,
   *  and on the others for outputs of at most FOLD_WGRAD_MAX_PIXELS pixels. */
  weightGradFolded: boolean;
}

export interface WgradPlan {
  defines: Defines;
  TMW: number;
  TN: number;
  /** Runs shaders/conv2d/wgrad_sg8.wgsl (dy shared by subgroup broadcast). */
  sg8: boolean;
  /** Workgroups along x (lane blocks x output-channel blocks). */
  groups: number;
  /** Lanes: (output block, kernel-row block, input channel) triples; for sg8, (input channel, kernel-row block) pairs. */
  lanes: number;
  chunks: number;
  rowsPerChunk: number;
}

/** Columns per invocation: 8, 7 or 4, whichever wastes least of a row (ties: the larger). Few
 *  values keep the number of pipelines (and of lavapipe's slow cold compiles) small. */
function chooseTN(cols: number): number {
  let best = 8;
  let bestWaste = Infinity;
  for (const tn of [8, 7, 4]) {
    const waste = Math.ceil(cols / tn) * tn - cols;
    if (waste < bestWaste) {
      best = tn;
      bestWaste = waste;
    }
  }
  return best;
}

/** Output channels per invocation. With subgroups A costs next to nothing, so the tile leans
 *  to more channels (16 measured best on lavapipe for 3x3; 32 spills more than it saves), and
 *  to 32 for a single tap (a strided input gradient's one-tap class), where the source window
 *  serves one tap column only and so costs the most per FMA (measured on 1x1 stride 2). */
const chooseTM = (m: number, sg8: boolean, taps: number): number =>
  m <= 4 ? 4 : m <= 8 || !sg8 ? 8 : taps === 1 && m > 16 ? 32 : 16;
const WG_LANE = 16;
/** Output pixels per image up to which all three products run as batch-folded GEMMs. */
const FOLD_MAX_PIXELS = 16;
/** The same for the weight gradient alone: the folded GEMM (K = N*OH*OW) took about half the
 *  weight-gradient kernel's time at 7x7 and ~0.7x at 14x14, but 1.4-1.7x at 28x28; forward and
 *  input gradient were no faster folded at 7x7. */
const FOLD_WGRAD_MAX_PIXELS = 196;
/** Output channels from which the folded path pays for its explicit im2col (each column element
 *  serves 2 * O FLOPs): the folding gains were measured at 256-512 channels, and a DenseCL step
 *  at width 0.25 (16-128 channels, 32 px) ran 8-10% slower with folding than without. */
const FOLD_MIN_OUT = 256;
/** Largest im2col matrix the folded path builds, in floats (large batches fall back). */
const FOLD_MAX_COL = 16 << 20;
/** Tap rows and columns the core takes per dispatch (uniform arrays of 16). */
const MAX_TAPS = 16;

interface Taps {
  off: number[];
  k: number[];
}

/** Pads a list to the 16 slots of an array<vec4<..>, 4> uniform field. */
const slots16 = (v: number[]): number[] => [...v, ...new Array<number>(MAX_TAPS - v.length).fill(0)];

/** Builds one core dispatch from its tap rows and columns and where its output goes. */
function coreDispatch(
  g: ConvGeometry,
  M: number,
  rows: Taps,
  colsIn: Taps,
  place: { NR: number; NQ: number; SRS: number; SCS: number; ORS: number; OR0: number; OCS: number; OC0: number },
  pad: boolean,
  bias: boolean,
  sg8: boolean,
): CoreDispatch {
  const TM = chooseTM(M, sg8, rows.off.length * colsIn.off.length);
  const TN = chooseTN(place.NQ);
  const WG = sg8 ? 8 : WG_LANE;
  // Columns sorted by source offset, so mirrored tap sets (forward and input gradient of a
  // symmetric kernel) compile to the same window positions and share a pipeline.
  const order = colsIn.off.map((_, i) => i).sort((i, j) => colsIn.off[i] - colsIn.off[j]);
  const cols: Taps = { off: order.map((i) => colsIn.off[i]), k: order.map((i) => colsIn.k[i]) };
  const minOff = cols.off[0];
  // The window keeps only every WSTEP-th source column when no tap uses the others.
  const WSTEP = cols.off.reduce((acc, o) => gcd(acc, o - minOff), place.SCS);
  const WIN = ((TN - 1) * place.SCS + cols.off[cols.off.length - 1] - minOff) / WSTEP + 1;
  const MP = Math.ceil(M / TM) * TM;
  const G = g.N * place.NR * Math.ceil(place.NQ / TN);
  const exact = place.NQ % TN === 0 && MP === M && G % WG === 0 && G / WG <= 65535;
  const defines: Defines = {
    TM,
    TN,
    NTC: cols.off.length,
    TC_WIN: cols.off.map((o) => (o - minOff) / WSTEP).join(', '),
    WIN,
    SCS: place.SCS,
    WSTEP,
    CHECK: !exact,
    PAD: pad || place.NQ % TN !== 0,
    ...(sg8 ? {} : { WG }),
  };
  const params = {
    NTR: rows.off.length,
    KH: g.KH,
    KW: g.KW,
    SRS: place.SRS,
    ORS: place.ORS,
    OR0: place.OR0,
    OCS: place.OCS,
    OC0: place.OC0,
    WIN_OFF: minOff,
    HAS_BIAS: bias ? 1 : 0,
    TR_OFF: slots16(rows.off),
    TR_K: slots16(rows.k),
    TC_K: slots16(cols.k),
  };
  return { defines, params, NR: place.NR, NQ: place.NQ, TM, TN, WG, taps: rows.off.length * cols.off.length, sg8 };
}

const range = (n: number): number[] => [...Array(n).keys()];
const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
const mod = (a: number, m: number): number => ((a % m) + m) % m;

/** Which kernel family plans a convolution: 'classic' (the per-lane and subgroup kernels tuned
 *  on lavapipe; tests lower the folding threshold, by default 256 output channels) or 'tiled'
 *  (tiled.ts, for GPUs), the latter with its default tile rule or one tile forced. */
export type ConvFamily =
  | { family: 'classic'; foldMinOut?: number | null }
  | { family: 'tiled'; tile: TiledTileName | null };

export function conv2dPlan(
  xShape: readonly number[],
  wShape: readonly number[],
  opts: Conv2dOptions = {},
  hasBias = false,
  sg8 = false,
  kernels: ConvFamily = { family: 'classic' },
): ConvPlan {
  const g = conv2dGeometry(xShape, wShape, opts);
  if (kernels.family === 'tiled' && tiledFits(g)) {
    return {
      geometry: g,
      path: 'tiled',
      tiled: tiledPlan(g, hasBias, kernels.tile),
      forward: null,
      inputGrad: [],
      inputGradStride2: false,
      weightGrad: null,
      weightGradFolded: false,
    };
  }
  const { C, H, W, O, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW } = g;
  const foldMinOut = kernels.family === 'classic' ? (kernels.foldMinOut ?? FOLD_MIN_OUT) : FOLD_MIN_OUT;
  const foldable = (pixels: number): boolean =>
    sg8 && O >= foldMinOut && OH * OW <= pixels && C * KH * KW * g.N * OH * OW <= FOLD_MAX_COL;
  const weightGradFolded = foldable(FOLD_WGRAD_MAX_PIXELS);
  const none = {
    geometry: g,
    tiled: null,
    forward: null,
    inputGrad: [],
    inputGradStride2: false,
    weightGrad: null,
    weightGradFolded,
  };
  if (foldable(FOLD_MAX_PIXELS)) return { ...none, path: 'fold' };
  // Padded planes make 7x7 maps GEMM-friendly too: the sg8 matmul on 52 packed columns beat
  // the core (which folds the batch) at 7x7, 512 <-> 2048 channels.
  if (KH === 1 && KW === 1 && PH === 0 && PW === 0) return { ...none, path: 'gemm' };
  if (KH > MAX_TAPS || KW > MAX_TAPS) {
    throw new Error(
      `${OP}: kernel ${KH}x${KW} of weight ${formatShape(wShape)} is larger than the supported ${MAX_TAPS}x${MAX_TAPS}`,
    );
  }
  const forward = coreDispatch(
    g,
    O,
    { off: range(KH).map((k) => k * DH - PH), k: range(KH) },
    { off: range(KW).map((k) => k * DW - PW), k: range(KW) },
    { NR: OH, NQ: OW, SRS: SH, SCS: SW, ORS: 1, OR0: 0, OCS: 1, OC0: 0 },
    PH > 0 || PW > 0,
    hasBias,
    sg8,
  );
  // Input pixel (ry + SH*r, rx + SW*q) receives tap kh from dy row r + (ry + PH - kh*DH)/SH
  // exactly when that division is exact; same for columns.
  const inputGradStride2 = fusedStride2(g, sg8);
  const inputGrad: (CoreDispatch | null)[] = [];
  for (let ry = 0; ry < (inputGradStride2 ? 0 : Math.min(SH, H)); ry++) {
    for (let rx = 0; rx < Math.min(SW, W); rx++) {
      const rows: Taps = { off: [], k: [] };
      const cols: Taps = { off: [], k: [] };
      for (let kh = 0; kh < KH; kh++) {
        if (mod(ry + PH - kh * DH, SH) === 0) {
          rows.off.push((ry + PH - kh * DH) / SH);
          rows.k.push(kh);
        }
      }
      for (let kw = 0; kw < KW; kw++) {
        if (mod(rx + PW - kw * DW, SW) === 0) {
          cols.off.push((rx + PW - kw * DW) / SW);
          cols.k.push(kw);
        }
      }
      if (!rows.off.length || !cols.off.length) {
        inputGrad.push(null);
        continue;
      }
      inputGrad.push(coreDispatch(g, C, rows, cols, residueClassWindow(g, ry, rx), true, false, sg8));
    }
  }
  return {
    geometry: g,
    path: 'implicit',
    tiled: null,
    forward,
    inputGrad,
    inputGradStride2,
    weightGrad: weightGradFolded ? null : wgradPlan(g, sg8),
    weightGradFolded,
  };
}

function wgradPlan(g: ConvGeometry, sg8: boolean): WgradPlan {
  const { N, C, W, O, KH, KW, SH, SW, PH, PW, DW, OH, OW } = g;
  // With subgroups the dy tile is shared, so it can be wider in output channels.
  const TMW = O <= 4 ? 4 : O <= 8 || !sg8 ? 8 : 16;
  // Segments of 4 columns: where OW divides by 4 they read dy as aligned vec4s. The loads per
  // FMA barely depend on TN here (dy loads grow with it), and a short segment halves the
  // unrolled body and the live dy tile: on 14x14 and 7x7 maps 4 columns (one padded segment
  // per row) took ~25% less CPU time than 7.
  const DYV = OW % 4 === 0;
  const TN = 4;
  const KHL = KH <= 3 ? KH : 1;
  const KHB = KH / KHL;
  const OB = Math.ceil(O / TMW);
  const lanes = sg8 ? C * KHB : OB * C * KHB;
  const groups = sg8 ? Math.ceil(lanes / 8) * OB : Math.ceil(lanes / WG_LANE);
  const R = N * OH;
  // Chunks of output rows small enough that one chunk's dy and x rows stay in cache while every
  // (output, input channel) block of the workgroup grid passes over them...
  const rowBytes = 4 * (O * OW + C * W * SH);
  let rowsPerChunk = Math.max(1, Math.min(R, Math.floor(WGRAD_CHUNK_BYTES / rowBytes)));
  // ...but not so many that the partials grow past their budget.
  const partial = O * C * KH * KW;
  rowsPerChunk = Math.max(rowsPerChunk, Math.ceil((R * partial) / WGRAD_MAX_PARTIAL));
  const chunks = Math.ceil(R / rowsPerChunk);
  const WSTEP = KW > 1 ? gcd(SW, DW) : SW;
  const defines: Defines = {
    TMW,
    TN,
    KW,
    KHL,
    SW,
    DW,
    WSTEP,
    WIN: ((TN - 1) * SW + (KW - 1) * DW) / WSTEP + 1,
    PAD: PH > 0 || PW > 0 || OW % TN !== 0,
    DYV,
  };
  if (!sg8) Object.assign(defines, { WG: WG_LANE, CHECK: lanes % WG_LANE !== 0 || O % TMW !== 0 });
  return { defines, TMW, TN, sg8, groups, lanes, chunks, rowsPerChunk };
}
