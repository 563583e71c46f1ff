// Autotuning: the tuner's modes, a GEMM class and a convolution's classes tuned on this adapter
// (timing apart from the recorded work), export/import, and the disk cache (corrupt and stale
// files, concurrent writers).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, writeFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gpu, randomArray, assertClose } from './helpers.js';
import { runProcess } from './processes.js';
import { backward, conv2d, type Runtime, type Tensor } from '../engine/index.js';
import {
  conv2dGeometry,
  convShapeClass,
  convTileCandidates,
  TILED_TILES,
  type ConvDirection,
} from '../engine/ops/conv2d/index.js';
import { overrideKernels } from '../engine/device-profile.js';
import { gemm, gemmCandidates, gemmShapeClass, type GemmArgs } from '../engine/ops/matmul.js';
import { tensorOn } from '../engine/ops/create.js';
import { KERNEL_VERSION, type Decision, type TuneStore } from '../engine/tune/tuner.js';
import { diskStore } from '../engine/tune/disk.js';

const t = suite('tuning');
let rt: Runtime;
const dir = mkdtempSync(join(tmpdir(), 'densecl-tune-'));

t.before(async () => {
  rt = await gpu();
});
t.after(() => {
  rt.tuner.mode = 'off';
  rmSync(dir, { recursive: true, force: true });
});

const G: GemmArgs = { batch: 1, M: 40, N: 36, K: 24, transA: false, transB: true, strideA: 0, strideB: 0 };

function memoryStore(): TuneStore & { saved: Record<string, Decision> } {
  const saved: Record<string, Decision> = {};
  return { saved, load: () => ({ ...saved }), save: (_a, k, d) => void (saved[k] = d) };
}

async function product(): Promise<ArrayLike<number>> {
  const a = tensorOn(rt, randomArray(G.M * G.K, 1), [G.M * G.K]);
  const b = tensorOn(rt, randomArray(G.N * G.K, 2), [G.N * G.K]);
  const c = gemm(a, b, G, 'tune.test');
  const out = await c.data();
  for (const x of [a, b, c]) x.dispose();
  return out;
}

t('off answers the profile default; on times the candidates in the background, then uses the winner', async () => {
  const store = memoryStore();
  rt.tuner.configure({ mode: 'off', store });
  const plain = await product();
  assert.is(rt.tuner.stats.classesTuned, 0);

  rt.tuner.configure({ mode: 'on', budgetMs: 5 });
  const submits = rt.stats.submits;
  const first = await product(); // the default kernel runs; timing starts apart from it
  assert.is(rt.stats.submits - submits, 1, 'the recorded work was submitted once, as without tuning');
  await rt.tuner.settled();
  const key = gemmShapeClass(G);
  const d = store.saved[key];
  assert.ok(d, 'a decision was stored');
  const cands = gemmCandidates(rt, G);
  assert.equal(Object.keys(d.ms).sort(), [...cands].sort());
  assert.ok(
    Object.values(d.ms).every((ms) => ms > 0 && Number.isFinite(ms)),
    JSON.stringify(d.ms),
  );
  assert.is(
    d.name,
    cands.reduce((a, b) => (d.ms[b] < d.ms[a] ? b : a)),
  );
  assert.is(rt.tuner.stats.classesTuned, 1);
  const kernels: string[] = [];
  rt.observer = { timestampWrites: (i) => void kernels.push(i.kernel), beforeSubmit: () => {}, afterSubmit: () => {} };
  const tuned = await product();
  rt.observer = null;
  assert.match(kernels.join(), /^matmul_.*\(tuned\)$/, 'the profiler sees the tuned kernel marked');
  assertClose(first, plain, 0, 0, 'first use: the default kernel');
  assertClose(tuned, plain, 1e-5, 1e-5, 'the tuned kernel');

  // Export, import into a fresh state, and 'cached' answers it without timing.
  const exported = JSON.parse(JSON.stringify(rt.tuner.export()));
  assert.is(exported.kernelVersion, KERNEL_VERSION);
  rt.tuner.import(exported);
  rt.tuner.configure({ mode: 'cached' });
  const before = rt.tuner.stats.classesTuned;
  const other = { ...G, M: 300 }; // another class: not in the cache, not timed in 'cached' mode
  assert.equal(
    rt.tuner.choose({
      key: gemmShapeClass(other),
      candidates: ['a', 'b'],
      fallback: 'a',
      run: () => assert.unreachable(),
    }),
    { name: 'a', tuned: false },
  );
  assert.equal(rt.tuner.choose({ key, candidates: cands, fallback: 'x', run: () => {} }), {
    name: d.name,
    tuned: true,
  });
  await rt.tuner.settled();
  assert.is(rt.tuner.stats.classesTuned, before);
  assert.throws(() => rt.tuner.import({ ...exported, kernelVersion: 'old' }), /kernel version old/);
  rt.tuner.mode = 'off';
});

interface ConvCase {
  name: string;
  args: { stride: [number, number]; padding: [number, number]; dilation: [number, number] };
  inputs: Record<'x' | 'weight' | 'bias', { shape: number[]; data: number[] }>;
  outputShape: number[];
  output: number[];
  upstream: number[];
  grads: Record<'x' | 'weight' | 'bias', number[]>;
}

/** Runs a PyTorch fixture case forward and backward, checks all results; returns the conv kernels' profiler names. */
async function convCase(c: ConvCase): Promise<string[]> {
  const [x, w, b] = (['x', 'weight', 'bias'] as const).map((k) =>
    tensorOn(rt, c.inputs[k].data, c.inputs[k].shape).requireGrad(),
  );
  const kernels: string[] = [];
  rt.observer = { timestampWrites: (i) => void kernels.push(i.kernel), beforeSubmit: () => {}, afterSubmit: () => {} };
  let y: Tensor;
  try {
    y = conv2d(x, w, b, c.args);
    backward(y, tensorOn(rt, c.upstream, c.outputShape));
  } finally {
    rt.observer = null;
  }
  assertClose(await y.data(), c.output, 1e-4, 1e-4, `${c.name} output`);
  assertClose(await x.grad!.data(), c.grads.x, 1e-4, 1e-4, `${c.name} grad x`);
  assertClose(await w.grad!.data(), c.grads.weight, 1e-3, 1e-4, `${c.name} grad weight`);
  assertClose(await b.grad!.data(), c.grads.bias, 1e-3, 1e-4, `${c.name} grad bias`);
  return kernels.filter((k) => k.startsWith('conv2d_tiled['));
}

t(
  "conv2d, tiled family: off times nothing; on times each direction's class over the tiles that fit, later calls use the winners",
  async () => {
    const fixtures = fileURLToPath(new URL('../../test/fixtures/conv2d.json', import.meta.url));
    // A case test/conv2d.test.ts runs with every tile: the timed candidates are pipelines built there.
    const c = (JSON.parse(readFileSync(fixtures, 'utf8')).cases as ConvCase[]).find(
      (k) => k.name === '7x7 s2 p3 stem, 3 channels, bias',
    )!;
    const g = conv2dGeometry(c.inputs.x.shape, c.inputs.weight.shape, c.args);
    const store = memoryStore();
    const restore = overrideKernels(rt.profile, { conv: 'tiled' }); // lavapipe's profile takes the classic family; no tile forced
    try {
      rt.tuner.configure({ mode: 'off', store });
      const before = rt.tuner.stats.classesTuned;
      const plain = await convCase(c);
      assert.is(rt.tuner.stats.classesTuned, before);
      assert.equal(store.saved, {});

      rt.tuner.configure({ mode: 'on', budgetMs: 5 });
      const first = await convCase(c);
      assert.equal(first, plain, 'first use: the default tiles, unmarked');
      await rt.tuner.settled();
      assert.is(rt.tuner.stats.classesTuned, before + 3);
      const cands = convTileCandidates(rt);
      assert.equal(cands, Object.keys(TILED_TILES), 'lavapipe fits every tile');
      const winner = {} as Record<ConvDirection, string>;
      for (const dir of ['fwd', 'dx', 'dw'] as const) {
        const d = store.saved[convShapeClass(g, dir)];
        assert.ok(d, `a decision for ${dir}`);
        assert.equal(Object.keys(d.ms).sort(), [...cands].sort());
        assert.ok(
          Object.values(d.ms).every((ms) => ms > 0 && Number.isFinite(ms)),
          JSON.stringify(d.ms),
        );
        assert.is(
          d.name,
          cands.reduce((a, b) => (d.ms[b] < d.ms[a] ? b : a)),
        );
        winner[dir] = d.name;
      }
      const tuned = await convCase(c);
      // Recorded in order: forward, then the backward's dx classes (4 at stride 2), then dw.
      assert.is(tuned.length, plain.length);
      assert.ok(
        tuned.every((k) => k.endsWith('(tuned)')),
        tuned.join(' '),
      );
      const tile = (k: string) =>
        k
          .match(/TM=(\d),TN=(\d)/)!
          .slice(1)
          .join('x');
      assert.is(tile(tuned[0]), winner.fwd);
      assert.ok(
        tuned.slice(1, -1).every((k) => tile(k) === winner.dx),
        tuned.join(' '),
      );
      assert.is(tile(tuned[tuned.length - 1]), winner.dw);
    } finally {
      restore();
      rt.tuner.mode = 'off';
    }
  },
);

t('disk cache: decisions persist; a corrupt or stale file is ignored with one warning and rewritten', async () => {
  const file = join(dir, 'a', 'tune.json');
  const warnings: string[] = [];
  const warn = (m: string) => warnings.push(m);
  const d: Decision = { name: 't64x64', ms: { t64x64: 1, vec4: 2 } };
  (await diskStore(file, KERNEL_VERSION, warn)).save('gpu1', 'k1', d);
  assert.equal((await diskStore(file, KERNEL_VERSION, warn)).load('gpu1'), { k1: d });
  assert.equal((await diskStore(file, KERNEL_VERSION, warn)).load('gpu2'), {});
  assert.equal(warnings, []);

  for (const [bad, why] of [
    ['{"format": 1, "adap', /unreadable/],
    [JSON.stringify({ format: 1, kernelVersion: 'old', adapters: { gpu1: { k1: d } } }), /kernel version old.*stale/],
  ] as const) {
    writeFileSync(file, bad);
    warnings.length = 0;
    const s = await diskStore(file, KERNEL_VERSION, warn);
    assert.equal(s.load('gpu1'), {});
    assert.equal(s.load('gpu1'), {});
    s.save('gpu1', 'k2', d);
    assert.is(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0], why);
    const now = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(now, { format: 1, kernelVersion: KERNEL_VERSION, adapters: { gpu1: { k2: d } } });
  }
});

t('two processes saving at once leave a valid file', async () => {
  // A small program on the bundled disk store; both write 60 decisions as fast as they can.
  const esbuild = 'esbuild'; // loaded at run time, not bundled
  const { buildSync } = (await import(esbuild)) as typeof import('esbuild');
  const program = join(dir, 'writer.mjs');
  const src = fileURLToPath(new URL('../../engine/tune/disk.ts', import.meta.url));
  buildSync({
    entryPoints: [src],
    bundle: true,
    platform: 'node',
    format: 'esm',
    outfile: join(dir, 'disk.mjs'),
    logLevel: 'error',
  });
  writeFileSync(
    program,
    `import { diskStore } from './disk.mjs';\nconst s = await diskStore(process.argv[2], ${JSON.stringify(KERNEL_VERSION)});\nfor (let i = 0; i < 60; i++) s.save('gpu', process.argv[3] + i, { name: 'x', ms: { x: i } });\n`,
  );
  const file = join(dir, 'shared', 'tune.json');
  const runs = ['p', 'q'].map((tag) => runProcess(process.execPath, [program, file, tag], { limitMs: 60_000 }));
  let reads = 0;
  let pending = true;
  void Promise.all(runs).then(() => (pending = false));
  while (pending) {
    try {
      JSON.parse(readFileSync(file, 'utf8'));
      reads++;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new Error(`a reader saw a broken file: ${(e as Error).message}`);
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  for (const r of await Promise.all(runs)) assert.is(r.code, 0, r.stderr);
  const final = JSON.parse(readFileSync(file, 'utf8'));
  const keys = Object.keys(final.adapters.gpu);
  // The last rename is one process's last save; decisions the other wrote meanwhile may be lost
  // (they would be timed again), never the file.
  assert.ok(keys.includes('p59') || keys.includes('q59'), keys.join());
  assert.equal(readdirSync(join(dir, 'shared')), ['tune.json'], 'no temporary files left');
  console.log(
    `  (tune cache: ${keys.length} of 120 concurrent decisions kept, ${reads} reads during the writes all valid)`,
  );
});

t.run();
