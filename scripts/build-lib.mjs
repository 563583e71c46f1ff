// Builds the package: ESM bundles of the three entry points for Node and for browsers, type
// declarations, and (with --web) the demo page.
//   node scripts/build-lib.mjs            dist/node, dist/browser, dist/types; prints the sizes
//   node scripts/build-lib.mjs --web      also the demo page's script (dist/web/app.js)
//   node scripts/build-lib.mjs --no-types skips the declarations (faster while editing)
//   node scripts/build-lib.mjs --target node|browser   one build only (npm test builds node; the
//                                         browser build's checks run as a test, test/package_build)
//
// Entry points share one copy of the engine through split chunks: the models and the trainer
// must see the runtime that `init()` of the main entry set, so they cannot each bundle their own.
// The browser build must not touch Node: a static import of a Node built-in fails the build; a
// dynamic one (reached only on Node-only paths, such as the loader's worker threads) becomes a
// stub that throws a clear error if it is ever called; the output is then searched for any
// `node:` import that slipped through, and the sources for unguarded uses of `process`.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, rmSync, statSync } from 'node:fs';
import { join, relative, dirname } from 'node:path';
import { gzipSync } from 'node:zlib';
import { builtinModules } from 'node:module';

const root = new URL('..', import.meta.url).pathname;
const args = new Set(process.argv.slice(2));
const ENTRIES = { index: 'engine/index.ts', models: 'models/index.ts', train: 'train/index.ts' };

const common = {
  entryPoints: Object.fromEntries(Object.entries(ENTRIES).map(([name, file]) => [name, join(root, file)])),
  bundle: true,
  splitting: true,
  format: 'esm',
  sourcemap: 'linked',
  loader: { '.wgsl': 'text' },
  mainFields: ['module', 'main'],
  chunkNames: 'chunks/[name]-[hash]',
  logLevel: 'warning',
  metafile: true,
};

const NODE_BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/** Browser build: Node built-ins are an error when imported statically, a throwing stub when imported dynamically. */
const noNodeInBrowser = {
  name: 'no-node-in-browser',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (a) => {
      if (!NODE_BUILTINS.has(a.path)) return undefined;
      if (a.kind === 'dynamic-import') return { path: a.path, namespace: 'node-stub' };
      return {
        errors: [
          {
            text: `Node built-in '${a.path}' is imported by ${relative(root, a.importer)}: the browser build must not depend on Node. Move it behind a dynamic import on a Node-only path.`,
          },
        ],
      };
    });
    b.onLoad({ filter: /.*/, namespace: 'node-stub' }, (a) => ({
      contents: `throw new Error(${JSON.stringify(`'${a.path}' is not available in a browser (this code path is Node-only)`)});`,
      loader: 'js',
    }));
  },
};

function assertNoNodeImports(dir) {
  const leaks = [];
  for (const f of listJs(dir)) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(
      /(?:from\s*|import\s*\(\s*|require\s*\(\s*|import\s+)["'](node:[^"']+|[^"'./][^"']*)["']/g,
    )) {
      if (NODE_BUILTINS.has(m[1])) leaks.push(`${relative(root, f)}: ${m[0]}`);
    }
  }
  if (leaks.length) throw new Error(`the browser build imports Node built-ins:\n  ${leaks.join('\n  ')}`);
}

/** Code that reads Node's `process` without a `typeof process` guard on the same line throws at load in a browser. */
function assertNoProcessGlobal(metafile) {
  const uses = [];
  for (const input of Object.keys(metafile.inputs)) {
    if (input.includes('node_modules/') || input.includes(':')) continue;
    readFileSync(join(root, input), 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (/(^|[^.\w])process\./.test(line) && !/typeof process/.test(line) && !/^\s*(\/\/|\*)/.test(line))
          uses.push(`${input}:${i + 1}: ${line.trim()}`);
      });
  }
  if (uses.length)
    throw new Error(`the browser build reads Node's \`process\` (undefined in a browser):\n  ${uses.join('\n  ')}`);
}

function listFiles(dir, ...suffixes) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...listFiles(p, ...suffixes));
    else if (suffixes.some((s) => e.name.endsWith(s))) out.push(p);
  }
  return out;
}
const listJs = (dir) => listFiles(dir, '.js', '.mjs');

function sizes(dir) {
  const files = listJs(dir);
  const raw = files.reduce((s, f) => s + statSync(f).size, 0);
  const gz = files.reduce((s, f) => s + gzipSync(readFileSync(f)).length, 0);
  return { files: files.length, raw, gz };
}

const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;

const WEB_TO_PACKAGE = {
  // The page imports the package's browser build, not a second copy of the engine.
  name: 'page-uses-package',
  setup(b) {
    const map = {
      '../engine/index.js': '../browser/index.js',
      '../models/index.js': '../browser/models.js',
      '../train/index.js': '../browser/train.js',
    };
    b.onResolve({ filter: /^\.\.\/(engine\/index|models\/index|train\/index)\.js$/ }, (a) => ({
      path: map[a.path],
      external: true,
    }));
  },
};

async function buildNode() {
  const result = await build({
    ...common,
    platform: 'node',
    target: 'node20',
    outdir: join(root, 'dist/node'),
    external: ['webgpu', 'sharp'],
  });
  // The loader's worker threads load data-worker.mjs from next to the output file that holds the loader.
  const loaderOut = Object.entries(result.metafile.outputs).find(([, o]) =>
    Object.keys(o.inputs).includes('train/data/loader.ts'),
  )[0];
  await build({
    ...common,
    entryPoints: [join(root, 'train/data/worker.ts')],
    splitting: false,
    metafile: false,
    platform: 'node',
    target: 'node20',
    outfile: join(root, dirname(loaderOut), 'data-worker.mjs'),
    external: ['webgpu', 'sharp'],
  });
}

async function buildBrowser(web) {
  const result = await build({
    ...common,
    platform: 'browser',
    target: 'es2022',
    outdir: join(root, 'dist/browser'),
    plugins: [noNodeInBrowser],
  });
  assertNoNodeImports(join(root, 'dist/browser'));
  assertNoProcessGlobal(result.metafile);
  if (web) {
    const page = await build({
      ...common,
      entryPoints: [join(root, 'web/app.ts')],
      splitting: false,
      platform: 'browser',
      target: 'es2022',
      outfile: join(root, 'dist/web/app.js'),
      plugins: [WEB_TO_PACKAGE, noNodeInBrowser],
    });
    assertNoNodeImports(join(root, 'dist/web'));
    assertNoProcessGlobal(page.metafile);
  }
}

function buildTypes() {
  const tsc = join(root, 'node_modules/.bin/tsc');
  const flags = [
    '--ignoreConfig',
    '--declaration',
    '--emitDeclarationOnly',
    '--outDir',
    join(root, 'dist/types'),
    '--target',
    'ES2022',
    '--module',
    'ESNext',
    '--moduleResolution',
    'Bundler',
    '--lib',
    'ES2022,DOM',
    '--types',
    '@webgpu/types',
    '--strict',
    '--skipLibCheck',
    '--allowImportingTsExtensions',
  ];
  try {
    execFileSync(
      tsc,
      [...flags, ...Object.values(ENTRIES).map((f) => join(root, f)), join(root, 'shaders/wgsl.d.ts')],
      { cwd: root, stdio: 'pipe' },
    );
  } catch (e) {
    throw new Error(`type declarations failed:\n${e.stdout}${e.stderr}`);
  }
  writeWebGpuHandles();
}

// The declarations name WebGPU's interfaces (GPUDevice, GPUBuffer, ...). Referencing @webgpu/types
// breaks strict consumers both ways: beside TypeScript's DOM lib (which declares WebGPU too) its
// declarations clash, and without the DOM lib they need BufferSource, ImageBitmap, ... Instead the
// entry files reference an empty global interface per name: it merges with the full one where the
// consumer has it (the DOM lib, or @webgpu/types), and is an opaque handle where not. Type aliases
// (GPUFeatureName, ...) cannot merge, so the declarations may name WebGPU interfaces only.
const HANDLES = 'webgpu-handles.d.ts';

function writeWebGpuHandles() {
  const dir = join(root, 'dist/types');
  const webgpu = readFileSync(join(root, 'node_modules/@webgpu/types/dist/index.d.ts'), 'utf8');
  const interfaces = new Set([...webgpu.matchAll(/^(?:declare )?interface (GPU\w*)/gm)].map((m) => m[1]));
  const used = new Map();
  for (const f of listFiles(dir, '.d.ts')) {
    const code = readFileSync(f, 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/\/\/.*$/gm, '');
    for (const m of code.matchAll(/\bGPU\w*/g)) if (!used.has(m[0])) used.set(m[0], relative(dir, f));
  }
  const notInterfaces = [...used].filter(([name]) => !interfaces.has(name));
  if (notInterfaces.length) {
    throw new Error(
      `the declarations name WebGPU types that are not interfaces: ${notInterfaces.map(([n, f]) => `${n} (${f})`).join(', ')}; spell them out in the source (e.g. a string union) so consumers without @webgpu/types can compile`,
    );
  }
  const names = [...used.keys()].sort();
  const text = `// WebGPU interfaces named by this package's declarations, empty: each merges with the full\n// declaration where the consumer has one (TypeScript's DOM lib, or @webgpu/types).\n${names.map((n) => `interface ${n} {}`).join('\n')}\n`;
  writeFileSync(join(dir, HANDLES), text);
  for (const f of Object.values(ENTRIES)) {
    const p = join(dir, f.replace(/\.ts$/, '.d.ts'));
    writeFileSync(
      p,
      `/// <reference path="${relative(dirname(p), join(dir, HANDLES))}" />\n${readFileSync(p, 'utf8')}`,
    );
  }
}

/** Builds the given targets ('node', 'browser'), the declarations and the page; returns the sizes. */
export async function buildLib({ targets = ['node', 'browser'], types = true, web = false, quiet = false } = {}) {
  const dirs = [...targets.map((t) => `dist/${t}`), ...(types ? ['dist/types'] : []), ...(web ? ['dist/web'] : [])];
  for (const d of dirs) rmSync(join(root, d), { recursive: true, force: true });
  await Promise.all([
    targets.includes('node') && buildNode(),
    (targets.includes('browser') || web) && buildBrowser(web),
  ]);
  if (types) buildTypes();
  const report = Object.fromEntries(targets.map((t) => [t, sizes(join(root, `dist/${t}`))]));
  if (!quiet) {
    for (const [name, s] of Object.entries(report))
      console.log(`dist/${name}: ${s.files} files, ${kib(s.raw)} (${kib(s.gz)} gzipped)`);
  }
  return report;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const only = process.argv.indexOf('--target');
  const targets = only > 0 ? [process.argv[only + 1]] : ['node', 'browser'];
  if (!targets.every((t) => t === 'node' || t === 'browser'))
    throw new Error(`--target must be node or browser, got ${targets}`);
  await buildLib({ targets, types: !args.has('--no-types'), web: args.has('--web') }).catch((e) => {
    console.error(`build-lib: ${e.message}`);
    process.exit(1);
  });
}
