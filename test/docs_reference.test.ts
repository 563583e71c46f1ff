// docs/api.md as a reference: every value the three entry points export is named there (with its
// signature in the Reference tables), and every type or function it names in prose is one the
// package exports (or a method of an exported class), so the page cannot promise what a
// consumer cannot import.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const t = suite('docs reference');
const ENTRIES = ['engine/index.ts', 'models/index.ts', 'train/index.ts'];

/** Names exported by the entry files: values, and values plus types. */
function exportsOf(): { values: Set<string>; all: Set<string> } {
  const values = new Set<string>();
  const all = new Set<string>();
  for (const f of ENTRIES) {
    const src = readFileSync(join(root, f), 'utf8');
    for (const m of src.matchAll(/^export \{([^}]*)\}/gm)) {
      for (const part of m[1]
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean)) {
        const name = part
          .replace(/^type\s+/, '')
          .split(/\s+as\s+/)
          .pop()!;
        all.add(name);
        if (!part.startsWith('type ')) values.add(name);
      }
    }
    for (const m of src.matchAll(/^export (?:async )?(?:function|const|class) (\w+)/gm))
      [values, all].forEach((s) => s.add(m[1]));
    for (const m of src.matchAll(/^export (?:type|interface) (\w+)/gm)) all.add(m[1]);
  }
  return { values, all };
}

const doc = readFileSync(join(root, 'docs/api.md'), 'utf8');
// Inline code outside fenced blocks (the fenced examples are type-checked by docs_examples).
let fenced = false;
const prose = doc.split('\n').filter((line) => {
  if (line.trimStart().startsWith('```')) fenced = !fenced;
  else return !fenced;
  return false;
});
const spans = prose
  .join('\n')
  .match(/`[^`\n]+`/g)!
  .map((s) => s.slice(1, -1));

t('every exported value is in docs/api.md', () => {
  const { values } = exportsOf();
  assert.ok(values.size >= 90, `found ${values.size} exports`);
  const missing = [...values].filter(
    (n) =>
      !spans.some(
        (s) => new RegExp(`^(class |new )?${n}\\b`).test(s) || new RegExp(`[(,]\\s*${n}\\(|^${n}\\(|, ${n}\\b`).test(s),
      ),
  );
  assert.equal(missing, [], `exported but not in docs/api.md: ${missing.join(', ')}`);
});

// JavaScript, TypeScript and WebGPU names the page may use besides the package's own.
const PLATFORM = new Set([
  'Promise',
  'Partial',
  'Map',
  'Iterable',
  'ArrayLike',
  'Float32Array',
  'Int32Array',
  'Uint32Array',
  'Uint8Array',
  'Error',
  'ImageData',
]);

t('every type and function docs/api.md names is exported (or a member of an exported class)', () => {
  const { all } = exportsOf();
  assert.ok(
    existsSync(join(root, 'dist/types/engine/index.d.ts')),
    'the declarations are built (node scripts/build-lib.mjs)',
  );
  const declared = new Set<string>();
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else
        for (const m of readFileSync(join(dir, e.name), 'utf8').matchAll(
          /^\s+(?:static |readonly |get )?(\w+)[(<:?]/gm,
        ))
          declared.add(m[1]);
    }
  };
  walk(join(root, 'dist/types'));
  const unknownTypes = new Set<string>();
  const unknownCalls = new Set<string>();
  for (const s of spans) {
    if (/^(npm|node|npx|esbuild|tsc|densecl|mpirun) |^[./]|=|"|^https?:|^Warning:|\.cpp$/.test(s)) continue; // commands, paths, settings, quoted output
    for (const m of s.matchAll(/\b[A-Z][a-z]\w*\b/g))
      if (!all.has(m[0]) && !PLATFORM.has(m[0]) && !m[0].startsWith('GPU')) unknownTypes.add(m[0]);
    const call = /^(?:new )?(\w+)\(/.exec(s);
    if (call && !all.has(call[1]) && !declared.has(call[1])) unknownCalls.add(call[1]);
  }
  assert.equal(
    [...unknownTypes],
    [],
    `docs/api.md names types the package does not export: ${[...unknownTypes].join(', ')}`,
  );
  assert.equal(
    [...unknownCalls],
    [],
    `docs/api.md names functions the package does not have: ${[...unknownCalls].join(', ')}`,
  );
});

t.run();
