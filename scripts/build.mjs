// Bundles the TypeScript entry points with esbuild (WGSL imported as text).
//   node scripts/build.mjs            the CLI (dist/cli.mjs)
//   node scripts/build.mjs --tests    also test/*.test.ts into .build/test/shard-N.mjs (and test/mpi/*.ts)
//   node scripts/build.mjs --bench    also every bench/*.ts into .build/bench
import { build } from 'esbuild';
import { readdirSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { shardCount, splitTests } from './test-shards.mjs';

const root = new URL('..', import.meta.url).pathname;
const args = new Set(process.argv.slice(2));
const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'inline',
  loader: { '.wgsl': 'text' },
  mainFields: ['module', 'main'],
  external: ['webgpu', 'sharp', '@tensorflow/*', 'benny', 'uvu', 'uvu/*'],
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  logLevel: 'warning',
};

function entries(dir, suffix) {
  const full = join(root, dir);
  if (!existsSync(full)) return [];
  return readdirSync(full)
    .filter((f) => f.endsWith(suffix))
    .map((f) => join(full, f));
}

const jobs = [];
if (!args.has('--tests') && !args.has('--bench')) {
  // The published CLI keeps its map beside it (package.json's files leave maps out of the tarball).
  jobs.push(
    build({
      ...common,
      sourcemap: 'linked',
      entryPoints: [join(root, 'cli/main.ts')],
      outfile: join(root, 'dist/cli.mjs'),
      banner: { js: '#!/usr/bin/env node\n' + common.banner.js },
    }),
  );
}
if (args.has('--tests')) {
  rmSync(join(root, '.build/test'), { recursive: true, force: true });
  // A bundle per shard (scripts/test-shards.mjs; scripts/run-tests.mjs runs them in parallel):
  // the files of a shard share one GPU device and one pipeline cache.
  const only = process.env.TEST_FILTER ? new RegExp(process.env.TEST_FILTER) : null;
  const files = entries('test', '.test.ts')
    .sort()
    .filter((f) => !only || only.test(f));
  splitTests(files, shardCount()).forEach((shard, i) =>
    jobs.push(
      build({
        ...common,
        stdin: {
          contents: shard.map((f) => `import ${JSON.stringify(f)};`).join('\n'),
          resolveDir: root,
          sourcefile: `shard-${i}.ts`,
          loader: 'ts',
        },
        outfile: join(root, `.build/test/shard-${i}.mjs`),
      }),
    ),
  );
  // Programs the tests start as separate processes (test/mpi: one rank of an mpirun job).
  const programs = entries('test/mpi', '.ts');
  if (programs.length)
    jobs.push(
      build({
        ...common,
        entryPoints: programs,
        outdir: join(root, '.build/test/mpi'),
        outExtension: { '.js': '.mjs' },
      }),
    );
}
if (args.has('--bench')) {
  jobs.push(
    build({
      ...common,
      entryPoints: entries('bench', '.ts'),
      outdir: join(root, '.build/bench'),
      outExtension: { '.js': '.mjs' },
    }),
  );
}
// The data loader's worker threads load their own entry, found next to the bundle that uses it.
if (existsSync(join(root, 'train/data/worker.ts'))) {
  const dirs = [];
  if (!args.has('--tests') && !args.has('--bench')) dirs.push('dist');
  if (args.has('--tests')) dirs.push('.build/test');
  if (args.has('--bench')) dirs.push('.build/bench');
  for (const dir of dirs)
    jobs.push(
      build({
        ...common,
        ...(dir === 'dist' && { sourcemap: 'linked' }),
        entryPoints: [join(root, 'train/data/worker.ts')],
        outfile: join(root, dir, 'data-worker.mjs'),
      }),
    );
}
await Promise.all(jobs);
