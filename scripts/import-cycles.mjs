#!/usr/bin/env node
// Lists the import circles among the project's TypeScript (and .mjs) modules and exits 1 when
// there is one, so CI keeps the floors acyclic. Every relative import counts: `import type`
// too (a type-only circle still means two modules that cannot be read, moved or tested apart),
// and `import()` expressions (a lazy import is still a dependency). Package imports are ignored.
//
//   node scripts/import-cycles.mjs              # each knot and its shortest circles; exit 1 if any
//   node scripts/import-cycles.mjs --list       # also print every module's number of imports
//   node scripts/import-cycles.mjs --root=DIR   # another tree (the test gives it a small one)
import { readdirSync, readFileSync, existsSync, statSync } from 'node:fs';
import { join, dirname, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const rootArg = process.argv.find((a) => a.startsWith('--root='));
const ROOT = rootArg
  ? resolve(rootArg.slice('--root='.length))
  : resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SKIP_DIRS = new Set(['node_modules', 'dist', '.build', '.git', 'runs', 'native']);
const SOURCE = /\.(ts|mts|mjs)$/;

function sourceFiles(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.') || SKIP_DIRS.has(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(path));
    else if (SOURCE.test(entry.name) && !entry.name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

// `import ... from 'x'`, `export ... from 'x'` (over several lines), `import 'x'`, `import('x')`.
const SPECIFIERS = [
  /^[ \t]*(?:import|export)\b[^;'"]*?\bfrom\s*['"]([^'"]+)['"]/gm,
  /^[ \t]*import\s*['"]([^'"]+)['"]/gm,
  /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
];

/** The module a relative specifier names: `./x.js` is written for `./x.ts`. */
function resolveSpecifier(from, spec) {
  if (!spec.startsWith('.')) return null;
  const base = resolve(dirname(from), spec);
  const candidates = [
    base,
    base.replace(/\.js$/, '.ts'),
    base.replace(/\.mjs$/, '.mts'),
    `${base}.ts`,
    join(base, 'index.ts'),
  ];
  return candidates.find((p) => existsSync(p) && statSync(p).isFile() && SOURCE.test(p)) ?? null;
}

function importGraph(files) {
  const graph = new Map();
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const deps = new Set();
    for (const pattern of SPECIFIERS) {
      for (const m of text.matchAll(pattern)) {
        const target = resolveSpecifier(file, m[1]);
        if (target && target !== file) deps.add(target);
      }
    }
    graph.set(file, [...deps].sort());
  }
  return graph;
}

/** Tarjan's strongly connected components with more than one module (each is a set of circles). */
function circles(graph) {
  let next = 0;
  const index = new Map(),
    low = new Map(),
    onStack = new Set(),
    stack = [],
    found = [];
  const visit = (v) => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
    }
    if (low.get(v) !== index.get(v)) return;
    const component = [];
    let w;
    do {
      w = stack.pop();
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1) found.push(component.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

/** The shortest circle through `start` inside its component. */
function shortestCircle(graph, members, start) {
  const previous = new Map([[start, null]]);
  const queue = [start];
  while (queue.length) {
    const v = queue.shift();
    for (const w of graph.get(v) ?? []) {
      if (!members.has(w)) continue;
      if (w === start) {
        const path = [];
        for (let u = v; u !== null; u = previous.get(u)) path.unshift(u);
        return path;
      }
      if (!previous.has(w)) {
        previous.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start];
}

/** The distinct shortest circles through each module of a component, each starting at its first module. */
function circlesOf(graph, component) {
  const members = new Set(component),
    seen = new Map();
  for (const start of component) {
    const path = shortestCircle(graph, members, start);
    const first = path.indexOf([...path].sort()[0]);
    const rotated = [...path.slice(first), ...path.slice(0, first)];
    seen.set(rotated.join(' '), rotated);
  }
  return [...seen.values()];
}

const name = (p) => relative(ROOT, p).split(sep).join('/');
const graph = importGraph(sourceFiles(ROOT));
const found = circles(graph);
if (process.argv.includes('--list'))
  for (const [file, deps] of graph) console.log(`${name(file)}: ${deps.length} imports`);
for (const component of found) {
  const circles = circlesOf(graph, component);
  console.log(
    `a knot of ${component.length} modules (${component.map(name).join(', ')}), through ${circles.length} shortest circle(s):`,
  );
  for (const path of circles) console.log(`  import circle: ${[...path, path[0]].map(name).join(' -> ')}`);
}
if (found.length) {
  console.error(
    `${found.length} knot(s) of import circles among ${graph.size} modules: move the shared types into a module both sides import, or turn one dependency round.`,
  );
  process.exit(1);
}
console.log(`no import circles among ${graph.size} modules`);
