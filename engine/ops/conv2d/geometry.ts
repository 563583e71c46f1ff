// The sizes of one conv2d, validated with errors that name the shapes: what every kernel of the
// family (plan, core, tiled, fold, pointwise, stride-2 gradient) reads, so none imports another for it.
import { formatShape } from '../../tensor.js';

const OP = 'conv2d';

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
}

/** Sizes of one convolution, validated. */
export interface ConvGeometry {
  N: number;
  C: number;
  H: number;
  W: number;
  O: number;
  KH: number;
  KW: number;
  SH: number;
  SW: number;
  PH: number;
  PW: number;
  DH: number;
  DW: number;
  OH: number;
  OW: number;
}

function pair(v: number | [number, number] | undefined, dflt: number, what: string): [number, number] {
  const p: number[] = v === undefined ? [dflt, dflt] : typeof v === 'number' ? [v, v] : [...v];
  if (p.length !== 2 || p.some((d) => !Number.isInteger(d))) {
    throw new Error(`${OP}: ${what} must be an integer or a pair of integers, got ${JSON.stringify(v)}`);
  }
  return [p[0], p[1]];
}

export function conv2dGeometry(
  xShape: readonly number[],
  wShape: readonly number[],
  opts: Conv2dOptions = {},
): ConvGeometry {
  if (xShape.length !== 4) throw new Error(`${OP}: input must be [N, C, H, W], got ${formatShape(xShape)}`);
  if (wShape.length !== 4) throw new Error(`${OP}: weight must be [O, C, KH, KW], got ${formatShape(wShape)}`);
  const [N, C, H, W] = xShape;
  const [O, Cw, KH, KW] = wShape;
  if (C !== Cw) {
    throw new Error(
      `${OP}: input ${formatShape(xShape)} has ${C} channels but weight ${formatShape(wShape)} expects ${Cw}; the second dimensions must match`,
    );
  }
  const [SH, SW] = pair(opts.stride, 1, 'stride');
  const [PH, PW] = pair(opts.padding, 0, 'padding');
  const [DH, DW] = pair(opts.dilation, 1, 'dilation');
  if (SH < 1 || SW < 1 || DH < 1 || DW < 1)
    throw new Error(`${OP}: stride ${SH}x${SW} and dilation ${DH}x${DW} must be positive`);
  if (PH < 0 || PW < 0) throw new Error(`${OP}: padding ${PH}x${PW} must be non-negative`);
  if ([N, C, H, W, O, KH, KW].some((d) => d < 1)) {
    throw new Error(
      `${OP}: every size must be positive, got input ${formatShape(xShape)} and weight ${formatShape(wShape)}`,
    );
  }
  const EH = (KH - 1) * DH + 1;
  const EW = (KW - 1) * DW + 1;
  if (EH > H + 2 * PH || EW > W + 2 * PW) {
    throw new Error(
      `${OP}: kernel ${KH}x${KW}${DH > 1 || DW > 1 ? ` (dilated to ${EH}x${EW})` : ''} of weight ${formatShape(wShape)} is larger than ` +
        `input ${formatShape(xShape)} padded by ${PH}x${PW} (${H + 2 * PH}x${W + 2 * PW}); use more padding or a larger input`,
    );
  }
  const OH = Math.floor((H + 2 * PH - EH) / SH) + 1;
  const OW = Math.floor((W + 2 * PW - EW) / SW) + 1;
  return { N, C, H, W, O, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW };
}

/**
 * Where the input gradient of residue class (ry, rx) lives in dx: rows ry, ry + SH, ... and
 * columns rx, rx + SW, ..., read from dy densely (the kernels' row/column strides and origins).
 */
export function residueClassWindow(g: ConvGeometry, ry: number, rx: number) {
  return {
    NR: Math.ceil((g.H - ry) / g.SH),
    NQ: Math.ceil((g.W - rx) / g.SW),
    SRS: 1,
    SCS: 1,
    ORS: g.SH,
    OR0: ry,
    OCS: g.SW,
    OC0: rx,
  };
}
