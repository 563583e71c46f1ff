// Autotuning: the tuner's modes, a GEMM class tuned on this adapter (timing apart from the
// recorded work), export/import, and the disk cache (corrupt and stale files, concurrent writers).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, writeFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gpu, randomArray, assertClose } from './helpers.js';
import { runProcess } from './processes.js';
import type { Runtime } from '../engine/index.js';
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
  assert.ok(Object.values(d.ms).every((ms) => ms > 0 && Number.isFinite(ms)), JSON.stringify(d.ms));
  assert.is(d.name, cands.reduce((a, b) => (d.ms[b] < d.ms[a] ? b : a)));
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
  assert.equal(rt.tuner.choose({ key: gemmShapeClass(other), candidates: ['a', 'b'], fallback: 'a', run: () => assert.unreachable() }), { name: 'a', tuned: false });
  assert.equal(rt.tuner.choose({ key, candidates: cands, fallback: 'x', run: () => {} }), { name: d.name, tuned: true });
  await rt.tuner.settled();
  assert.is(rt.tuner.stats.classesTuned, before);
  assert.throws(() => rt.tuner.import({ ...exported, kernelVersion: 'old' }), /kernel version old/);
  rt.tuner.mode = 'off';
});

t('disk cache: decisions persist; a corrupt or stale file is ignored with one warning and rewritten', async () => {
  const file = join(dir, 'a', 'tune.json');
  const warnings: string[] = [];
  const warn = (m: string) => warnings.push(m);
  const d: Decision = { name: 't64x64', ms: { t64x64: 1, vec4: 2 } };
  (await diskStore(file, KERNEL_VERSION, warn)).save('gpu1', 'k1', d);
  assert.equal((await diskStore(file, KERNEL_VERSION, warn)).load('gpu1'), { k1: d });
  assert.equal((await diskStore(file, KERNEL_VERSION, warn)).load('gpu2'), {});
  assert.equal(warnings, []);

  for (const [bad, why] of [['{"format": 1, "adap', /unreadable/], [JSON.stringify({ format: 1, kernelVersion: 'old', adapters: { gpu1: { k1: d } } }), /kernel version old.*stale/]] as const) {
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
  buildSync({ entryPoints: [src], bundle: true, platform: 'node', format: 'esm', outfile: join(dir, 'disk.mjs'), logLevel: 'error' });
  writeFileSync(program, `import { diskStore } from './disk.mjs';\nconst s = await diskStore(process.argv[2], ${JSON.stringify(KERNEL_VERSION)});\nfor (let i = 0; i < 60; i++) s.save('gpu', process.argv[3] + i, { name: 'x', ms: { x: i } });\n`);
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
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`a reader saw a broken file: ${(e as Error).message}`);
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
  console.log(`  (tune cache: ${keys.length} of 120 concurrent decisions kept, ${reads} reads during the writes all valid)`);
});

t.run();
