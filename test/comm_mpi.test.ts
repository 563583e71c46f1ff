// The MPI communicator: launch detection and its error messages (no MPI needed), then real jobs
// under `mpirun --oversubscribe -np 2` and `-np 4` running test/mpi/collectives.ts, which checks
// every collective against a locally computed result. Without mpirun or the addon the MPI jobs
// are skipped with a line saying what to install, unless CI_REQUIRE_MPI=1 demands them.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SingleProcess } from '../engine/comm/communicator.js';
import { detectLaunch, openCommunicator } from '../engine/comm/launch.js';
import { mpiAddonPath, MpiCommunicator, type MpiAddon } from '../engine/comm/mpi.js';
import { mpirun, skipWithoutMpi } from './processes.js';
import type { CommArray } from '../engine/comm/communicator.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const program = join(root, '.build/test/mpi/collectives.mjs');
const t = suite('comm mpi');

async function rejection(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected the promise to reject');
}

t('without a launcher the communicator is the single process', async () => {
  const comm = await openCommunicator({ env: {} });
  assert.instance(comm, SingleProcess);
  assert.is(comm.size, 1);
  assert.instance(await openCommunicator({ env: {}, worldSize: 1 }), SingleProcess);
  // Inside a Slurm batch script but not under srun: still one process.
  assert.is(detectLaunch({ SLURM_NTASKS: '8', SLURM_PROCID: '0' }), null);
});

t('launchers are recognised by their variables', () => {
  assert.equal(detectLaunch({ OMPI_COMM_WORLD_SIZE: '4', OMPI_COMM_WORLD_RANK: '3' }), {
    launcher: 'Open MPI',
    size: 4,
    rank: 3,
  });
  assert.equal(detectLaunch({ PMI_SIZE: '2', PMI_RANK: '1' }), { launcher: 'MPICH/PMI', size: 2, rank: 1 });
  assert.equal(detectLaunch({ SLURM_STEP_NUM_TASKS: '16', SLURM_PROCID: '5' }), {
    launcher: 'Slurm',
    size: 16,
    rank: 5,
  });
});

t('several ranks without MPI: the errors say what to install and how to start the job', async () => {
  const alone = await rejection(openCommunicator({ env: {}, worldSize: 2 }));
  assert.match(alone, 'mpirun -np 2');
  assert.match(alone, 'apt-get install openmpi-bin libopenmpi-dev');

  const missing = join(tmpdir(), 'no-such-dir', 'densecl_mpi.node');
  const env = { OMPI_COMM_WORLD_SIZE: '2', OMPI_COMM_WORLD_RANK: '0', DENSECL_MPI_ADDON: missing };
  assert.is(mpiAddonPath(env), missing);
  const unbuilt = await rejection(openCommunicator({ env }));
  assert.match(unbuilt, `no ${missing}`);
  assert.match(unbuilt, 'apt-get install openmpi-bin libopenmpi-dev');
  assert.match(unbuilt, 'npm run build:mpi');

  const mismatch = await rejection(
    openCommunicator({ env: { OMPI_COMM_WORLD_SIZE: '4', OMPI_COMM_WORLD_RANK: '0' }, worldSize: 2 }),
  );
  assert.match(mismatch, 'World size 2 was asked for, but Open MPI started 4 process(es)');
});

// MpiCommunicator's own logic over a stand-in addon (no MPI needed): results keep their array
// type, requests complete independently, errors reach every waiter, polling backs off.
function fakeAddon(size: number) {
  const pending = new Map<number, { done: () => boolean; finish: () => void }>();
  let next = 1;
  const start = (done: () => boolean, finish = () => {}) => {
    pending.set(next, { done, finish });
    return next++;
  };
  const bytes = (a: CommArray) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const fake = {
    polls: 0,
    failWith: null as Error | null,
    finalized: false,
    releaseBarrier: false,
    init: () => ({ rank: 0, size, localRank: 0, localSize: size, library: 'Fake MPI 1.0, for tests' }),
    iallreduceSum: (d: Float32Array) =>
      start(
        () => fake.polls % 3 === 0,
        () => d.forEach((v, i) => (d[i] = v * size)),
      ),
    iallgather: (s: CommArray, r: CommArray) =>
      start(
        () => true,
        () => {
          for (let k = 0; k < size; k++) bytes(r).set(bytes(s), k * s.byteLength);
        },
      ),
    ibcast: () => start(() => true),
    ibarrier: () => start(() => fake.releaseBarrier),
    testsome: () => {
      fake.polls++;
      if (fake.failWith) throw fake.failWith;
      const ids: number[] = [];
      for (const [id, op] of pending) {
        if (!op.done()) continue;
        op.finish();
        ids.push(id);
        pending.delete(id);
      }
      return ids;
    },
    aborted: null as number | null,
    abort: (code: number): never => {
      fake.aborted = code;
      return undefined as never;
    },
    finalize: () => {
      if (pending.size) throw new Error('finalize with requests in flight');
      fake.finalized = true;
    },
  };
  return fake;
}

t('MpiCommunicator over a stand-in addon: types, concurrency, errors, back-off, close', async () => {
  const fake = fakeAddon(3);
  const comm = new MpiCommunicator(fake as MpiAddon);
  try {
    assert.is(comm.description, 'Fake MPI 1.0');
    const [sum, gathered, u8] = await Promise.all([
      comm.allreduceSum(Float32Array.of(1, 2)),
      comm.allgather(Int32Array.of(-7, 2 ** 30)),
      comm.allgather(Uint8Array.of(255)),
    ]);
    assert.equal(Array.from(sum), [3, 6]);
    assert.instance(gathered, Int32Array);
    assert.equal(Array.from(gathered), [-7, 2 ** 30, -7, 2 ** 30, -7, 2 ** 30]);
    assert.instance(u8, Uint8Array);
    assert.equal(Array.from(u8), [255, 255, 255]);
    assert.throws(() => comm.broadcast(new Float32Array(2), 3), /root 3 is not a rank of this job of 3 processes/);

    // A barrier nobody joins for 300 ms: after the spin phase, at most one poll per millisecond.
    setTimeout(() => (fake.releaseBarrier = true), 300);
    const wait = comm.barrier();
    await new Promise((r) => setTimeout(r, 100));
    const polls0 = fake.polls;
    await wait;
    assert.ok(fake.polls - polls0 <= 200, `${fake.polls - polls0} polls in the last ~200 ms of an idle wait`);

    const late = comm.allreduceSum(Float32Array.of(1));
    await comm.close();
    assert.ok(fake.finalized, 'close() finalises');
    assert.equal(Array.from(await late), [3], 'close() waited for the collective in flight');
  } finally {
    await comm.close();
  }

  // An MPI error while waiting reaches every waiter and leaves the communicator unusable: it can
  // only be aborted, not finalised.
  const broken = fakeAddon(2);
  const comm2 = new MpiCommunicator(broken as MpiAddon);
  const failing = [comm2.barrier(), comm2.barrier()];
  broken.failWith = new Error('MPI_Testsome failed: fake');
  for (const f of failing) assert.match(await rejection(f), 'MPI_Testsome failed: fake');
  assert.throws(() => comm2.barrier(), /MPI_Testsome failed: fake/);
  assert.match(await rejection(comm2.close()), 'MPI_Testsome failed: fake');
  assert.not.ok(broken.finalized);
  comm2.abort('(expected) the stand-in job of the comm test aborts', 5);
  assert.is(broken.aborted, 5);
});

/** Why the MPI jobs cannot run here, or null when they can. */
for (const np of [2, 4]) {
  t(`mpirun -np ${np}: every collective matches the local result`, async () => {
    if (skipWithoutMpi(`MPI collectives on ${np} ranks`, program)) return;
    const dir = mkdtempSync(join(tmpdir(), 'densecl-mpi-'));
    try {
      const r = await mpirun(np, program, [String(np), dir], 40_000);
      assert.not.ok(
        r.killed,
        `mpirun -np ${np} did not finish in 40 s; stdout: ${r.stdout}; stderr: ${r.stderr.slice(-2000)}`,
      );
      assert.is(r.code, 0, `mpirun -np ${np} failed: ${r.stdout}\n${r.stderr.slice(-2000)}`);
      const line = r.stdout.split('\n').find((l) => l.startsWith('collectives ok:'));
      assert.ok(line?.startsWith(`collectives ok: ${np} ranks`), `no success line from rank 0: ${r.stdout}`);
      console.log(`  ${line} (job ${(r.ms / 1000).toFixed(1)} s)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

t('a rank that aborts ends the whole job non-zero with its message', async () => {
  if (skipWithoutMpi('MPI abort', program)) return;
  const dir = mkdtempSync(join(tmpdir(), 'densecl-mpi-'));
  try {
    const r = await mpirun(2, program, ['2', dir, 'abort'], 30_000);
    assert.not.ok(r.killed, `the job outlived the aborting rank by 30 s; stderr: ${r.stderr.slice(-2000)}`);
    assert.is(r.code, 3, `mpirun exit code ${r.code}, want the abort code 3; stderr: ${r.stderr.slice(-2000)}`);
    assert.match(r.stderr, '[rank 1/2] rank 1 gives up on purpose');
    assert.not.match(r.stdout, 'barrier returned');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

t('a rank killed by a signal ends the whole job non-zero, and mpirun names it', async () => {
  if (skipWithoutMpi('MPI kill', program)) return;
  const dir = mkdtempSync(join(tmpdir(), 'densecl-mpi-'));
  try {
    const r = await mpirun(2, program, ['2', dir, 'kill'], 30_000);
    assert.not.ok(r.killed, `the job outlived the killed rank by 30 s; stderr: ${r.stderr.slice(-2000)}`);
    assert.ok(r.code !== 0 && r.code !== null, `mpirun exit code ${r.code}, want non-zero`);
    assert.match(r.stderr, /rank 1 .*exited on signal 9/);
    assert.not.match(r.stdout, 'barrier returned');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

t.run();
