// One rank of the MPI collective checks, started by test/comm_mpi.test.ts under
// `mpirun -np N node .build/test/mpi/collectives.mjs N DIR [abort]`. Every collective's result is
// compared with what this rank computes on its own; a mismatch aborts the whole job with the
// check's name. In `abort` mode the last rank aborts while the others wait in a barrier; in
// `kill` mode it dies of SIGKILL instead.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCommunicator } from '../../engine/comm/launch.js';
import type { CommArray } from '../../engine/comm/communicator.js';

const [worldSize, dir, mode] = [Number(process.argv[2]), process.argv[3], process.argv[4]];
const comm = await openCommunicator({ worldSize });
const { rank, size } = comm;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function check(cond: boolean, what: string): void {
  if (!cond) comm.abort(`check failed: ${what}`, 2);
}

/** First index where `got` differs from `want(i)` by more than `tol`, or -1. */
function firstMismatch(got: ArrayLike<number>, want: (i: number) => number, tol = 0): number {
  for (let i = 0; i < got.length; i++) if (!(Math.abs(got[i] - want(i)) <= tol)) return i;
  return -1;
}

// Integer and half values: sums are exact in float32 whatever order MPI adds them in.
const exactValue = (r: number, i: number) => (r + 1) * ((i % 97) - 48) + r * 0.5;
async function allreduceExact(n: number): Promise<void> {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = exactValue(rank, i);
  const out = await comm.allreduceSum(x);
  check(out === x, `allreduceSum(${n}) works in place`);
  let rs = 0;
  for (let r = 0; r < size; r++) rs += r;
  const at = firstMismatch(x, (i) => ((size * (size + 1)) / 2) * ((i % 97) - 48) + rs * 0.5);
  check(at < 0, `allreduceSum of ${n} floats: element ${at} is ${x[at]}`);
}

async function allreduceRounded(): Promise<void> {
  const n = 1000;
  const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + rank));
  await comm.allreduceSum(x);
  const want = (i: number) => {
    let s = 0;
    for (let r = 0; r < size; r++) s += Math.fround(Math.sin(i * 0.37 + r));
    return s;
  };
  const at = firstMismatch(x, want, 1e-6 * size);
  check(at < 0, `allreduceSum of fractions: element ${at} is ${x[at]}, want ${at >= 0 ? want(at) : ''}`);
}

// Per-rank contents of each array type; values use the type's full range where it matters.
const makers: [string, (n: number, r: number) => CommArray][] = [
  ['Float32Array', (n, r) => Float32Array.from({ length: n }, (_, i) => r * 1000 + i + 0.25)],
  ['Int32Array', (n, r) => Int32Array.from({ length: n }, (_, i) => -(r * 100000 + i) - 2 ** 30)],
  ['Uint32Array', (n, r) => Uint32Array.from({ length: n }, (_, i) => 2 ** 31 + r * 100000 + i)],
  ['Uint8Array', (n, r) => Uint8Array.from({ length: n }, (_, i) => (r * 37 + i) & 255)],
];

async function allgatherEach(): Promise<void> {
  for (const [name, make] of makers) {
    const n = 13;
    const out = await comm.allgather(make(n, rank));
    check(out.constructor.name === name, `allgather of ${name} returns a ${out.constructor.name}`);
    check(out.length === n * size, `allgather of ${name}: length ${out.length}, want ${n * size}`);
    for (let r = 0; r < size; r++) {
      const want = make(n, r);
      const at = firstMismatch(out.subarray(r * n, (r + 1) * n), (i) => want[i]);
      check(at < 0, `allgather of ${name}: rank ${r}'s element ${at}`);
    }
  }
}

async function broadcastEach(root: number): Promise<void> {
  for (const [name, make] of makers) {
    const n = 1001;
    const data = make(n, rank);
    const out = await comm.broadcast(data, root);
    check(out === data, `broadcast of ${name} works in place`);
    const want = make(n, root);
    const at = firstMismatch(data, (i) => want[i]);
    check(at < 0, `broadcast of ${name} from root ${root}: element ${at} is ${data[at]}`);
  }
}

// Ranks arrive at different times; after the barrier every rank must see every arrival mark.
async function barrierOrders(): Promise<void> {
  await sleep(40 * rank);
  writeFileSync(join(dir, `arrived-${rank}`), '');
  await comm.barrier();
  for (let r = 0; r < size; r++)
    check(existsSync(join(dir, `arrived-${r}`)), `barrier returned on rank ${rank} before rank ${r} arrived`);
}

async function manyInFlight(): Promise<void> {
  const a = Float32Array.from({ length: 777 }, (_, i) => exactValue(rank, i));
  const b = Int32Array.from({ length: 5 }, (_, i) => rank * 10 + i);
  const c = rank === 0 ? Uint8Array.from({ length: 300000 }, (_, i) => i % 251) : new Uint8Array(300000);
  const d = new Float32Array(4_500_001).fill(rank + 1);
  const [ra, rb, rc, , rd] = await Promise.all([
    comm.allreduceSum(a),
    comm.allgather(b),
    comm.broadcast(c, 0),
    comm.barrier(),
    comm.allreduceSum(d),
  ]);
  let rs = 0;
  for (let r = 0; r < size; r++) rs += r;
  check(
    firstMismatch(ra, (i) => ((size * (size + 1)) / 2) * ((i % 97) - 48) + rs * 0.5) < 0,
    'concurrent allreduceSum (small)',
  );
  check(firstMismatch(rb, (i) => Math.floor(i / 5) * 10 + (i % 5)) < 0, 'concurrent allgather');
  check(firstMismatch(rc, (i) => i % 251) < 0, 'concurrent broadcast');
  check(firstMismatch(rd, () => (size * (size + 1)) / 2) < 0, 'concurrent allreduceSum (large)');
}

// Rank 0 waits in a collective the others join late: its timers keep firing, and the backed-off
// polling leaves most of the wait's CPU time free.
async function staysResponsive(): Promise<{ ticks: number; cpuShare: number }> {
  const x = new Float32Array(1 << 20).fill(1);
  if (rank !== 0) {
    await sleep(400);
    await comm.allreduceSum(x);
    return { ticks: 0, cpuShare: 0 };
  }
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await comm.allreduceSum(x);
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  clearInterval(timer);
  check(x[0] === size && x[x.length - 1] === size, 'allreduceSum after a late join');
  check(wall > 300, `rank 0's allreduce returned after ${wall.toFixed(0)} ms, before the others joined (400 ms)`);
  check(ticks >= 10, `only ${ticks} timer ticks of 10 ms fired during a ${wall.toFixed(0)} ms wait`);
  return { ticks, cpuShare: (cpu.user + cpu.system) / 1000 / wall };
}

if (mode === 'abort' || mode === 'kill') {
  if (rank === size - 1) {
    await sleep(100);
    if (mode === 'kill') process.kill(process.pid, 'SIGKILL');
    comm.abort(`rank ${rank} gives up on purpose`, 3);
  }
  await comm.barrier();
  console.log(`rank ${rank}: barrier returned although rank ${size - 1} aborted`);
  process.exit(0);
}

const times: Record<string, number> = {};
async function timed(name: string, f: () => Promise<unknown>): Promise<void> {
  const t0 = performance.now();
  await f();
  times[name] = Math.round(performance.now() - t0);
}
await timed('allreduce', async () => {
  for (const n of [0, 1, 1_000_003, 4_500_001]) await allreduceExact(n);
  await allreduceRounded();
});
await timed('allgather', allgatherEach);
await timed('broadcast', () => broadcastEach(size - 1));
await timed('barrier', barrierOrders);
await timed('inflight', manyInFlight);
const resp = await staysResponsive();
await comm.close();
if (rank === 0) {
  console.log(
    `collectives ok: ${size} ranks, ${comm.description}, local ${comm.localRank}/${comm.localSize}; ms ${JSON.stringify(times)}; ` +
      `late-join wait: ${resp.ticks} ticks, cpu ${(resp.cpuShare * 100).toFixed(0)}%`,
  );
}
