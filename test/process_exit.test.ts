// A Node program that uses the package and releases what it took (the runtime, the trainer and
// a data loader with worker threads) must end on its own: nothing may keep the event loop alive.
// The child is a file inside the package (so it imports the built package by its name, as an
// embedding program would; a file, not -e, because worker threads inherit the node flags).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runProcess, type ChildResult } from './processes.js';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const t = suite('process exit');

const CHILD = `
import { init } from 'densecl-webgpu';
import { Trainer, SceneDataset, BatchLoader } from 'densecl-webgpu/train';
const rt = await init({ quiet: true });
const trainer = new Trainer(rt, { batchSize: 4, bnGroups: 2, imgSize: 16, width: 1 / 16, dim: 8, queueSize: 8 });
const loader = await BatchLoader.create(new SceneDataset({ size: 32, length: 8 }), { batchSize: 4, size: 16, seed: 0, workers: 1 });
const batch = await loader.next();
const stats = await trainer.trainStep(batch.q, batch.k);
await loader.close();
trainer.destroy();
rt.destroy();
console.log(JSON.stringify({ loss: stats.loss, releasedAt: performance.now() }));
`;

/** Writes `source` as a module under .build/process-exit and runs it with Node. */
function runChild(source: string, limitMs: number): Promise<ChildResult> {
  const dir = join(root, '.build/process-exit');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'child.mjs');
  writeFileSync(file, source);
  return runProcess(process.execPath, [file], { limitMs, cwd: root });
}

t('a program that destroys its runtime exits by itself', async () => {
  assert.ok(existsSync(`${root}/dist/node/train.js`), 'the package is built (node scripts/build-lib.mjs)');
  // Generous: a fresh machine compiles the child's pipelines cold on the CPU driver first.
  const r = await runChild(CHILD, 300_000);
  const out = r.stdout.trim().split('\n').at(-1) ?? '';
  assert.not.ok(
    r.killed,
    `the child did not exit within 300 s; it printed ${JSON.stringify(out)}; stderr: ${r.stderr.slice(-500)}`,
  );
  assert.is(r.code, 0, `the child failed: ${r.stderr.slice(-1000)}`);
  const { loss, releasedAt } = JSON.parse(out) as { loss: number; releasedAt: number };
  assert.ok(Number.isFinite(loss), `the step trained (loss ${loss})`);
  // The child's clock starts a little after spawn, so this overstates the time left after release.
  const afterRelease = r.ms - releasedAt;
  assert.ok(afterRelease < 3000, `the process lingered ${afterRelease.toFixed(0)} ms after destroy()`);
});

t.run();
