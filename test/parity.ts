// PyTorch parity fixtures (written by scripts/make_fixtures.py and scripts that reuse its
// FixtureFile): loading a file and checking one case's output and input gradients.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { tensor, backward, scope, type Tensor } from '../engine/index.js';
import { assertClose } from './helpers.js';

export interface FixtureTensor {
  shape: number[];
  dtype: 'f32' | 'i32';
  data: number[];
}

export interface FixtureCase {
  name: string;
  op: string;
  args: Record<string, unknown>;
  rtol: number;
  inputs: FixtureTensor[];
  output: FixtureTensor;
  upstream?: number[];
  grads?: (number[] | null)[];
}

export interface FixtureFile {
  generator: string;
  torch: string;
  cases: FixtureCase[];
}

/** Reads test/fixtures/<name>.json (tests run from the bundle in .build/test/). */
export function loadFixtures(name: string): FixtureFile {
  return JSON.parse(
    readFileSync(fileURLToPath(new URL(`../../test/fixtures/${name}.json`, import.meta.url)), 'utf8'),
  ) as FixtureFile;
}

/** Runs one op on a case's inputs; `args` is the case's untyped JSON argument object. */
export type OpRunner = (inputs: Tensor[], args: any) => Tensor;

function maxAbs(v: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < v.length; i++) m = Math.max(m, Math.abs(v[i]));
  return m;
}

/**
 * Checks one case within its relative tolerance; the absolute floor scales with the largest
 * expected magnitude, since values that cancel to near zero keep only an absolute accuracy.
 */
function close(actual: ArrayLike<number>, expected: number[], rtol: number, what: string): void {
  assertClose(actual, expected, rtol, 1e-6 * Math.max(1, maxAbs(expected)), what);
}

export async function checkCase(c: FixtureCase, run: OpRunner): Promise<void> {
  const wantsGrad = c.grads !== undefined;
  const inputs = c.inputs.map((x) => {
    const t = tensor(x.data, x.shape, x.dtype);
    return wantsGrad && x.dtype === 'f32' ? t.requireGrad() : t;
  });
  const out = scope(() => {
    const y = run(inputs, c.args);
    if (c.upstream) backward(y, tensor(c.upstream, y.shape));
    return y;
  });
  assert.equal([...out.shape], c.output.shape, `${c.name}: output shape`);
  assert.is(out.dtype, c.output.dtype, `${c.name}: output dtype`);
  const got = await out.data();
  if (c.output.dtype === 'i32') assert.equal([...got], c.output.data, `${c.name}: output`);
  else close(got, c.output.data, c.rtol, `${c.name}: output`);
  out.dispose();
  for (let k = 0; k < inputs.length; k++) {
    const want = c.grads?.[k];
    const g = inputs[k].grad;
    if (want) {
      assert.ok(g, `${c.name}: input ${k} got no gradient`);
      close(await g.data(), want, c.rtol, `${c.name}: gradient of input ${k}`);
    }
    g?.dispose();
    inputs[k].dispose();
  }
}
