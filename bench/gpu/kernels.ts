// Single kernels side by side with TensorFlow.js's WebGPU backend on the same device: square
// matmuls (bench/matmul.ts's pairs) and the ResNet conv shapes of bench/conv.ts in all three
// directions. Every pair is checked to agree before it is timed.
import type { Runtime } from '../../engine/index.js';
import { squareMatmul } from '../matmul.js';
import { DIRS, disagreement, problem, setup } from '../conv.js';
import { measureCases, engineCase, tfjsCase, type Measurement, type TimingOptions } from '../lib/timing.js';
import type { Tfjs } from '../lib/tfjs.js';
import type { SizeSet } from './sizes.js';

export async function matmulVsTfjs(
  rt: Runtime,
  tfjs: Tfjs,
  sizes: number[],
  timing: TimingOptions,
): Promise<{ measurements: Measurement[]; worstDiff: number }> {
  const measurements: Measurement[] = [];
  let worstDiff = 0;
  for (const n of sizes) {
    const pair = await squareMatmul(rt, tfjs, n);
    worstDiff = Math.max(worstDiff, pair.diff);
    measurements.push(
      ...(await measureCases(
        'gpu matmul',
        { label: `matmul ${n}x${n}x${n}`, flops: 2 * n ** 3, bytes: 12 * n * n },
        pair.cases,
        timing,
      )),
    );
    pair.dispose();
  }
  return { measurements, worstDiff };
}

export async function convVsTfjs(
  rt: Runtime,
  tfjs: Tfjs,
  conv: SizeSet['conv'],
  timing: TimingOptions,
): Promise<{ measurements: Measurement[]; worstDiff: number }> {
  const measurements: Measurement[] = [];
  let worstDiff = 0;
  for (const [i, l] of conv.layers.entries()) {
    const p = problem(l, conv.side(l), conv.sizeLabel, conv.batch);
    const s = setup(tfjs, p, 300 + i);
    try {
      for (const d of DIRS) {
        const diff = await disagreement(s, d);
        if (!(diff <= 1e-3))
          throw new Error(
            `gpu bench: conv ${p.label} ${d}: ours and tfjs disagree (max difference ${diff} of the largest value)`,
          );
        worstDiff = Math.max(worstDiff, diff);
        const work = { label: `conv ${p.label} ${d}`, flops: p.flops, bytes: p.bytes[d] };
        measurements.push(
          ...(await measureCases(
            'gpu conv',
            work,
            [engineCase('ours', rt, () => s.ours[d]().dispose()), tfjsCase('tfjs', tfjs, s.theirs[d])],
            timing,
          )),
        );
      }
    } finally {
      s.dispose();
    }
  }
  return { measurements, worstDiff };
}

/** Geometric mean of tfjs time / our time over the measurements whose workload ends with `suffix`. */
export function geomeanSpeedup(ms: Measurement[], suffix: string): number {
  const rs = ms
    .filter((m) => m.name === 'ours' && m.workload.endsWith(suffix))
    .map((m) => (ms.find((x) => x.name === 'tfjs' && x.workload === m.workload)?.msPerOp ?? NaN) / m.msPerOp)
    .filter(Number.isFinite);
  return rs.length ? Math.exp(rs.reduce((a, r) => a + Math.log(r), 0) / rs.length) : NaN;
}
