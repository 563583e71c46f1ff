// Communication benchmark (issue 8): the gradient all-reduce of data-parallel DenseCL on
// ResNet-18 and ResNet-50 through MpiCommunicator, on this machine's loopback, as one message and
// in buckets of 1, 4, 16 and 25 MiB (all of a step's buckets in flight at once, as the trainer
// starts them), beside MPI's own blocking MPI_Allreduce from C (native/mpi/allreduce_blocking.c)
// on the same ranks, plus a ring all-reduce model for 8 ranks on 10 GbE and 100 GbE.
// The suite starts `mpirun -np COMM_NP (2) node .build/bench/comm.mjs SPEC`; this same bundle,
// started by mpirun, runs the ranks. COMM_MPIRUN_ARGS adds mpirun options (a hostfile, MCA settings).
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { detectLaunch, openCommunicator } from '../engine/comm/launch.js';
import { DenseCL } from '../models/densecl.js';
import type { BenchContext } from './lib/context.js';

const MiB = 1 << 20;
/** Bucket sizes in MiB; 0 is the whole gradient as one message. */
const BUCKETS_MIB = [0, 1, 4, 16, 25];

interface ModelSize {
  model: string;
  /** Gradient floats of the trained (query) encoder: backbone + DenseCL heads. */
  floats: number;
  backboneFloats: number;
}

interface Spec {
  models: ModelSize[];
  reps: number;
}

interface CaseResult {
  model: string;
  bucketMiB: number;
  buckets: number;
  bytes: number;
  medianMs: number;
  minMs: number;
}

interface RankResult {
  size: number;
  description: string;
  cases: CaseResult[];
  /** One-float all-reduce and barrier round trips, microseconds (mean of many). */
  smallAllreduceUs: number;
  barrierUs: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// ---- rank side: runs in every process of the mpirun job ----

async function rankMain(spec: Spec): Promise<void> {
  const comm = await openCommunicator();
  const cases: CaseResult[] = [];
  for (const m of spec.models) {
    const grad = new Float32Array(m.floats);
    for (const bucketMiB of BUCKETS_MIB) {
      const per = bucketMiB ? (bucketMiB * MiB) / 4 : m.floats;
      const views: Float32Array[] = [];
      for (let at = 0; at < m.floats; at += per) views.push(grad.subarray(at, Math.min(m.floats, at + per)));
      const times: number[] = [];
      // One warm-up round, then the samples; a barrier lines the ranks up before each.
      for (let r = 0; r <= spec.reps; r++) {
        grad.fill(1);
        await comm.barrier();
        const t0 = performance.now();
        await Promise.all(views.map((v) => comm.allreduceSum(v)));
        if (r > 0) times.push(performance.now() - t0);
      }
      if (grad[m.floats - 1] !== comm.size)
        comm.abort(`comm bench: all-reduce gave ${grad[m.floats - 1]}, want ${comm.size}`);
      cases.push({
        model: m.model,
        bucketMiB,
        buckets: views.length,
        bytes: m.floats * 4,
        medianMs: median(times),
        minMs: Math.min(...times),
      });
      if (comm.rank === 0)
        console.log(
          `  ${m.model} buckets of ${bucketMiB || 'all'} MiB (${views.length}): ${median(times).toFixed(1)} ms`,
        );
    }
  }
  const one = new Float32Array(1);
  const roundTrip = async (f: () => Promise<unknown>) => {
    for (let i = 0; i < 20; i++) await f();
    const t0 = performance.now();
    for (let i = 0; i < 500; i++) await f();
    return ((performance.now() - t0) / 500) * 1000;
  };
  const smallAllreduceUs = await roundTrip(() => comm.allreduceSum(one));
  const barrierUs = await roundTrip(() => comm.barrier());
  if (comm.rank === 0) {
    const result: RankResult = { size: comm.size, description: comm.description, cases, smallAllreduceUs, barrierUs };
    console.log(`RESULT ${JSON.stringify(result)}`);
  }
  await comm.close();
}

if (detectLaunch() && basename(process.argv[1] ?? '') === 'comm.mjs')
  await rankMain(JSON.parse(process.argv[2]) as Spec);

// ---- suite side: sizes the gradients, starts the job, writes the report ----

/** Ring all-reduce time for `bytes` on p ranks: 2(p-1) steps of latency + 2(p-1)/p of the data per link. */
function ringMs(bytes: number, p: number, gbPerS: number, latencyUs: number): number {
  return 2 * (p - 1) * latencyUs * 1e-3 + ((2 * (p - 1)) / p) * (bytes / (gbPerS * 1e9)) * 1e3;
}

const NETWORKS = [
  { name: '10 GbE', gbPerS: 1.25, latencyUs: 30 },
  { name: '100 GbE', gbPerS: 12.5, latencyUs: 5 },
];
const P = 8;

function gradientSizes(ctx: BenchContext): ModelSize[] {
  return (['resnet18', 'resnet50'] as const).map((arch) => {
    const m = new DenseCL(ctx.rt, {
      arch,
      width: 1,
      smallStem: false,
      method: 'densecl',
      dim: 128,
      queueSize: 8,
      tau: 0.2,
      emaMomentum: 0.999,
      lambda: 0.5,
      startIters: 0,
      bnGroups: 1,
      seed: 0,
    });
    const count = (specs: { shape: number[] }[]) => specs.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
    const size = {
      model: `DenseCL ${arch}`,
      floats: count(m.query.paramSpecs),
      backboneFloats: count(m.backbone.paramSpecs()),
    };
    m.destroy();
    return size;
  });
}

const MPI_ENV = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' };
const mpirunArgs = (np: number) => [
  '--oversubscribe',
  '-np',
  String(np),
  ...(process.env.COMM_MPIRUN_ARGS ?? '').split(/\s+/).filter(Boolean),
];

/** Median ms of a blocking one-message MPI_Allreduce per float count, or null when mpicc fails. */
function blockingBaseline(np: number, counts: number[], reps: number): Map<number, number> | null {
  const dir = join(process.cwd(), 'native/mpi');
  const exe = join(dir, 'build/allreduce_blocking');
  mkdirSync(dirname(exe), { recursive: true });
  const cc = spawnSync('mpicc', ['-O2', '-o', exe, join(dir, 'allreduce_blocking.c')], { encoding: 'utf8' });
  if (cc.status !== 0) return null;
  const r = spawnSync('mpirun', [...mpirunArgs(np), exe, String(reps), ...counts.map(String)], {
    env: MPI_ENV,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`comm bench: the C baseline failed: ${r.stderr}`);
  return new Map(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(' ').map(Number) as [number, number]),
  );
}

function runJob(np: number, spec: Spec): Promise<RankResult> {
  const program = join(dirname(fileURLToPath(import.meta.url)), 'comm.mjs');
  const args = [...mpirunArgs(np), process.execPath, program, JSON.stringify(spec)];
  return new Promise((resolve, reject) => {
    const child = spawn('mpirun', args, { env: MPI_ENV, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d;
      process.stdout.write(d.toString().replace(/^RESULT .*$/m, ''));
    });
    child.on('error', (e) =>
      reject(
        new Error(
          `comm bench: cannot start mpirun (${e.message}); install openmpi-bin libopenmpi-dev and npm run build:mpi`,
        ),
      ),
    );
    child.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (code !== 0 || !line) reject(new Error(`comm bench: mpirun ${args.join(' ')} exited with ${code}`));
      else resolve(JSON.parse(line.slice(7)) as RankResult);
    });
  });
}

export async function run(ctx: BenchContext): Promise<void> {
  const np = Number(process.env.COMM_NP ?? 2);
  const models = gradientSizes(ctx);
  const spec: Spec = { models, reps: process.env.BENCH_QUICK ? 3 : 11 };
  const res = await runJob(np, spec);
  const blocking = blockingBaseline(
    np,
    models.map((m) => m.floats),
    spec.reps,
  );
  const p = res.size;
  const busFactor = (2 * (p - 1)) / p;
  const gb = (bytes: number, ms: number) => bytes / (ms * 1e6);

  const measured = [
    '| model | gradient MiB | buckets | count | median ms | min ms | algorithm GB/s | bus GB/s | blocking MPI_Allreduce from C, one message ms |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...res.cases.map((c) => {
      const base = blocking?.get(c.bytes / 4);
      return `| ${c.model} | ${(c.bytes / MiB).toFixed(1)} | ${c.bucketMiB ? `${c.bucketMiB} MiB` : 'one message'} | ${c.buckets} | ${c.medianMs.toFixed(1)} | ${c.minMs.toFixed(1)} | ${gb(c.bytes, c.medianMs).toFixed(2)} | ${(gb(c.bytes, c.medianMs) * busFactor).toFixed(2)} | ${base === undefined ? '-' : base.toFixed(1)} |`;
    }),
  ].join('\n');

  const modelRows = models.flatMap((m) => {
    const bytes = m.floats * 4;
    return NETWORKS.map((n) => {
      const whole = ringMs(bytes, P, n.gbPerS, n.latencyUs);
      const k = Math.ceil(bytes / (25 * MiB));
      const bucketed = k * ringMs(0, P, n.gbPerS, n.latencyUs) + ringMs(bytes, P, n.gbPerS, 0);
      const last = ringMs(bytes - (k - 1) * 25 * MiB, P, n.gbPerS, n.latencyUs);
      return `| ${m.model} | ${(bytes / MiB).toFixed(1)} | ${n.name} | ${whole.toFixed(1)} | ${k} | ${bucketed.toFixed(1)} | ${last.toFixed(1)} |`;
    });
  });
  const estimate = [
    `| model | gradient MiB | network | one message ms | 25 MiB buckets | all buckets ms | last bucket ms |`,
    '| --- | ---: | --- | ---: | ---: | ---: | ---: |',
    ...modelRows,
  ].join('\n');

  const notes = [
    `Gradient sizes are the DenseCL query encoder's parameters (what the trainer all-reduces): ResNet-18 backbone ${models[0].backboneFloats.toLocaleString('en')} + heads = ${models[0].floats.toLocaleString('en')} floats; ResNet-50 backbone ${models[1].backboneFloats.toLocaleString('en')} + heads = ${models[1].floats.toLocaleString('en')} floats (backbones without fc, so below torchvision's 11.69M / 25.56M).`,
    `Each sample: a barrier, then every bucket's MPI_Iallreduce (float32 sum, in place) started at once and awaited together, rank 0's wall time; median of ${spec.reps} samples after one warm-up. Host arrays only: the GPU -> host -> GPU copies of the trainer are not included.`,
    `${p} ranks on ${cpus().length} CPU cores of one machine, ${res.description}, its default transport (shared memory). Algorithm bandwidth = gradient bytes / time; bus bandwidth = algorithm bandwidth x 2(p-1)/p, the bytes a ring all-reduce moves per rank.`,
    blocking
      ? `The last column is MPI's blocking MPI_Allreduce called from C on the same ranks (native/mpi/allreduce_blocking.c, median of ${spec.reps}), with the algorithm MPI picks for it: the same transfer without Node, the addon or event-loop polling. The addon's non-blocking calls use a ring (MpiCommunicator's default for Open MPI's libnbc, which alone would take a binomial tree for in-place calls).`
      : 'The blocking C baseline was not measured (mpicc failed).',
    `Small messages: a one-float all-reduce takes ${res.smallAllreduceUs.toFixed(0)} us and a barrier ${res.barrierUs.toFixed(0)} us per round trip (mean of 500; includes the event-loop polling of the non-blocking calls).`,
  ];
  const modelNotes = [
    `Ring all-reduce on p = ${P} ranks (one GPU per machine): T(n) = 2(p-1) a + 2(p-1)/p x n / B, for n bytes, link bandwidth B and per-step latency a. Assumed: 10 GbE B = 1.25 GB/s, a = 30 us (TCP); 100 GbE B = 12.5 GB/s, a = 5 us (RDMA). Line rates: real transfers reach perhaps 80-90% of them, so these are lower bounds.`,
    `With buckets the bandwidth term is unchanged and each bucket adds its own 2(p-1) a. Started as soon as its gradients exist, bucket i travels while the backward pass computes the layers before it: if the backward pass takes longer than the all-reduce of all but the last bucket, only the last bucket's time (last column) stays exposed after backward; otherwise the excess over the backward time is exposed too.`,
  ];

  const dir = join(process.cwd(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const date = new Date().toISOString();
  const load = loadavg().map((x) => x.toFixed(2));
  writeFileSync(
    join(dir, 'comm.json'),
    JSON.stringify(
      {
        suite: 'comm',
        date,
        ranks: p,
        library: res.description,
        models,
        reps: spec.reps,
        cases: res.cases,
        blockingMs: blocking ? Object.fromEntries(blocking) : null,
        smallAllreduceUs: res.smallAllreduceUs,
        barrierUs: res.barrierUs,
        networkModel: { p: P, networks: NETWORKS },
      },
      null,
      2,
    ) + '\n',
  );
  const md = [
    '# Benchmark: comm',
    '',
    `Date: ${date}, Node ${process.version}, ${cpus().length} CPU cores, load average ${load.join(' / ')}`,
    '',
    `Gradient all-reduce over MPI on this machine (loopback, ${p} ranks).`,
    '',
    measured,
    '',
    ...notes.map((n) => `- ${n}`),
    '',
    `## Estimate for ${P} machines on 10 GbE and 100 GbE`,
    '',
    estimate,
    '',
    ...modelNotes.map((n) => `- ${n}`),
    '',
  ].join('\n');
  writeFileSync(join(dir, 'comm.md'), md);
  console.log(`\n${measured}\n\n${estimate}`);
}
