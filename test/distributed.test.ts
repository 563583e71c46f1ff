// Data-parallel DenseCL: two ranks at a job batch B train the same weights as one process at B
// (in this process, with an in-memory communicator, and under mpirun with the MPI one), every rank
// holds the same shuffle permutation and the key exchange restores the data order, a killed rank
// ends the mpirun job non-zero with the last checkpoint intact, and without MPI the one-process
// paths work and --world-size 2 says what to install.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gpu, runtime, randomArray, rejects } from './helpers.js';
import { Trainer, type TrainerOptions } from '../train/trainer.js';
import { unshuffle } from '../train/key-exchange.js';
import { EpochSampler } from '../train/data/loader.js';
import { pretrain, resumeOptions, openJob } from '../cli/pretrain.js';
import { decodeSafetensors } from '../engine/safetensors.js';
import type { CommArray, Communicator } from '../engine/comm/communicator.js';
import { mpirun, skipWithoutMpi } from './processes.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const program = join(root, '.build/test/mpi/dp_train.mjs');
const t = suite('distributed');

/** W communicators in one process: each collective completes when every rank has called it. */
function localGroup(W: number): Communicator[] {
  const rounds: { inputs: CommArray[]; done: ((all: CommArray[]) => void)[] }[] = [];
  const calls = new Array<number>(W).fill(0);
  const meet = (rank: number, data: CommArray): Promise<CommArray[]> =>
    new Promise((resolve) => {
      const round = (rounds[calls[rank]++] ??= { inputs: [], done: [] });
      round.inputs[rank] = data.slice();
      round.done[rank] = resolve;
      if (round.done.filter(Boolean).length === W) setTimeout(() => round.done.forEach((d) => d(round.inputs)));
    });
  return Array.from({ length: W }, (_, rank) => ({
    rank,
    size: W,
    localRank: rank,
    localSize: W,
    description: `in-memory group of ${W}`,
    async allreduceSum(data: Float32Array) {
      const all = (await meet(rank, data)) as Float32Array[];
      for (let i = 0; i < data.length; i++) data[i] = all.reduce((s, a) => s + a[i], 0);
      return data;
    },
    async allgather<T extends CommArray>(data: T) {
      const all = (await meet(rank, data)) as T[];
      const out = new (data.constructor as new (n: number) => T)(data.length * W);
      all.forEach((a, r) => out.set(a as never, r * data.length));
      return out;
    },
    async broadcast<T extends CommArray>(data: T, from = 0) {
      const all = await meet(rank, data);
      data.set(all[from] as never);
      return data;
    },
    async barrier() {
      await meet(rank, new Uint8Array(1));
    },
    abort(message: string): never {
      throw new Error(message);
    },
    async close() {},
  }));
}

// Grouped BN (the same group of 2 images on either side) makes one process and two ranks equal.
const TINY: Partial<TrainerOptions> = {
  batchSize: 8,
  bnGroups: 4,
  imgSize: 16,
  width: 1 / 16,
  dim: 8,
  queueSize: 16,
  seed: 3,
  lr: 0.3,
};
const per = 3 * 16 * 16;
const jobBatch = (step: number, view: number) => randomArray(8 * per, 100 * step + view);
const slice = (x: Float32Array, rank: number, W: number) =>
  x.subarray((rank * 8 * per) / W, ((rank + 1) * 8 * per) / W);

async function stores(tr: Trainer): Promise<Map<string, Float32Array>> {
  const m = tr.model;
  const out = new Map<string, Float32Array>();
  for (const s of [m.query.params, m.query.buffers, m.key.params, m.key.buffers, m.queues, tr.sgd.momentum])
    out.set(s.label, new Float32Array(await s.flat.data()));
  return out;
}

/**
 * Float noise: the ranks add partial sums in another order, so every value may differ by a small
 * fraction of its tensor's largest magnitude (2e-5 seen after 3 steps, 7e-5 in SGD momentum after 6).
 */
function assertNoise(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  assert.is(got.length, want.length, `${what}: length`);
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]));
    worst = Math.max(worst, Math.abs(got[i] - want[i]));
  }
  assert.ok(worst <= 2e-4 * scale + 1e-7, `${what}: differs by ${worst} at scale ${scale} (more than float noise)`);
}

function compareStores(got: Map<string, Float32Array>, want: Map<string, Float32Array>, what: string): void {
  for (const [label, w] of want) assertNoise(got.get(label)!, w, `${what}: ${label}`);
}

t.before(async () => {
  await gpu();
});

t('unshuffle puts gathered keys back in data order, for this rank and for the queues', () => {
  const W = 2;
  const n = 3;
  const perm = Int32Array.from([4, 0, 5, 2, 1, 3]);
  const sizes = [2, 1, 2, 1];
  // Rank w's block: [b | g | grid | pooled], each image's value = 10 * image + part.
  const gathered = new Float32Array(W * n * 6);
  let at = 0;
  for (let w = 0; w < W; w++) {
    for (let part = 0; part < 4; part++) {
      for (let i = 0; i < n; i++) for (let e = 0; e < sizes[part]; e++) gathered[at++] = 10 * perm[w * n + i] + part;
    }
  }
  const shapes = { dim: 1, features: [2, 1], denseGrid: [1, 2], dense: true, sizes };
  for (const rank of [0, 1]) {
    const k = unshuffle(gathered, perm, shapes, rank, n);
    const mine = [0, 1, 2].map((i) => rank * n + i);
    assert.equal(
      [...k.own.features],
      mine.flatMap((img) => [10 * img, 10 * img]),
    );
    assert.equal(
      [...k.own.globalEmbedding],
      mine.map((img) => 10 * img + 1),
    );
    assert.equal(
      [...k.own.denseGrid!],
      mine.flatMap((img) => [10 * img + 2, 10 * img + 2]),
    );
    assert.equal(
      [...k.all.globalEmbedding],
      [0, 1, 2, 3, 4, 5].map((img) => 10 * img + 1),
    );
    assert.equal(
      [...k.all.densePooled!],
      [0, 1, 2, 3, 4, 5].map((img) => 10 * img + 3),
    );
  }
});

t('the sampler slices each job batch across ranks: the same batches whatever the number of ranks', () => {
  const whole = new EpochSampler(50, 8, 7);
  const halves = [0, 1].map((r) => new EpochSampler(50, 4, 7, r, 2));
  assert.is(halves[0].batchesPerEpoch, whole.batchesPerEpoch);
  for (const p of [0, 3, 5]) assert.equal([...halves[0].batch(1, p), ...halves[1].batch(1, p)], [...whole.batch(1, p)]);
});

t('two ranks (in-memory) at batch 8 train the same weights, queues and BN statistics as one process at 8', async () => {
  const rt = runtime();
  const one = new Trainer(rt, TINY);
  const group = localGroup(2);
  // Small buckets: the gradient store is summed in several pieces.
  const ranks = group.map(
    (comm) => new Trainer(rt, { ...TINY, seed: 3 + comm.rank * 11 }, { comm, bucketBytes: 16 << 10 }),
  );
  try {
    for (let step = 0; step < 3; step++) {
      const [q, k] = [jobBatch(step, 0), jobBatch(step, 1)];
      const want = await one.trainStep(q, k);
      const got = await Promise.all(ranks.map((tr, r) => tr.trainStep(slice(q, r, 2), slice(k, r, 2))));
      for (const g of got)
        assert.ok(
          Math.abs(g.loss - want.loss) < 1e-4 * Math.abs(want.loss),
          `step ${step}: loss ${g.loss} vs ${want.loss}`,
        );
      assert.equal([...got[0].keyPermutation!], [...got[1].keyPermutation!], 'both ranks used the same permutation');
      assert.ok(got[0].sync!.buckets > 1);
    }
    // saveState is collective: it averages the BN running statistics over the ranks.
    await Promise.all(ranks.map((tr) => tr.saveState()));
    const [r0, r1] = [await stores(ranks[0]), await stores(ranks[1])];
    for (const [label, v] of r0)
      assert.ok(Buffer.from(v.buffer).equals(Buffer.from(r1.get(label)!.buffer)), `${label} differs between the ranks`);
    compareStores(r0, await stores(one), 'rank 0');
    assert.is(ranks[0].model.ptr, one.model.ptr);
  } finally {
    for (const tr of [one, ...ranks]) tr.destroy();
  }
});

t(
  'two ranks replaying their captured step parts equal two eager ranks bit for bit (new signature, queue wraps)',
  async () => {
    const rt = runtime();
    // Queue 24 at batch 8: the rows go 0, 8, 16, 0, ...; the dense loss starts at step 3 (a new signature).
    const opts: Partial<TrainerOptions> = { ...TINY, queueSize: 24, startIters: 3, totalSteps: 7 };
    const job = (replay: boolean) =>
      localGroup(2).map(
        (comm) => new Trainer(rt, { ...opts, seed: 3 + comm.rank * 11 }, { comm, replay, bucketBytes: 16 << 10 }),
      );
    const [eager, replayed] = [job(false), job(true)];
    try {
      assert.is(eager[0].programs, null, '{ replay: false } records every step eagerly');
      for (let step = 0; step < 7; step++) {
        const [q, k] = [jobBatch(step, 0), jobBatch(step, 1)];
        const run = (ranks: Trainer[]) =>
          Promise.all(ranks.map((tr, r) => tr.trainStep(slice(q, r, 2), slice(k, r, 2))));
        const [want, got] = [await run(eager), await run(replayed)];
        for (let r = 0; r < 2; r++) {
          const [e, g] = [want[r], got[r]];
          assert.ok(
            Object.is(e.loss, g.loss) && Object.is(e.lossGlobal, g.lossGlobal) && Object.is(e.lossDense, g.lossDense),
            `step ${step} rank ${r}: eager ${e.loss} vs replay ${g.loss}`,
          );
          assert.equal([...g.keyPermutation!], [...e.keyPermutation!]);
        }
      }
      // Steps 0 and 3 eager (a signature's first), 1 and 4 captured, 2, 5 and 6 replayed (6 after the wrap).
      for (const tr of replayed) assert.equal(tr.programs!.stats, { eager: 2, captured: 2, replayed: 3, evicted: 0 });
      assert.is(replayed[0].model.ptr, 8);
      for (let r = 0; r < 2; r++) {
        const [e, g] = [await stores(eager[r]), await stores(replayed[r])];
        for (const [label, v] of e)
          assert.ok(Buffer.from(v.buffer).equals(Buffer.from(g.get(label)!.buffer)), `rank ${r}: ${label} differs`);
      }
    } finally {
      for (const tr of [...eager, ...replayed]) tr.destroy();
    }
  },
);

t('batch and BN groups must divide among the ranks', () => {
  const comm = localGroup(3)[0];
  assert.throws(
    () => new Trainer(runtime(), TINY, { comm }),
    /batchSize 8 and bnGroups 4 must both be divisible by the 3 processes/,
  );
});

t('a rank refuses an explicit key permutation (rank 0 draws it) before the step is counted', () => {
  const tr = new Trainer(runtime(), TINY, { comm: localGroup(2)[0] });
  try {
    const half = randomArray(4 * per, 1);
    assert.throws(
      () => tr.trainStep(half, half, { keyPermutation: [0, 1, 2, 3, 4, 5, 6, 7] }),
      /keyPermutation is for one process; a data-parallel job draws its permutation on rank 0/,
    );
    assert.is(tr.steps, 0);
  } finally {
    tr.destroy();
  }
});

t('without a launcher: --world-size 2 says what to install and how to start the job; 1 is this process', async () => {
  await rejects(() => openJob('2'), /apt-get install openmpi-bin[\s\S]*npm run build:mpi[\s\S]*mpirun -np 2/);
  await rejects(() => openJob('two'), /--world-size needs a positive integer, got 'two'/);
  assert.is((await openJob('1')).size, 1);
});

// ---- Under mpirun (test/mpi/dp_train.ts is one rank) ----

// Generous: on a fresh machine each rank compiles its pipelines on the CPU driver (minutes when
// the shader cache is empty and two ranks share two cores); a hung job still ends the test.
const JOB_LIMIT_MS = 300_000;

const tensorsOf = (path: string) => decodeSafetensors(readFileSync(path), path).tensors;

t(
  'mpirun -np 2 at batch 8 gives the weights of one process at batch 8; both ranks hold the same permutations',
  async () => {
    if (skipWithoutMpi('data-parallel equality under mpirun', program)) return;
    const dir = mkdtempSync(join(tmpdir(), 'densecl-dp-'));
    try {
      for (const np of [1, 2]) {
        const r = await mpirun(np, program, ['steps', join(dir, `np${np}`)], JOB_LIMIT_MS);
        assert.is(r.code, 0, `mpirun -np ${np} failed (killed: ${r.killed}): ${r.stdout}\n${r.stderr.slice(-3000)}`);
      }
      const [one, two] = [
        tensorsOf(join(dir, 'np1', 'state.safetensors')),
        tensorsOf(join(dir, 'np2', 'state.safetensors')),
      ];
      let compared = 0;
      for (const [name, want] of one) {
        if (name.startsWith('optimizer.')) continue;
        assertNoise(two.get(name)!.data as Float32Array, want.data as Float32Array, name);
        compared++;
      }
      assert.ok(
        compared > 50 && two.has('queue2') && two.has('encoder_k.backbone.conv1.weight'),
        `compared ${compared} tensors`,
      );
      const perms = [0, 1].map((r) => readFileSync(join(dir, 'np2', `permutations.${r}.json`), 'utf8'));
      assert.is(perms[0], perms[1], 'rank 0 and rank 1 used the same shuffle permutations');
      assert.equal(
        (JSON.parse(perms[0]) as number[][]).map((p) => [...p].sort((a, b) => a - b)),
        [0, 1, 2].map(() => [0, 1, 2, 3, 4, 5, 6, 7]),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

t('killing rank 1 mid-run ends the mpirun job non-zero; the last checkpoint loads', async () => {
  if (skipWithoutMpi('killed rank under mpirun', program)) return;
  const dir = mkdtempSync(join(tmpdir(), 'densecl-dp-kill-'));
  const run = join(dir, 'run');
  const checkpoint = join(run, 'checkpoint.safetensors');
  try {
    const r = await mpirun(2, program, ['pretrain', run], JOB_LIMIT_MS, (mpirunPid) => {
      const poll = setInterval(() => {
        if (!existsSync(checkpoint) || statSync(checkpoint).size === 0) return;
        const rank1 = rankPid(mpirunPid, 1);
        if (rank1 === null) return;
        clearInterval(poll);
        process.kill(rank1, 'SIGKILL');
      }, 200);
      setTimeout(() => clearInterval(poll), JOB_LIMIT_MS).unref();
    });
    assert.not.ok(r.killed, `the job outlived its killed rank; stderr: ${r.stderr.slice(-2000)}`);
    assert.ok(r.code !== 0 && r.code !== null, `mpirun exit code ${r.code}`);
    assert.match(r.stderr + r.stdout, /rank 1|process rank 1|signal 9|Killed/i);
    // The checkpoint rank 0 wrote last restores into a model of the run's configuration.
    const config = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')) as TrainerOptions;
    const restored = new Trainer(runtime(), config);
    try {
      const counters = restored.loadState(readFileSync(checkpoint), checkpoint);
      assert.ok(counters.step >= 1, `checkpoint at step ${counters.step}`);
    } finally {
      restored.destroy();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

t('a run of 2 ranks resumed by 1 process continues the 1-process run', async () => {
  if (skipWithoutMpi('resume with another number of ranks', program)) return;
  const dir = mkdtempSync(join(tmpdir(), 'densecl-dp-resume-'));
  try {
    const r = await mpirun(2, program, ['pretrain', join(dir, 'two'), '2'], JOB_LIMIT_MS);
    assert.is(r.code, 0, `mpirun -np 2 failed (killed: ${r.killed}): ${r.stderr.slice(-3000)}`);
    // --stop-after is one invocation's: a resumed run runs to the end unless given it again.
    const saved = resumeOptions(join(dir, 'two'), { stopAfter: 2 });
    await pretrain(saved, runtime()); // steps 2..3 in this process
    await pretrain({ ...saved, resume: '', stopAfter: 4, out: join(dir, 'one') }, runtime());
    const [a, b] = [
      tensorsOf(join(dir, 'two', 'checkpoint.safetensors')),
      tensorsOf(join(dir, 'one', 'checkpoint.safetensors')),
    ];
    for (const [name, want] of b) assertNoise(a.get(name)!.data as Float32Array, want.data as Float32Array, name);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

t('an error on one rank ends the whole job non-zero with the message of that rank', async () => {
  if (skipWithoutMpi('a failing rank under mpirun', program)) return;
  const dir = mkdtempSync(join(tmpdir(), 'densecl-dp-fail-'));
  try {
    const r = await mpirun(2, program, ['fail', dir], JOB_LIMIT_MS);
    assert.not.ok(r.killed, `rank 0 was left waiting; stderr: ${r.stderr.slice(-2000)}`);
    assert.ok(r.code !== 0 && r.code !== null, `mpirun exit code ${r.code}`);
    assert.match(r.stderr, /\[rank 1\/2\] densecl: .*no-such-folder/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** The pid of the rank-th process that mpirun started (Open MPI sets OMPI_COMM_WORLD_RANK in each). */
function rankPid(mpirunPid: number, rank: number): number | null {
  const children = spawnSync('pgrep', ['-P', String(mpirunPid)], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter(Boolean)
    .map(Number);
  for (const pid of children) {
    try {
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      if (env.includes(`OMPI_COMM_WORLD_RANK=${rank}`)) return pid;
    } catch {
      // the process has already gone
    }
  }
  return null;
}

t.run();
