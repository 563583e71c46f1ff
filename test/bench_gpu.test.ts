// `npm run bench -- gpu` at its tiny sizes on this adapter (a child process, as a user runs it,
// writing into a temporary folder), with PyTorch pointed at a python that does not exist: the
// report must have every section, finite figures, and PyTorch's columns saying why they are
// empty. Then scripts/bench_torch_cuda.py's step against ours: the same weights, views and
// shuffle permutations give the same losses over two steps (so the script times the same work).
// That part needs python3 with torch (Debian's python3-torch); without it, it says so and skips:
// the engine's own step is checked against PyTorch in CI by densecl_parity's committed fixture,
// while this checks the bench script, which matters only where torch is installed.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gpu } from './helpers.js';
import { runProcess } from './processes.js';
import { Rng } from '../engine/index.js';
import { encodeSafetensors, safeTensor } from '../engine/safetensors.js';
import { Trainer, type TrainerOptions } from '../train/trainer.js';
import { runTorch } from '../bench/gpu/torch.js';
import { sizeSet } from '../bench/gpu/sizes.js';
import { LAYERS } from '../bench/conv.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const SCRIPT = join(root, 'scripts/bench_torch_cuda.py');
const t = suite('gpu benchmark suite and its PyTorch script');

t('the full size set is the GPU setting asked for; an unknown set is refused', () => {
  const full = sizeSet('full');
  const o = full.settings.map((x) => x.options);
  assert.equal(
    o.map((x) => [x.arch, x.width, x.smallStem, x.imgSize, x.batchSize, x.queueSize]),
    [
      ['resnet50', 1, false, 224, 32, 65536],
      ['resnet18', 1, false, 64, 256, 65536],
    ],
  );
  for (const x of o)
    assert.ok(x.queueSize % x.batchSize === 0 && x.batchSize % x.bnGroups === 0, 'the Trainer accepts the setting');
  assert.equal(full.methods, ['densecl', 'mocov2']);
  assert.ok(full.timedSteps >= 10 && full.warmupSteps >= 1);
  assert.equal(full.matmul, [1024, 2048, 4096]);
  assert.is(full.conv.batch, 32);
  assert.is(full.conv.layers, LAYERS, "bench/conv.ts's whole case list");
  assert.is(sizeSet().name, process.env.BENCH_GPU_SIZES || 'full');
  assert.throws(
    () => sizeSet('huge'),
    /BENCH_GPU_SIZES=huge is not a size set; use 'full' \(a GPU, the default\) or 'tiny'/,
  );
});

t('the gpu suite runs end to end at tiny sizes and says why PyTorch is missing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-gpu-'));
  try {
    const build = spawnSync(process.execPath, [join(root, 'scripts/build.mjs'), '--bench'], {
      cwd: root,
      encoding: 'utf8',
    });
    assert.is(build.status, 0, `bench build failed: ${build.stderr}`);
    const noPython = join(dir, 'no-such-python3');
    const env = { ...process.env, BENCH_GPU_SIZES: 'tiny', BENCH_RESULTS_DIR: dir, BENCH_PYTHON: noPython };
    const r = await runProcess(process.execPath, [join(root, '.build/bench/run.mjs'), 'gpu'], {
      limitMs: 240_000,
      env,
      cwd: root,
    });
    assert.is(
      r.code,
      0,
      `bench exited ${r.code}${r.killed ? ' (killed at the time limit)' : ''}: ${r.stderr.slice(-2000)}`,
    );

    const md = readFileSync(join(dir, 'gpu.md'), 'utf8');
    const first = md.split('\n')[0];
    assert.match(first, /tiny sizes/);
    assert.match(first, /NOT a GPU figure/, 'lavapipe must be called out on the first line');
    for (const heading of [
      '## Training steps: ours and PyTorch',
      '## Adapter, driver and measured peaks',
      '## Kernels: ours and TensorFlow.js WebGPU',
      '## Top 10 kernels: ',
      '## Detail',
    ]) {
      assert.ok(md.includes(heading), `gpu.md lacks '${heading}'`);
    }
    assert.match(md, /\| no python \| no python \| no python \|/);
    assert.ok(
      md.includes(`${noPython} was not found; set BENCH_PYTHON`),
      'the reason names the missing python and BENCH_PYTHON',
    );
    assert.ok(
      readFileSync(join(dir, 'README.md'), 'utf8').includes('[gpu](gpu.md)'),
      'the summary page is written beside the report',
    );

    const report = JSON.parse(readFileSync(join(dir, 'gpu.json'), 'utf8'));
    const x = report.extra;
    assert.is(x.sizes, 'tiny');
    assert.ok(x.peak.gflops > 0 && x.peak.gbps > 0, 'measured peaks');
    assert.is(x.steps.length, 4, 'two settings x (DenseCL, MoCo-v2)');
    const positive = (v: number, what: string) => assert.ok(Number.isFinite(v) && v > 0, `${what} is ${v}`);
    for (const s of x.steps) {
      const what = `${s.setting} ${s.method}`;
      for (const k of ['medianMs', 'imagesPerSec', 'recordMs', 'recordCpuMs', 'kernelMs', 'gpuBusy'])
        positive(s[k], `${what} ${k}`);
      assert.is(s.wallMs.length, 3, `${what}: 3 timed steps`);
      assert.ok(s.losses.every(Number.isFinite), `${what}: finite losses`);
      assert.ok(s.topKernels.length > 0 && s.topKernels.length <= 10, `${what}: top kernels`);
      assert.equal(s.pytorch, { fp32: 'no python', tf32: 'no python', bf16: 'no python' });
    }
    assert.is(x.denseclOverMocov2.length, 2);
    for (const r of x.denseclOverMocov2) positive(r.wall, 'DenseCL/MoCo-v2 wall ratio');
    const workloads = new Set<string>(report.measurements.map((m: { workload: string }) => m.workload));
    assert.is(workloads.size, 2 + 2 * 3, 'matmul 128 and 256, two conv shapes x 3 directions');
    for (const m of report.measurements) positive(m.msPerOp, `${m.workload} ${m.name}`);
    // Ours and tfjs for each; the matmuls also ours on f16 operands where the adapter has shader-f16.
    const f16 = (await gpu()).profile.features.shaderF16;
    for (const w of workloads) {
      const names: string[] = report.measurements
        .filter((m: { workload: string }) => m.workload === w)
        .map((m: { name: string }) => m.name);
      const want = /^matmul/.test(w) && f16 ? ['ours', 'tfjs', 'ours f16'] : ['ours', 'tfjs'];
      assert.equal(names.sort(), want.sort(), `${w}: ${names.join(', ')}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A python that imports torch and torchvision: BENCH_PYTHON, python3, or Debian's /usr/bin/python3. */
function torchPython(): string | null {
  for (const p of [process.env.BENCH_PYTHON, 'python3', '/usr/bin/python3']) {
    if (p && spawnSync(p, ['-c', 'import torch, torchvision'], { stdio: 'ignore' }).status === 0) return p;
  }
  return null;
}

t('scripts/bench_torch_cuda.py computes the same losses as our step (CPU, tiny size)', async () => {
  const python = torchPython();
  if (!python) {
    const hint =
      'no python3 with torch and torchvision (apt-get install python3-torch python3-torchvision, or set BENCH_PYTHON)';
    // CI installs them and sets CI_REQUIRE_TORCH=1, so there this check cannot silently skip.
    assert.ok(!process.env.CI_REQUIRE_TORCH, hint);
    console.log(`  skipped: ${hint}`);
    return;
  }
  const rt = await gpu();
  const dir = mkdtempSync(join(tmpdir(), 'bench-torch-check-'));
  try {
    const [B, S, T] = [4, 16, 2];
    const base: Partial<TrainerOptions> = {
      arch: 'resnet18',
      width: 0.25,
      smallStem: true,
      batchSize: B,
      imgSize: S,
      bnGroups: 2,
      queueSize: 8,
      dim: 16,
      tau: 0.2,
      emaMomentum: 0.99,
      lambda: 0.5,
      lr: 3,
      momentum: 0.9,
      weightDecay: 1e-4,
      totalSteps: 0,
      seed: 5,
    };
    const files: string[] = [];
    const ours: { loss: number; lossGlobal: number; lossDense: number | null }[][] = [];
    for (const method of ['densecl', 'mocov2'] as const) {
      const trainer = new Trainer(rt, { ...base, method });
      const rng = new Rng(11);
      const views = (): Float32Array => Float32Array.from({ length: T * B * 3 * S * S }, () => rng.normal());
      const [xq, xk] = [views(), views()];
      // The Trainer draws its shuffle-BN permutations from Rng(seed + 1), one per step.
      const perms = new Rng(base.seed! + 1);
      const perm = Int32Array.from(Array.from({ length: T }, () => perms.permutation(B)).flat());
      const state = join(dir, `${method}.state.safetensors`);
      const inputs = join(dir, `${method}.inputs.safetensors`);
      writeFileSync(state, await trainer.saveState());
      writeFileSync(
        inputs,
        encodeSafetensors(
          new Map([
            ['xq', safeTensor(xq, [T, B, 3, S, S])],
            ['xk', safeTensor(xk, [T, B, 3, S, S])],
            ['perm', safeTensor(perm, [T, B])],
          ]),
        ),
      );
      const n = B * 3 * S * S;
      const losses = [];
      for (let s = 0; s < T; s++)
        losses.push(await trainer.trainStep(xq.subarray(s * n, (s + 1) * n), xk.subarray(s * n, (s + 1) * n)));
      ours.push(losses);
      files.push(state, inputs);
      trainer.destroy();
    }
    const r = spawnSync(python, [SCRIPT, '--check', ...files], { encoding: 'utf8', timeout: 180_000 });
    assert.is(r.status, 0, `bench_torch_cuda.py --check failed: ${r.stderr}`);
    const theirs = JSON.parse(r.stdout.trim().split('\n').pop()!).runs;
    const close = (a: number, b: number, what: string) =>
      assert.ok(Math.abs(a - b) <= 1e-4 * Math.abs(b), `${what}: ours ${a}, PyTorch ${b}`);
    for (const [m, method] of ['densecl', 'mocov2'].entries()) {
      for (let s = 0; s < T; s++) {
        const [o, p] = [ours[m][s], theirs[m][s]];
        close(o.loss, p.loss, `${method} step ${s} loss`);
        close(o.lossGlobal, p.lossGlobal, `${method} step ${s} global loss`);
        if (method === 'densecl') close(o.lossDense!, p.lossDense, `${method} step ${s} dense loss`);
        else assert.is(p.lossDense, null);
      }
      assert.ok(ours[m][1].loss !== ours[m][0].loss, `${method}: the second step sees the SGD update, EMA and enqueue`);
    }

    // This python has torch but (here) no CUDA device: the bench's PyTorch columns say so.
    const run = runTorch([{ ...(base as TrainerOptions), method: 'mocov2' }], {
      warmup: 1,
      steps: 1,
      timeoutS: 120,
      python,
    });
    if (!run.ok) {
      assert.is(run.short, 'no CUDA', run.reason);
      assert.match(run.reason, /sees no CUDA device/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

t.run();
