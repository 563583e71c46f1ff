// Runs the test shards that `node scripts/build.mjs --tests` wrote (.build/test/shard-N.mjs, see
// scripts/test-shards.mjs) as parallel processes. Each shard's output is printed whole when it
// ends (two interleaved uvu reports would be unreadable); the exit status is non-zero when any
// shard failed or died.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const dir = new URL('../.build/test/', import.meta.url).pathname;
const shards = readdirSync(dir)
  .filter((f) => /^shard-\d+\.mjs$/.test(f))
  .sort();
if (!shards.length) {
  console.error('run-tests: no test shards in .build/test; build them with node scripts/build.mjs --tests');
  process.exit(1);
}
const t0 = performance.now();
const seconds = () => ((performance.now() - t0) / 1000).toFixed(1);
console.log(`[tests] ${shards.length} shard(s) in parallel: ${shards.join(', ')}`);
const results = await Promise.all(
  shards.map(
    (name) =>
      new Promise((done) => {
        const chunks = [];
        const child = spawn(process.execPath, [join(dir, name)], { stdio: ['ignore', 'pipe', 'pipe'] });
        child.stdout.on('data', (c) => chunks.push(c));
        child.stderr.on('data', (c) => chunks.push(c));
        child.on('close', (code, signal) => {
          console.log(
            `\n[tests] ${name} ended after ${seconds()} s: ${signal ? `killed by ${signal}` : `exit ${code}`}`,
          );
          process.stdout.write(Buffer.concat(chunks));
          done(code === 0 && !signal);
        });
      }),
  ),
);
const failed = shards.filter((_, i) => !results[i]);
console.log(`\n[tests] ${failed.length ? `FAILED: ${failed.join(', ')}` : 'all shards passed'} (${seconds()} s)`);
process.exit(failed.length ? 1 : 0);
