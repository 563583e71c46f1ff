// Every WGSL kernel (shaders/ and its folders but lib/, which holds include snippets; the peak
// and benchmark kernels beside their users) compiles with its //! defaults without a WGSL error,
// and its uniform layout can be read; the runtime also reports compile errors instead of running zeros.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { gpu } from './helpers.js';
import { runtime, tensor } from '../engine/index.js';
import { specialize } from '../engine/kernel.js';
import { reflectShader } from '../engine/uniforms.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const KERNEL_FOLDERS = ['shaders', 'engine', 'bench'];

/** Paths of the .wgsl kernels below `dir`, relative to the repository root (lib/ snippets left out). */
function kernelFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'lib' || e.name === 'results' ? [] : kernelFiles(path);
    return e.name.endsWith('.wgsl') ? [path] : [];
  });
}

const t = suite('shaders compile');

t('every WGSL kernel compiles with its defaults', async () => {
  await gpu();
  const device = runtime().device;
  const files = KERNEL_FOLDERS.flatMap(kernelFiles);
  assert.ok(files.length > 50, `found ${files.length} shaders`);
  for (const moved of [
    'shaders/conv2d/gemm.wgsl',
    'shaders/matmul/tiled.wgsl',
    'engine/peak/fma.wgsl',
    'bench/naive_matmul.wgsl',
    'shaders/densecl/contrastive_tile.wgsl',
  ])
    assert.ok(files.includes(moved), `${moved} is among ${files.join(', ')}`);
  const failures: string[] = [];
  for (const f of files) {
    const code = specialize(readFileSync(join(ROOT, f), 'utf8'), f);
    if (/^\s*enable subgroups/m.test(code) && !device.features.has('subgroups')) continue; // variant not offered on this adapter
    if (/^\s*enable f16/m.test(code) && !device.features.has('shader-f16')) continue;
    // The reflector cannot parse subgroup matrix types (ops/subgroup-matrix.ts gives that kernel
    // the tiled one's interface); test/matmul_mixed.test.ts validates it on Dawn's null backend.
    const subgroupMatrix = /^\s*enable chromium_experimental_subgroup_matrix/m.test(code);
    if (subgroupMatrix && !device.features.has('chromium-experimental-subgroup-matrix' as GPUFeatureName)) continue;
    if (!subgroupMatrix) reflectShader(code, f);
    const module = device.createShaderModule({ label: f, code });
    const info = await module.getCompilationInfo();
    for (const m of info.messages) if (m.type === 'error') failures.push(`${f}:${m.lineNum}:${m.linePos} ${m.message}`);
  }
  assert.equal(failures, [], failures.join('\n'));
});

t('a kernel with a WGSL error fails loudly at the next read', async () => {
  const rt = runtime();
  const bad = `struct Params { n: u32, }\n@group(0) @binding(0) var<uniform> params: Params;\n@group(0) @binding(1) var<storage, read_write> y: array<f32>;\n@compute @workgroup_size(1) fn main() { y[0] = undefined_name; }`;
  const x = tensor([1]);
  let message = '';
  try {
    rt.dispatch(rt.kernel('broken_test_kernel', bad), {
      params: { n: 1 },
      buffers: [x.buffer('test')],
      workgroups: [1, 1, 1],
      op: 'test',
    });
    await x.data();
  } catch (e) {
    message = (e as Error).message;
  }
  assert.match(message, /broken_test_kernel/);
});

t.run();
