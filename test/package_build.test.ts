// The package as published: the browser build has no Node dependencies (the build itself refuses
// static Node imports and unguarded `process`; this test runs it, so a leak fails the suite
// without stopping the other tests), and every path in package.json's exports exists.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const t = suite('package build');

t('the browser build succeeds with no Node built-ins or process reads in it', () => {
  const r = spawnSync(process.execPath, [join(root, 'scripts/build-lib.mjs'), '--target', 'browser', '--no-types'], {
    cwd: root,
    encoding: 'utf8',
  });
  assert.is(r.status, 0, `browser build failed:\n${r.stderr}`);
  assert.match(r.stdout, /dist\/browser: \d+ files, [\d.]+ KiB \([\d.]+ KiB gzipped\)/);
  const chunks = join(root, 'dist/browser/chunks');
  for (const f of [...readdirSync(join(root, 'dist/browser')), ...readdirSync(chunks).map((c) => `chunks/${c}`)].filter(
    (f) => f.endsWith('.js'),
  )) {
    const text = readFileSync(join(root, 'dist/browser', f), 'utf8');
    // Node-only paths become stubs that throw; nothing may import the real module.
    assert.not.match(text, /(from|import\()\s*["']node:/, `${f} imports a Node built-in`);
  }
});

t('every file named by the exports map exists', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    exports: Record<string, string | Record<string, string>>;
  };
  const paths = Object.values(pkg.exports).flatMap((v) => (typeof v === 'string' ? [v] : Object.values(v)));
  assert.ok(paths.length >= 12);
  for (const p of paths) assert.ok(existsSync(join(root, p)), `${p} is missing (node scripts/build-lib.mjs builds it)`);
});

t.run();
