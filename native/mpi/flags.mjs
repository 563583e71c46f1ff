// The installed MPI's compile and link flags: Open MPI's `mpicc --showme:*`, else pkg-config
// (Debian's MPICH and Open MPI both ship a .pc file). `node flags.mjs compile|link` prints one
// set for binding.gyp; build-mpi.mjs imports mpiFlags() to know whether MPI is there at all.
import { execFileSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';

function run(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

/** { compile, link, source } as argument lists, or null when no MPI development files are found. */
export function mpiFlags() {
  const mpicc = process.env.MPICC || 'mpicc';
  let compile = run(mpicc, ['--showme:compile']);
  let link = run(mpicc, ['--showme:link']);
  let source = `${mpicc} --showme`;
  if (compile === null || link === null) {
    const pkg = ['ompi', 'mpich'].find((p) => run('pkg-config', ['--exists', p]) !== null);
    if (!pkg) return null;
    compile = run('pkg-config', ['--cflags', pkg]);
    link = run('pkg-config', ['--libs', pkg]);
    source = `pkg-config ${pkg}`;
  }
  const split = (s) => (s ?? '').split(/\s+/).filter(Boolean);
  const linkArgs = split(link);
  // Libraries outside the loader's default path are found at run time through an rpath.
  const rpaths = linkArgs.filter((a) => a.startsWith('-L')).map((a) => `-Wl,-rpath,${a.slice(2)}`);
  return { compile: split(compile), link: [...linkArgs, ...rpaths], source };
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const flags = mpiFlags();
  const which = process.argv[2];
  if (!flags || (which !== 'compile' && which !== 'link')) {
    console.error(flags ? 'usage: node flags.mjs compile|link' : 'no MPI found (mpicc or pkg-config ompi/mpich)');
    process.exit(1);
  }
  console.log(flags[which].join(' '));
}
