// Communicator over MPI through the native addon in native/mpi (Node only). Every collective is
// started non-blocking and polled from the event loop: the rank keeps running timers, I/O and GPU
// callbacks while MPI moves data. Polling spins while there is progress and backs off when a
// collective waits long (another rank is still computing), so an idle wait costs little CPU.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CommArray, Communicator } from './communicator.js';

/** What native/mpi/addon.cc exports. Ids name requests in flight. */
export interface MpiAddon {
  init(): { rank: number; size: number; localRank: number; localSize: number; library: string };
  iallreduceSum(data: Float32Array): number;
  iallgather(send: CommArray, recv: CommArray): number;
  ibcast(data: CommArray, root: number): number;
  ibarrier(): number;
  /** Ids of the requests completed since the last call. */
  testsome(): number[];
  abort(code: number): never;
  finalize(): void;
}

export const MPI_INSTALL_HINT =
  'install MPI (apt-get install openmpi-bin libopenmpi-dev, or mpich libmpich-dev), build the addon with `npm run build:mpi`, ' +
  'and start the job with `mpirun -np N node dist/cli.mjs ...` (or `srun -n N ...` on Slurm)';

/** The addon's path: $DENSECL_MPI_ADDON, else native/mpi/build/Release under the folder holding package.json. */
export function mpiAddonPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DENSECL_MPI_ADDON) return env.DENSECL_MPI_ADDON;
  // Bundles live in dist/ or .build/test/; walk up from wherever this code was bundled to.
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return join(dir, 'native/mpi/build/Release/densecl_mpi.node');
}

/** Loads the addon, or throws an error that says what to install and run. */
export function loadMpiAddon(path = mpiAddonPath()): MpiAddon {
  if (!existsSync(path)) throw new Error(`The MPI addon is not built (no ${path}): ${MPI_INSTALL_HINT}.`);
  try {
    return createRequire(import.meta.url)(path) as MpiAddon;
  } catch (e) {
    throw new Error(
      `The MPI addon at ${path} did not load (${(e as Error).message.split('\n')[0]}): ${MPI_INSTALL_HINT}.`,
    );
  }
}

// Polling: spin (one MPI_Testsome per event-loop turn) while a transfer may be under way, then
// poll on timers whose period doubles up to MAX_POLL_MS. MPI moves a non-blocking collective's
// data only inside such calls, so a large message gets the time it would take at a slow
// SPIN_BYTES_PER_MS (100 MB/s) on top of SPIN_MS after it starts; a rank still waiting after
// that is waiting for another rank to arrive.
const SPIN_MS = 20;
const SPIN_BYTES_PER_MS = 100_000;
const MAX_POLL_MS = 4;

export class MpiCommunicator implements Communicator {
  readonly rank: number;
  readonly size: number;
  readonly localRank: number;
  readonly localSize: number;
  readonly description: string;
  private readonly waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private readonly inflight = new Set<Promise<void>>();
  private spinUntil = 0;
  private pollDelay = 0;
  private scheduled:
    | { kind: 'immediate'; handle: NodeJS.Immediate }
    | { kind: 'timer'; handle: NodeJS.Timeout }
    | null = null;
  private closed = false;
  /** Set when MPI failed while testing requests: the communicator cannot be used any more. */
  private failure: Error | null = null;

  /** Initialises MPI (once per process) through `addon`. */
  constructor(private readonly addon: MpiAddon) {
    // Open MPI's non-blocking all-reduce (libnbc) takes a binomial tree for every in-place call and
    // every job under 4 ranks: each rank then moves the whole message log2(p) times, where a ring
    // moves 2(p-1)/p of it (2-3x slower measured on 2 ranks). Ring unless the user chose (mpirun
    // --mca or the environment); read once by MPI_Init, ignored by other MPIs.
    process.env.OMPI_MCA_coll_libnbc_iallreduce_algorithm ??= '1';
    const info = addon.init();
    this.rank = info.rank;
    this.size = info.size;
    this.localRank = info.localRank;
    this.localSize = info.localSize;
    this.description = info.library.split(',')[0].trim();
    // A rank that fails ends the whole job, since launchers such as srun would otherwise leave
    // the other ranks waiting. An uncaught error is printed here: Node prints it only after the
    // 'exit' handlers.
    process.on('uncaughtExceptionMonitor', (err, origin) => {
      if (!this.closed && process.listenerCount('uncaughtException') === 0)
        this.abort(`${origin}: ${err?.stack ?? err}`, 1);
    });
    // A rank that exits without close(): finalise on a clean exit.
    process.on('exit', (code) => {
      if (this.closed) return;
      if (code === 0 && this.waiting.size === 0 && !this.failure) return this.addon.finalize();
      if (code === 0)
        process.stderr.write(
          `[rank ${this.rank}/${this.size}] exiting with ${this.failure ? `a failed communicator (${this.failure.message})` : `${this.waiting.size} collective(s) still in flight`}\n`,
        );
      this.addon.abort(code || 1);
    });
  }

  allreduceSum(data: Float32Array): Promise<Float32Array> {
    if (!(data instanceof Float32Array))
      throw new TypeError(`allreduceSum: expected a Float32Array, got ${describe(data)}`);
    return this.start(() => this.addon.iallreduceSum(data), data.byteLength).then(() => data);
  }

  allgather<T extends CommArray>(data: T): Promise<T> {
    const Ctor = data.constructor as new (length: number) => T;
    const out = new Ctor(data.length * this.size);
    return this.start(() => this.addon.iallgather(data, out), out.byteLength).then(() => out);
  }

  broadcast<T extends CommArray>(data: T, root = 0): Promise<T> {
    if (!Number.isInteger(root) || root < 0 || root >= this.size)
      throw new RangeError(
        `broadcast: root ${root} is not a rank of this job of ${this.size} processes (0..${this.size - 1})`,
      );
    return this.start(() => this.addon.ibcast(data, root), data.byteLength).then(() => data);
  }

  barrier(): Promise<void> {
    return this.start(() => this.addon.ibarrier(), 0);
  }

  abort(message: string, code = 1): never {
    process.stderr.write(`[rank ${this.rank}/${this.size}] ${message}\n`);
    this.closed = true;
    return this.addon.abort(code);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.allSettled(this.inflight);
    if (this.failure) throw this.failure;
    this.closed = true;
    this.addon.finalize();
  }

  /** Starts one collective (`begin` returns its request id) moving `bytes`; resolves when it completes. */
  private start(begin: () => number, bytes: number): Promise<void> {
    if (this.failure) throw this.failure;
    const id = begin();
    const p = new Promise<void>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.spinUntil = Math.max(this.spinUntil, performance.now() + SPIN_MS + bytes / SPIN_BYTES_PER_MS);
      this.pollDelay = 0;
      // A new request ends a backed-off wait: poll again on the next turn.
      if (this.scheduled?.kind === 'timer') {
        clearTimeout(this.scheduled.handle);
        this.scheduled = null;
      }
      if (!this.scheduled) this.scheduled = { kind: 'immediate', handle: setImmediate(this.poll) };
    });
    this.inflight.add(p);
    const forget = () => this.inflight.delete(p);
    p.then(forget, forget);
    return p;
  }

  private readonly poll = (): void => {
    this.scheduled = null;
    let done: number[];
    try {
      done = this.addon.testsome();
    } catch (e) {
      this.failure = e as Error;
      for (const w of this.waiting.values()) w.reject(this.failure);
      this.waiting.clear();
      return;
    }
    for (const id of done) {
      this.waiting.get(id)?.resolve();
      this.waiting.delete(id);
    }
    if (!this.waiting.size) return;
    const now = performance.now();
    if (done.length) this.spinUntil = Math.max(this.spinUntil, now + SPIN_MS);
    if (now < this.spinUntil) {
      this.scheduled = { kind: 'immediate', handle: setImmediate(this.poll) };
    } else {
      this.pollDelay = Math.min(MAX_POLL_MS, Math.max(1, this.pollDelay * 2));
      this.scheduled = { kind: 'timer', handle: setTimeout(this.poll, this.pollDelay) };
    }
  };
}

function describe(x: unknown): string {
  return (x as object)?.constructor?.name ?? typeof x;
}
