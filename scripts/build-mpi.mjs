// Builds the optional MPI addon (native/mpi -> native/mpi/build/Release/densecl_mpi.node) with
// node-gyp against Node's own headers and the installed MPI. Without MPI it says what to install
// and exits 0: everything but multi-process training works without it. Skips the build when the
// addon is newer than its sources (prepare.sh runs this before every test and training run).
//   node scripts/build-mpi.mjs [--force]
import { execFileSync } from 'node:child_process';
import { existsSync, realpathSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { mpiFlags } from '../native/mpi/flags.mjs';

const root = new URL('..', import.meta.url).pathname;
const dir = join(root, 'native/mpi');
const output = join(dir, 'build/Release/densecl_mpi.node');
const sources = ['addon.cc', 'binding.gyp', 'flags.mjs'].map((f) => join(dir, f));
const INSTALL = 'apt-get install openmpi-bin libopenmpi-dev (or mpich libmpich-dev), then npm run build:mpi';

const mtime = (f) => statSync(f).mtimeMs;
if (!process.argv.includes('--force') && existsSync(output) && sources.every((s) => mtime(s) < mtime(output)))
  process.exit(0);

const flags = mpiFlags();
const includes = flags?.compile.filter((a) => a.startsWith('-I')).map((a) => a.slice(2)) ?? [];
const header = flags && ['/usr/include', ...includes].some((d) => existsSync(join(d, 'mpi.h')));
if (!header) {
  console.log(`MPI support skipped (no mpicc or mpi.h found; multi-process training needs it): ${INSTALL}`);
  process.exit(0);
}

// node-gyp ships inside npm; npm names it when it runs this script.
function findNodeGyp() {
  const candidates = [process.env.npm_config_node_gyp];
  try {
    const npm = realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim());
    candidates.push(join(dirname(dirname(npm)), 'node_modules/node-gyp/bin/node-gyp.js'));
  } catch {}
  candidates.push(join(dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'));
  return candidates.find((c) => c && existsSync(c));
}
const nodeGyp = findNodeGyp();
if (!nodeGyp) {
  console.error('MPI addon: node-gyp not found (it comes with npm); install npm, then npm run build:mpi');
  process.exit(1);
}
// Build against the running Node's installed headers instead of downloading them.
const prefix = dirname(dirname(process.execPath));
const nodedir = process.env.npm_config_nodedir || (existsSync(join(prefix, 'include/node/node_api.h')) ? prefix : null);
const args = [nodeGyp, 'rebuild', ...(nodedir ? [`--nodedir=${nodedir}`] : [])];
const t0 = Date.now();
try {
  execFileSync(process.execPath, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
} catch (e) {
  console.error(
    `MPI addon build failed (${flags.source}; node ${args.slice(1).join(' ')} in native/mpi):\n${e.stdout ?? ''}${e.stderr ?? ''}`,
  );
  process.exit(1);
}
console.log(
  `MPI addon built in ${((Date.now() - t0) / 1000).toFixed(1)} s (${flags.source}): ${output.slice(root.length)}`,
);
