// Child processes for tests: one program run with a time limit, and jobs under mpirun with the
// settings this machine and CI need (root, 2 cores, containers without cross-process reads).
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mpiAddonPath } from '../engine/comm/mpi.js';

export interface ChildResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Milliseconds from the start until the process exited. */
  ms: number;
  /** True when the time limit killed it. */
  killed: boolean;
}

/** Runs `command args`, killed after `limitMs`; `during` gets the pid once it runs. */
export function runProcess(
  command: string,
  args: string[],
  opts: { limitMs: number; env?: NodeJS.ProcessEnv; cwd?: string; during?: (pid: number) => void },
): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(command, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, opts.limitMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: performance.now() - t0, killed });
    });
    if (child.pid !== undefined) opts.during?.(child.pid);
  });
}

/**
 * `mpirun -np N node program args`: as root, oversubscribed, shared memory without single-copy
 * reads, and ranks left unbound. Open MPI binds each rank to one core by default, and llvmpipe
 * keys its shader cache by the CPUs a process may run on: a bound rank would find none of the
 * pipelines this process compiled and build every one again (minutes on a cold cache).
 */
export function mpirun(
  np: number,
  program: string,
  args: string[],
  limitMs: number,
  during?: (mpirunPid: number) => void,
): Promise<ChildResult> {
  const env = {
    ...process.env,
    OMPI_ALLOW_RUN_AS_ROOT: '1',
    OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1',
    // Containers often forbid the cross-process reads (CMA) Open MPI's shared memory uses.
    OMPI_MCA_btl_vader_single_copy_mechanism: 'none',
  };
  const argv = [
    '--oversubscribe',
    '--bind-to',
    'none',
    '-np',
    String(np),
    '--mca',
    'btl',
    'self,vader',
    process.execPath,
    program,
    ...args,
  ];
  return runProcess('mpirun', argv, { limitMs, env, during });
}

/** Why MPI jobs cannot run here (null when they can). */
function mpiMissing(program: string): string | null {
  if (spawnSync('mpirun', ['--version'], { stdio: 'ignore' }).status !== 0) return 'mpirun not found';
  if (!existsSync(mpiAddonPath())) return `the MPI addon is not built (${mpiAddonPath()})`;
  if (!existsSync(program)) return `${program} is not built (node scripts/build.mjs --tests)`;
  return null;
}

/**
 * True (after a SKIP line naming what to install) when MPI jobs cannot run; with
 * CI_REQUIRE_MPI=1 that is a failure instead: CI installs MPI and must run them.
 */
export function skipWithoutMpi(what: string, program: string): boolean {
  const missing = mpiMissing(program);
  if (!missing) return false;
  const install = 'apt-get install openmpi-bin libopenmpi-dev, then npm run build:mpi';
  if (process.env.CI_REQUIRE_MPI === '1') assert.unreachable(`CI_REQUIRE_MPI=1 but ${missing}: ${install}`);
  console.log(`SKIP ${what}: ${missing} (${install})`);
  return true;
}
