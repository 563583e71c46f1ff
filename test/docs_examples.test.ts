// The examples in docs/api.md cannot rot: every ```ts block is type-checked against the built
// package's declarations, then run as its own Node program that imports the package by name
// (as an embedding program would); it must succeed and then exit by itself.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = join(root, '.build/docs');
const t = suite('docs examples');

interface Example {
  line: number;
  heading: string;
  code: string;
  file: string;
}

function extract(markdown: string): Example[] {
  const out: Example[] = [];
  const lines = markdown.split('\n');
  let heading = '';
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].startsWith('#')) heading = lines[i].replace(/^#+\s*/, '');
    if (lines[i].trim() !== '```ts') continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && lines[end].trim() !== '```') end++;
    if (end === lines.length) throw new Error(`docs/api.md:${i + 1}: unclosed code block`);
    out.push({
      line: start + 1,
      heading,
      code: lines.slice(start, end).join('\n') + '\n',
      file: join(dir, `example-${out.length + 1}.ts`),
    });
    i = end;
  }
  return out;
}

const examples = extract(readFileSync(join(root, 'docs/api.md'), 'utf8'));

t('docs/api.md has runnable examples of the main tasks', () => {
  const all = examples.map((e) => e.code).join('\n');
  assert.ok(examples.length >= 5, `found ${examples.length} ts examples`);
  for (const [what, re] of [
    ['training a tiny model', /sgd\.step/],
    ['training DenseCL', /trainer\.trainStep/],
    ['profiling a step', /profileStep/],
    ['loading a checkpoint', /loadState/],
  ] as const) {
    assert.match(all, re, `an example shows ${what}`);
  }
});

t('the examples type-check against the package declarations', () => {
  assert.ok(
    existsSync(join(root, 'dist/types/train/index.d.ts')),
    'the package is built with types (node scripts/build-lib.mjs)',
  );
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const e of examples) writeFileSync(e.file, e.code);
  const tsc = spawnSync(
    join(root, 'node_modules/.bin/tsc'),
    [
      '--ignoreConfig',
      '--noEmit',
      '--strict',
      '--target',
      'ES2022',
      '--module',
      'ESNext',
      '--moduleResolution',
      'Bundler',
      '--lib',
      'ES2022,DOM',
      '--types',
      'node',
      '--skipLibCheck',
      ...examples.map((e) => e.file),
    ],
    { cwd: root, encoding: 'utf8' },
  );
  const where = (text: string) =>
    text.replace(
      /\.build\/docs\/example-(\d+)\.ts\((\d+),(\d+)\)/g,
      (_, n, l) => `docs/api.md:${examples[Number(n) - 1].line + Number(l) - 1}`,
    );
  assert.is(tsc.status, 0, `type errors in docs/api.md examples:\n${where(tsc.stdout + tsc.stderr)}`);
});

for (const [i, e] of examples.entries()) {
  t(`example ${i + 1} (docs/api.md:${e.line}, "${e.heading}") runs and exits`, () => {
    const js = e.file.replace(/\.ts$/, '.mjs');
    const strip = spawnSync(
      join(root, 'node_modules/.bin/esbuild'),
      [e.file, '--format=esm', '--platform=node', '--target=node20', `--outfile=${js}`, '--log-level=error'],
      { cwd: root, encoding: 'utf8' },
    );
    assert.is(strip.status, 0, strip.stderr);
    const run = spawnSync(process.execPath, [js], { cwd: root, encoding: 'utf8', timeout: 180_000 });
    const tail = (s: string) =>
      s
        .split('\n')
        .filter((l) => !l.startsWith('Warning: max'))
        .join('\n')
        .slice(-1500);
    assert.ok(
      run.signal === null,
      `the example did not exit within 180 s (signal ${run.signal}); output:\n${tail(run.stdout)}\n${tail(run.stderr)}`,
    );
    assert.is(run.status, 0, `the example failed:\n${tail(run.stderr)}`);
  });
}

t.run();
