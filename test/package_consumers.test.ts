// The package as someone else's dependency: `npm pack` makes the tarball, which is unpacked into
// two tiny consumer projects (offline: the few packages they need are linked from this
// checkout's node_modules), and both compile with strict settings and skipLibCheck false:
//   node app:    "type": "module", lib ES2022 (no DOM), module NodeNext, @types/node; compiled with
//                tsc and run (with the optional peer `webgpu` linked in); its `densecl` program
//                must run without the optional peer `sharp` and name it when given image files;
//   browser app: lib DOM, moduleResolution Bundler, no Node types; bundled by esbuild for a
//                browser, which must pick the package's browser build. Run in Node without
//                `webgpu` installed, init() must fail with an error that names the package.
// The tarball must hold no source maps. The installed sizes of both consumers are printed.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const modules = join(root, 'node_modules');
const t = suite('package consumers');
const work = mkdtempSync(join(tmpdir(), 'densecl-consumers-'));
let tarball = '';

function run(cmd: string, args: string[], cwd: string): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** A consumer project: its files, the tarball unpacked as node_modules/densecl-webgpu, and links to the given packages. */
function project(name: string, files: Record<string, string>, linked: string[]): string {
  const dir = join(work, name);
  const pkg = join(dir, 'node_modules/densecl-webgpu');
  mkdirSync(pkg, { recursive: true });
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
  const tar = run('tar', ['-xzf', tarball, '-C', pkg, '--strip-components=1'], dir);
  assert.is(tar.status, 0, tar.out);
  for (const dep of linked) {
    mkdirSync(dirname(join(dir, 'node_modules', dep)), { recursive: true });
    symlinkSync(realpathSync(join(modules, dep)), join(dir, 'node_modules', dep));
  }
  return dir;
}

function tsc(dir: string): void {
  const r = run(join(modules, '.bin/tsc'), ['-p', dir], dir);
  assert.is(r.status, 0, `tsc -p ${dir} failed:\n${r.out}`);
}

/** Bytes on disk under a folder (following the links to packages). */
function bytes(path: string): number {
  const s = statSync(path);
  if (!s.isDirectory()) return s.size;
  return readdirSync(path).reduce((sum, f) => sum + bytes(join(path, f)), 0);
}

/** A package and everything it depends on (dependencies and optionalDependencies present here), by name. */
function closure(names: string[], seen = new Set<string>()): Set<string> {
  for (const name of names) {
    if (seen.has(name) || !existsSync(join(modules, name))) continue;
    seen.add(name);
    const pkg = JSON.parse(readFileSync(join(modules, name, 'package.json'), 'utf8')) as Record<
      string,
      Record<string, string> | undefined
    >;
    closure(Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies }), seen);
  }
  return seen;
}

const STRICT = {
  strict: true,
  skipLibCheck: false,
  noUncheckedIndexedAccess: true,
  exactOptionalPropertyTypes: true,
  noImplicitOverride: true,
  target: 'ES2022',
};

t('npm pack makes a tarball without source maps', () => {
  // What prepack builds, where this checkout lacks it (npm test builds only the node library).
  if (!existsSync(join(root, 'dist/browser/index.js')) || !existsSync(join(root, 'dist/types/engine/index.d.ts'))) {
    const b = run(process.execPath, [join(root, 'scripts/build-lib.mjs')], root);
    assert.is(b.status, 0, b.out);
  }
  if (!existsSync(join(root, 'dist/cli.mjs'))) {
    const b = run(process.execPath, [join(root, 'scripts/build.mjs')], root);
    assert.is(b.status, 0, b.out);
  }
  const r = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.is(r.status, 0, r.stderr);
  const [info] = JSON.parse(r.stdout) as {
    filename: string;
    size: number;
    unpackedSize: number;
    files: { path: string }[];
  }[];
  tarball = join(work, info.filename);
  const paths = info.files.map((f) => f.path);
  assert.ok(
    paths.includes('dist/types/webgpu-handles.d.ts') &&
      paths.includes('dist/browser/index.js') &&
      paths.includes('dist/node/index.js'),
    paths.join(' '),
  );
  assert.equal(
    paths.filter((p) => p.endsWith('.map')),
    [],
    'source maps in the tarball',
  );
  console.log(
    `  tarball: ${(info.size / 1024).toFixed(0)} KiB, ${(info.unpackedSize / 1024).toFixed(0)} KiB unpacked, ${paths.length} files`,
  );
});

t('a strict Node consumer (lib ES2022, NodeNext) compiles with tsc and runs', () => {
  const dir = project(
    'node-app',
    {
      'package.json': JSON.stringify({ name: 'node-app', private: true, type: 'module' }),
      'tsconfig.json': JSON.stringify({
        compilerOptions: {
          ...STRICT,
          lib: ['ES2022'],
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          types: ['node'],
          outDir: 'out',
        },
        files: ['main.ts'],
      }),
      'main.ts': `import { init, tensor, sum, matmul, aggregate, formatTable, type Runtime, type Tensor } from 'densecl-webgpu';
import { ResNet } from 'densecl-webgpu/models';
import { Trainer, TRAINER_DEFAULTS, type TrainerOptions } from 'densecl-webgpu/train';

const rt: Runtime = await init({ quiet: true });
const x: Tensor = matmul(tensor([1, 2, 3, 4], [2, 2]), tensor([1, 0, 0, 1], [2, 2]));
const total = await sum(x).item();
const options: TrainerOptions = { ...TRAINER_DEFAULTS, batchSize: 8 };
const unused: [typeof ResNet, typeof Trainer, typeof aggregate, typeof formatTable] = [ResNet, Trainer, aggregate, formatTable];
console.log(\`sum \${total} batch \${options.batchSize} \${unused.length} \${typeof rt.device}\`);
rt.destroy();
`,
    },
    ['@types/node', 'undici-types', 'webgpu'],
  );
  tsc(dir);
  const r = run(process.execPath, [join(dir, 'out/main.js')], dir);
  assert.is(r.status, 0, r.out);
  assert.match(r.out, /sum 10 batch 8 4 object/);
  // The program runs without the optional peer sharp until it has image files to read.
  const cli = join(dir, 'node_modules/densecl-webgpu/dist/cli.mjs');
  assert.is(run(process.execPath, [cli, 'help'], dir).status, 0);
  mkdirSync(join(dir, 'images'));
  writeFileSync(join(dir, 'images/a.png'), 'not read: sharp is missing before any image is opened');
  const folder = run(
    process.execPath,
    [cli, 'pretrain', '--data', 'images', '--out', 'run', '--batch-size', '2', '--bn-groups', '1', '--queue-size', '4'],
    dir,
  );
  assert.match(folder.out, /needs the package 'sharp'.*npm install sharp/);
});

t(
  'a strict browser consumer (lib DOM, Bundler) compiles, bundles the browser build, and names webgpu when run in Node without it',
  () => {
    const dir = project(
      'web-app',
      {
        'package.json': JSON.stringify({ name: 'web-app', private: true, type: 'module' }),
        'tsconfig.json': JSON.stringify({
          compilerOptions: {
            ...STRICT,
            lib: ['ES2022', 'DOM'],
            module: 'ESNext',
            moduleResolution: 'Bundler',
            types: [],
            noEmit: true,
          },
          files: ['main.ts'],
        }),
        // With the DOM lib the package's WebGPU handles are the full interfaces: rt.device has createBuffer.
        'main.ts': `import { init, tensor, sum } from 'densecl-webgpu';
import { Trainer, SceneDataset, BatchLoader } from 'densecl-webgpu/train';

try {
  const rt = await init({ quiet: true });
  const extra: GPUBuffer = rt.device.createBuffer({ size: 16, usage: 0x80 /* STORAGE */ });
  extra.destroy();
  const trainer = new Trainer(rt, { batchSize: 8, bnGroups: 2, queueSize: 16 });
  const loader = await BatchLoader.create(new SceneDataset({ size: 64, length: 16 }), { batchSize: 8, size: 32, seed: 0, workers: 0 });
  const b = loader.nextSync();
  const s = await trainer.trainStep(b.q, b.k);
  document.title = \`loss \${s.loss.toFixed(3)}, \${await sum(tensor([1, 2])).item()}\`;
} catch (e) {
  console.log(\`init failed: \${(e as Error).message}\`);
}
`,
      },
      [],
    );
    tsc(dir);
    const meta = join(dir, 'meta.json');
    const b = run(
      join(modules, '.bin/esbuild'),
      [
        'main.ts',
        '--bundle',
        '--format=esm',
        '--platform=browser',
        '--target=es2022',
        '--outfile=out/app.js',
        `--metafile=${meta}`,
        '--log-level=error',
      ],
      dir,
    );
    assert.is(b.status, 0, b.out);
    const inputs = Object.keys(
      (JSON.parse(readFileSync(meta, 'utf8')) as { inputs: Record<string, unknown> }).inputs,
    ).filter((f) => f.includes('densecl-webgpu/'));
    assert.ok(
      inputs.length > 0 && inputs.every((f) => f.includes('densecl-webgpu/dist/browser/')),
      `the bundle should take the browser build: ${inputs.join(' ')}`,
    );
    // The same program in Node, where the optional peer webgpu is not installed.
    const n = run(
      join(modules, '.bin/esbuild'),
      [
        'main.ts',
        '--bundle',
        '--format=esm',
        '--platform=node',
        '--target=node20',
        '--outfile=out/node.mjs',
        '--log-level=error',
      ],
      dir,
    );
    assert.is(n.status, 0, n.out);
    const r = run(process.execPath, [join(dir, 'out/node.mjs')], dir);
    assert.match(r.out, /init failed: .*needs the package 'webgpu'.*npm install webgpu/);
  },
);

t('installed sizes of the two consumers', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  const deps = Object.keys(pkg.dependencies ?? {});
  const own = bytes(join(work, 'web-app/node_modules/densecl-webgpu'));
  const size = (names: Set<string>) => own + [...names].reduce((s, n) => s + bytes(join(modules, n)), 0);
  const browserOnly = closure(deps);
  const node = closure([...deps, 'webgpu']);
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  console.log(
    `  installed: browser-only consumer ${mib(size(browserOnly))} (${[...browserOnly].join(', ') || 'no dependencies'}); Node consumer ${mib(size(node))} (+ webgpu: ${[...node].join(', ')})`,
  );
  assert.ok(
    !browserOnly.has('webgpu') && !browserOnly.has('sharp'),
    'a browser-only install pulls in neither Dawn nor sharp',
  );
});

t.after(() => rmSync(work, { recursive: true, force: true }));
t.run();
