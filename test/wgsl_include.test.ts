// The kernel loader's include step: snippets are spliced in once each, recursively, their
// defaults apply under the including file's, and a missing snippet is a clear error.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expandIncludes, specialize } from '../engine/kernel.js';
import { WGSL_LIB } from '../engine/wgsl-lib.js';

const t = suite('wgsl include');

const LIB = {
  'lib/a.wgsl': '//! SIZE = 4\nconst A_SIZE = $SIZE;\n//#include "lib/b.wgsl"',
  'lib/b.wgsl': 'fn twice(x: f32) -> f32 { return 2.0 * x; }',
};

t('a snippet is spliced in once, with the snippets it includes', () => {
  const out = expandIncludes('//#include "lib/a.wgsl"\n//#include "lib/b.wgsl"\nfn main() {}', 'test', LIB);
  assert.is(out.match(/fn twice/g)?.length, 1);
  assert.ok(out.indexOf('const A_SIZE') < out.indexOf('fn twice'), out);
  assert.match(out, /lib\/b\.wgsl included above/);
  assert.ok(out.endsWith('fn main() {}'));
});

t('a missing snippet names the file and the library', () => {
  assert.throws(
    () => expandIncludes('//#include "lib/nope.wgsl"', 'k.wgsl', LIB),
    /k\.wgsl includes "lib\/nope\.wgsl", which is not in the snippet library .*lib\/a\.wgsl/,
  );
});

t('the real library: matmul kernels share the parameter struct, defaults layer', () => {
  assert.ok(WGSL_LIB['lib/gemm_params.wgsl'].includes('struct Params'));
  const code = specialize('//! TRANS_A = true\n//#include "lib/gemm_params.wgsl"\nconst T = $TRANS_A;', 'x');
  assert.match(code, /struct Params \{/);
  assert.match(code, /const T = true;/);
  // A snippet's default applies where nothing else sets it, under the including file's and the caller's.
  const lib = { 'lib/s.wgsl': '//! N = 1\n//! M = 2\nconst S = $N + $M;' };
  assert.match(specialize('//#include "lib/s.wgsl"', 'y', {}, lib), /const S = 1 \+ 2;/);
  assert.match(specialize('//! N = 5\n//#include "lib/s.wgsl"', 'y', {}, lib), /const S = 5 \+ 2;/);
  assert.match(specialize('//! N = 5\n//#include "lib/s.wgsl"', 'y', { N: 7, M: 8 }, lib), /const S = 7 \+ 8;/);
});

t('a specialisation that uses f16 (not just names it in a comment) enables it, once', () => {
  const src = '// f16 operands when T = f16\n//! T = f32\n@group(0) @binding(0) var<storage, read> x: array<$T>;';
  assert.not.match(specialize(src, 'x'), /enable f16/);
  assert.match(specialize(src, 'x', { T: 'f16' }), /^enable f16;\n/);
  assert.match(specialize(src, 'x', { T: 'vec4<f16>' }), /^enable f16;\n/);
  const explicit = specialize(`enable f16;\n${src}`, 'x', { T: 'f16' });
  assert.is(explicit.match(/enable f16/g)?.length, 1);
});

t('every snippet in shaders/lib/ is in the library, as its file holds it', () => {
  const dir = fileURLToPath(new URL('../../shaders/lib/', import.meta.url));
  const files = readdirSync(dir).filter((f) => f.endsWith('.wgsl'));
  assert.equal(Object.keys(WGSL_LIB).sort(), files.map((f) => `lib/${f}`).sort());
  for (const f of files) assert.is(WGSL_LIB[`lib/${f}`], readFileSync(`${dir}${f}`, 'utf8'), f);
});

t('the conv kernels: one window loader, and each twin keeps its own source array and window size', () => {
  const dir = fileURLToPath(new URL('../../shaders/conv2d/', import.meta.url));
  const code = (f: string) => specialize(readFileSync(`${dir}${f}`, 'utf8'), f);
  for (const [f, src, win] of [
    ['gemm.wgsl', 'S', 10],
    ['gemm_sg8.wgsl', 'S', 6],
    ['wgrad.wgsl', 'X', 10],
    ['wgrad_sg8.wgsl', 'X', 6],
  ] as const) {
    const c = code(f);
    assert.is(c.match(/fn loadWindow\(/g)?.length, 1, f);
    assert.ok(c.includes(`select(0.0, ${src}[u32(max(at, 0))], ok)`), `${f} reads its window from ${src}`);
    assert.ok(c.includes(`alias Win = array<f32, ${win}>;`), `${f} has a window of ${win}`);
  }
});

t.run();
