// Collective communication between the processes of a data-parallel job. The engine itself never
// talks to the network: an implementation (size 1 here, MPI in engine/comm/mpi.ts for Node) moves
// host arrays, and the trainer copies GPU buffers to and from them. Browser-safe.

/** Arrays the collectives move (element type is kept; reductions are over float32 only). */
export type CommArray = Float32Array | Int32Array | Uint32Array | Uint8Array;

export interface Communicator {
  /** This process's rank in the job, 0 .. size-1. */
  readonly rank: number;
  /** Number of processes in the job. */
  readonly size: number;
  /** Rank among the processes on this machine (picks the GPU). */
  readonly localRank: number;
  readonly localSize: number;
  /** What carries the messages, for logs ('single process', 'Open MPI 4.1.4', ...). */
  readonly description: string;
  /** Sums `data` element-wise over all ranks, in place; every rank passes the same length. */
  allreduceSum(data: Float32Array): Promise<Float32Array>;
  /** Every rank's `data` (all the same length) concatenated in rank order; a new array. */
  allgather<T extends CommArray>(data: T): Promise<T>;
  /** Rank `root`'s `data` copied into every rank's `data` (same length everywhere), in place. */
  broadcast<T extends CommArray>(data: T, root?: number): Promise<T>;
  barrier(): Promise<void>;
  /**
   * Ends the whole job at once (every rank exits with `code`) after printing `message`: a rank that
   * fails must not leave the others waiting forever in a collective.
   */
  abort(message: string, code?: number): never;
  /** Finalises the transport; the communicator is unusable afterwards. */
  close(): Promise<void>;
}

/** The job of one process: every collective is the identity. Needs nothing installed. */
export class SingleProcess implements Communicator {
  readonly rank = 0;
  readonly size = 1;
  readonly localRank = 0;
  readonly localSize = 1;
  readonly description = 'single process';
  allreduceSum(data: Float32Array): Promise<Float32Array> {
    return Promise.resolve(data);
  }
  allgather<T extends CommArray>(data: T): Promise<T> {
    return Promise.resolve(data.slice() as T);
  }
  broadcast<T extends CommArray>(data: T, root = 0): Promise<T> {
    if (root !== 0) throw new Error(`broadcast: root ${root} does not exist in a job of 1 process`);
    return Promise.resolve(data);
  }
  barrier(): Promise<void> {
    return Promise.resolve();
  }
  abort(message: string, code = 1): never {
    throw new Error(`${message} (exit code ${code})`);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
