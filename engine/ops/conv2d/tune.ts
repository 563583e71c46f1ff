// Autotuning of the tiled convolution kernels (rt.tuner, engine/tune/tuner.ts): per shape class
// and direction, the tiles of TILED_TILES that fit the device are timed on scratch buffers and
// the fastest is used from then on. Only the tile within the tiled family is tuned; whether the
// tiled or the classic family runs stays the device profile's choice (the classic family's
// paths - fold, pointwise GEMM, implicit core, fused stride 2 - are not one plan to time).
// What is timed is each direction's conv2d_tiled dispatches; the weight re-layout, the zero fill
// of unreached dx classes and the sum of weight-gradient partials are left out. f16 operands
// (mixed precision) are a class of their own, timed on f16 scratch with the f16 kernels.
import type { Runtime } from '../../runtime.js';
import { workgroupProblem } from '../../device-profile.js';
import type { TuneRecorder } from '../../tune/measure.js';
import type { ConvGeometry } from './geometry.js';
import {
  tiledForward,
  tiledInputGrad,
  tiledWeightGrad,
  tiledKernel,
  tiledStorageBytes,
  halfDispatch,
  type TiledDispatch,
  type TiledPlan,
} from './tiled.js';
import { TILED_TILES, type TiledTileName } from './tiles.js';

export type ConvDirection = 'fwd' | 'dx' | 'dw';
/** The kernels' operand type: f32, or f16 under mixed precision. */
export type ConvOperands = 'f32' | 'f16';

const pow2 = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(n, 1)));

/** The tuning class: operand type, direction, sizes rounded up to powers of two, kernel, stride, padding, dilation. */
export function convShapeClass(g: ConvGeometry, dir: ConvDirection, operands: ConvOperands = 'f32'): string {
  const dims = `n${pow2(g.N)}|c${pow2(g.C)}|o${pow2(g.O)}|hw${pow2(g.H)}x${pow2(g.W)}`;
  return `conv2d|${operands}|${dir}|${dims}|k${g.KH}x${g.KW}|s${g.SH}x${g.SW}|p${g.PH}x${g.PW}|d${g.DH}x${g.DW}`;
}

/** The tiles this device can run (16x16 invocations and their workgroup storage). */
export function convTileCandidates(rt: Runtime): TiledTileName[] {
  return (Object.keys(TILED_TILES) as TiledTileName[]).filter(
    (n) => !workgroupProblem(rt.profile, { x: 16, y: 16, storageBytes: tiledStorageBytes(TILED_TILES[n]) }),
  );
}

/** One direction re-planned with `tile`, its dispatches marked tuned or not. */
function withTile(
  g: ConvGeometry,
  plan: TiledPlan,
  dir: ConvDirection,
  tile: TiledTileName,
  tuned: boolean,
): TiledPlan {
  const mark = (d: TiledDispatch | null): TiledDispatch | null => d && { ...d, tuned };
  if (dir === 'fwd') {
    const p = tiledForward(g, plan.hasBias, tile);
    return { ...plan, ...p, forward: mark(p.forward)! };
  }
  if (dir === 'dx') {
    const p = tiledInputGrad(g, tile);
    return { ...plan, ...p, inputGrad: p.inputGrad.map(mark) };
  }
  const p = tiledWeightGrad(g, tile);
  return { ...plan, ...p, weightGrad: mark(p.weightGrad)! };
}

/** Records one run of a direction's dispatches on scratch buffers (slots: source, weight or dy,
 *  output, and an f16 gradient's amax). Operand sizes in bytes follow the operand type; outputs are f32. */
function recordDirection(
  rt: Runtime,
  g: ConvGeometry,
  plan: TiledPlan,
  dir: ConvDirection,
  operands: ConvOperands,
  rec: TuneRecorder,
): void {
  const width = operands === 'f16' ? 2 : 4;
  const x = g.N * g.C * g.H * g.W;
  const y = g.N * g.O * g.OH * g.OW;
  const relaid = (d: TiledDispatch): number =>
    width * g.KH * g.KW * (d.params.CINP as number) * 4 * (d.params.MP4 as number);
  const half = operands === 'f16';
  const kernel = (d: TiledDispatch): TiledDispatch => (half ? halfDispatch(d, dir !== 'fwd') : d);
  // An f16 gradient's amax binding: zero scratch, i.e. scale 1 (the timing does not depend on it).
  const amax = (): GPUBuffer[] => (half && dir !== 'fwd' ? [rec.scratch(3, 4)] : []);
  if (dir === 'fwd') {
    const a = rec.scratch(1, relaid(plan.forward));
    rec.dispatch(
      tiledKernel(rt, kernel(plan.forward)),
      plan.forward.params,
      [rec.scratch(0, width * x), a, a, rec.scratch(2, 4 * y)],
      plan.forward.workgroups,
    );
  } else if (dir === 'dx') {
    for (const d of plan.inputGrad) {
      if (!d) continue;
      const a = rec.scratch(1, relaid(d));
      rec.dispatch(
        tiledKernel(rt, kernel(d)),
        d.params,
        [rec.scratch(0, width * y), a, a, rec.scratch(2, 4 * x), ...amax()],
        d.workgroups,
      );
    }
  } else {
    const dy = rec.scratch(1, width * y);
    const partial = rec.scratch(2, 4 * plan.chunks * g.O * g.C * g.KH * g.KW);
    rec.dispatch(
      tiledKernel(rt, kernel(plan.weightGrad)),
      plan.weightGrad.params,
      [rec.scratch(0, width * x), dy, dy, partial, ...amax()],
      plan.weightGrad.workgroups,
    );
  }
}

const defaultTileOf = (plan: TiledPlan, dir: ConvDirection): TiledTileName =>
  dir === 'fwd' ? plan.tile : dir === 'dx' ? plan.inputGradTile : plan.weightGradTile;

/** The plan with `dir`'s tile from rt.tuner (the default rule's until its class is timed). */
export function tunedTiledPlan(
  rt: Runtime,
  g: ConvGeometry,
  plan: TiledPlan,
  dir: ConvDirection,
  operands: ConvOperands = 'f32',
): TiledPlan {
  if (rt.tuner.mode === 'off') return plan;
  const fallback = defaultTileOf(plan, dir);
  const { name, tuned } = rt.tuner.choose({
    key: convShapeClass(g, dir, operands),
    candidates: convTileCandidates(rt),
    fallback,
    run: (tile, rec) =>
      recordDirection(rt, g, withTile(g, plan, dir, tile as TiledTileName, false), dir, operands, rec),
  });
  return tuned || name !== fallback ? withTile(g, plan, dir, name as TiledTileName, tuned) : plan;
}
