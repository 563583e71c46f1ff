// Autotuning of the tiled convolution kernels (rt.tuner, engine/tune/tuner.ts): per shape class
// and direction, the tiles of TILED_TILES that fit the device are timed on scratch buffers and
// the fastest is used from then on. Only the tile within the tiled family is tuned; whether the
// tiled or the classic family runs stays the device profile's choice (the classic family's
// paths - fold, pointwise GEMM, implicit core, fused stride 2 - are not one plan to time).
// What is timed is each direction's conv2d_tiled dispatches; the weight re-layout, the zero fill
// of unreached dx classes and the sum of weight-gradient partials are left out.
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
  type TiledDispatch,
  type TiledPlan,
} from './tiled.js';
import { TILED_TILES, type TiledTileName } from './tiles.js';

export type ConvDirection = 'fwd' | 'dx' | 'dw';

const pow2 = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(n, 1)));

/** The tuning class: direction, sizes rounded up to powers of two, kernel, stride, padding, dilation. */
export function convShapeClass(g: ConvGeometry, dir: ConvDirection): string {
  const dims = `n${pow2(g.N)}|c${pow2(g.C)}|o${pow2(g.O)}|hw${pow2(g.H)}x${pow2(g.W)}`;
  return `conv2d|f32|${dir}|${dims}|k${g.KH}x${g.KW}|s${g.SH}x${g.SW}|p${g.PH}x${g.PW}|d${g.DH}x${g.DW}`;
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

/** Records one run of a direction's dispatches on scratch buffers (slots: source, weight or dy, output). */
function recordDirection(rt: Runtime, g: ConvGeometry, plan: TiledPlan, dir: ConvDirection, rec: TuneRecorder): void {
  const x = 4 * g.N * g.C * g.H * g.W;
  const y = 4 * g.N * g.O * g.OH * g.OW;
  const relaid = (d: TiledDispatch): number =>
    4 * g.KH * g.KW * (d.params.CINP as number) * 4 * (d.params.MP4 as number);
  if (dir === 'fwd') {
    const a = rec.scratch(1, relaid(plan.forward));
    rec.dispatch(
      tiledKernel(rt, plan.forward),
      plan.forward.params,
      [rec.scratch(0, x), a, a, rec.scratch(2, y)],
      plan.forward.workgroups,
    );
  } else if (dir === 'dx') {
    for (const d of plan.inputGrad) {
      if (!d) continue;
      const a = rec.scratch(1, relaid(d));
      rec.dispatch(tiledKernel(rt, d), d.params, [rec.scratch(0, y), a, a, rec.scratch(2, x)], d.workgroups);
    }
  } else {
    const dy = rec.scratch(1, y);
    const partial = rec.scratch(2, 4 * plan.chunks * g.O * g.C * g.KH * g.KW);
    rec.dispatch(
      tiledKernel(rt, plan.weightGrad),
      plan.weightGrad.params,
      [rec.scratch(0, x), dy, dy, partial],
      plan.weightGrad.workgroups,
    );
  }
}

const defaultTileOf = (plan: TiledPlan, dir: ConvDirection): TiledTileName =>
  dir === 'fwd' ? plan.tile : dir === 'dx' ? plan.inputGradTile : plan.weightGradTile;

/** The plan with `dir`'s tile from rt.tuner (the default rule's until its class is timed). */
export function tunedTiledPlan(rt: Runtime, g: ConvGeometry, plan: TiledPlan, dir: ConvDirection): TiledPlan {
  if (rt.tuner.mode === 'off') return plan;
  const fallback = defaultTileOf(plan, dir);
  const { name, tuned } = rt.tuner.choose({
    key: convShapeClass(g, dir),
    candidates: convTileCandidates(rt),
    fallback,
    run: (tile, rec) => recordDirection(rt, g, withTile(g, plan, dir, tile as TiledTileName, false), dir, rec),
  });
  return tuned || name !== fallback ? withTile(g, plan, dir, name as TiledTileName, tuned) : plan;
}
