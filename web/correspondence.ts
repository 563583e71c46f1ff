// Where DenseCL's matched cells lie in the source image: for each query cell, its centre and
// the centre of the key cell it was matched to, mapped back through each view's crop and flip.
// A match is right when both centres fall within one key cell of each other in the scene.
import { viewToSource, type ViewParams } from '../train/index.js';

export type MatchKind = 'right' | 'wrong' | 'outside';

export interface CellMatch {
  /** Cell centres in view pixels (continuous coordinates, 0..size). */
  query: [number, number];
  key: [number, number];
  kind: MatchKind;
}

/** Centre of cell `index` of a grid x grid feature map over a view of `size` pixels. */
function cellCentre(index: number, grid: number, size: number): [number, number] {
  const cell = size / grid;
  return [((index % grid) + 0.5) * cell, (Math.floor(index / grid) + 0.5) * cell];
}

// viewToSource takes pixel indices (centre at x + 0.5); cell centres are continuous coordinates.
const toSource = (p: ViewParams, [x, y]: [number, number]) => viewToSource(p, x - 0.5, y - 0.5);

/**
 * Classifies the matches of one image: `matched[i]` is the key cell matched to query cell i
 * (row-major over a grid x grid map). 'outside' when the query cell's centre is not inside the
 * key view's crop (no right answer exists).
 */
export function classifyMatches(q: ViewParams, k: ViewParams, matched: ArrayLike<number>, grid: number): CellMatch[] {
  if (matched.length !== grid * grid)
    throw new Error(`classifyMatches: ${matched.length} indices for a ${grid}x${grid} grid`);
  const keyCell = Math.max(k.box.width, k.box.height) / grid;
  const out: CellMatch[] = [];
  for (let i = 0; i < matched.length; i++) {
    const query = cellCentre(i, grid, q.size);
    const key = cellCentre(matched[i], grid, k.size);
    const [sx, sy] = toSource(q, query);
    const inside =
      sx >= k.box.left && sx < k.box.left + k.box.width && sy >= k.box.top && sy < k.box.top + k.box.height;
    const [kx, ky] = toSource(k, key);
    const kind: MatchKind = !inside ? 'outside' : Math.hypot(sx - kx, sy - ky) <= keyCell ? 'right' : 'wrong';
    out.push({ query, key, kind });
  }
  return out;
}
