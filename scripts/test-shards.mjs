// How the test files are split into shards that run as parallel processes (scripts/run-tests.mjs).
// Why: on a CPU Vulkan driver a cold run is mostly pipeline compilation, which happens on the
// thread that creates the pipeline, so one test process keeps one core busy; two processes on
// two cores nearly halve it. Files are dealt greedily by their cold seconds (measured on the
// 2-core machine, Mesa lavapipe, empty shader cache; others count DEFAULT_SECONDS), heaviest
// first, each to the shard with the least so far. Figures going stale only unbalances shards.
import { availableParallelism } from 'node:os';
import { basename } from 'node:path';

const COLD_SECONDS = {
  'conv2d.test.ts': 118,
  'bench_gpu.test.ts': 110,
  'mixed_precision.test.ts': 100,
  'matmul.test.ts': 75,
  'conv2d_mixed.test.ts': 55,
  'distributed.test.ts': 33,
  'matmul_mixed.test.ts': 23,
  'densecl_parity.test.ts': 20,
  'tune.test.ts': 16,
};
const DEFAULT_SECONDS = 5;

/** Shards wanted: TEST_SHARDS, else one per core up to 2 (the CI machine's cores). */
export function shardCount(env = process.env) {
  const n = Number(env.TEST_SHARDS || Math.min(2, availableParallelism()));
  if (!Number.isInteger(n) || n < 1) throw new Error(`TEST_SHARDS must be a whole number >= 1, got ${env.TEST_SHARDS}`);
  return n;
}

/** `files` (paths) in `n` lists of about equal cold time, each in the files' given order. */
export function splitTests(files, n) {
  const cost = (f) => COLD_SECONDS[basename(f)] ?? DEFAULT_SECONDS;
  const shards = Array.from({ length: n }, () => ({ files: [], seconds: 0 }));
  for (const f of [...files].sort((a, b) => cost(b) - cost(a))) {
    const s = shards.reduce((best, x) => (x.seconds < best.seconds ? x : best));
    s.files.push(f);
    s.seconds += cost(f);
  }
  return shards.filter((s) => s.files.length).map((s) => files.filter((f) => s.files.includes(f)));
}
