// Copies the npm packages that the CLI and bench bundles load at run time into DEST/node_modules,
// keeping only what runs on Linux x86-64 (glibc): used by scripts/offline-bundle.sh.
//   node scripts/offline-modules.mjs DEST
// Which files are loaded was found by tracing `densecl mlp-demo` and `bench matmul` (strace -e openat);
// the check at the end imports every root package from DEST, so a missing file fails the build here.
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const dest = process.argv[2] && resolve(process.argv[2]);
if (!dest) {
  console.error('usage: node scripts/offline-modules.mjs DEST');
  process.exit(2);
}

// What scripts/build.mjs leaves external and the bundles import (webgpu and tfjs by names built at run time).
const ROOTS = ['webgpu', 'sharp', '@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-webgpu', 'benny'];
// Dependencies never loaded at run time: type declarations, and tfjs's CPU backend, which
// tfjs-backend-webgpu's node bundle already contains.
const SKIP = [/^@types\//, /^@webgpu\/types$/, /^@tensorflow\/tfjs-backend-cpu$/];
// Native packages for other platforms than linux-x64 glibc (sharp lists them all as optional).
const OTHER_PLATFORM = /^@img\/sharp-(?!(libvips-)?linux-x64$)/;
// Large packages, of which only these files are loaded (the rest: other platforms' Dawn builds,
// other module formats, sources); license files are kept too.
const ONLY = {
  webgpu: ['package.json', 'index.js', 'dist/linux-x64/dawn.node'],
  '@tensorflow/tfjs-core': ['package.json', 'dist/tf-core.node.js'],
  '@tensorflow/tfjs-backend-webgpu': ['package.json', 'dist/tf-backend-webgpu.node.js'],
};
const LICENSE = /^(licen[cs]e|notice|copying)/i;

/** The folder of package `name` as Node resolves it from folder `from` (nested node_modules first). */
function locate(name, from) {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dir === root || dir === dirname(dir)) return null;
  }
}

const copied = new Set();
function copyPackage(name, from, required) {
  if (SKIP.some((re) => re.test(name)) || OTHER_PLATFORM.test(name)) return;
  const src = locate(name, from);
  if (!src) {
    if (required) throw new Error(`offline-modules: package ${name} is not installed (run npm ci)`);
    return;
  }
  if (copied.has(src)) return;
  copied.add(src);
  const out = join(dest, src.slice(root.length));
  const only = ONLY[name];
  if (only) {
    const files = [...only, ...readdirSync(src).filter((f) => LICENSE.test(f))];
    for (const f of files) {
      mkdirSync(dirname(join(out, f)), { recursive: true });
      cpSync(join(src, f), join(out, f));
    }
  } else {
    cpSync(src, out, { recursive: true, filter: (p) => !p.slice(src.length).startsWith('/node_modules') });
  }
  const pkg = JSON.parse(readFileSync(join(src, 'package.json'), 'utf8'));
  for (const dep of Object.keys(pkg.dependencies ?? {})) copyPackage(dep, src, true);
  for (const dep of Object.keys(pkg.optionalDependencies ?? {})) copyPackage(dep, src, false);
}

for (const name of ROOTS) copyPackage(name, root, true);

// Every root must load from DEST alone (run outside the repository, so no other node_modules is found).
const probe = ROOTS.map((n) => `await import(${JSON.stringify(n)});`).join(' ');
execFileSync(process.execPath, ['--input-type=module', '-e', probe], {
  cwd: dest,
  stdio: 'inherit',
  env: { PATH: process.env.PATH ?? '' },
});
console.log(`offline-modules: ${copied.size} packages copied to ${join(dest, 'node_modules')}`);
