// Picks the communicator for this process (Node only): MPI when a launcher (mpirun, mpiexec,
// srun) started it as one of several ranks, the size-1 default otherwise. Launchers announce
// themselves through environment variables set before the program starts.
import { SingleProcess, type Communicator } from './communicator.js';
import { loadMpiAddon, mpiAddonPath, MpiCommunicator, MPI_INSTALL_HINT } from './mpi.js';

export interface Launch {
  /** Which variables gave it away ('Open MPI', 'MPICH/PMI', 'Slurm'). */
  launcher: string;
  size: number;
  rank: number;
}

// [launcher, size variable, rank variable]; the first pair present wins. Slurm's step variables
// exist only inside `srun`, not in the batch script around it. PMIx launchers (Open MPI 5's
// mpirun, srun --mpi=pmix) set the Open MPI or Slurm variables as well.
const LAUNCHERS: [string, string, string][] = [
  ['Open MPI', 'OMPI_COMM_WORLD_SIZE', 'OMPI_COMM_WORLD_RANK'],
  ['MPICH/PMI', 'PMI_SIZE', 'PMI_RANK'],
  ['Slurm', 'SLURM_STEP_NUM_TASKS', 'SLURM_PROCID'],
];

/** The MPI launch this process belongs to, or null when it was started on its own. */
export function detectLaunch(env: NodeJS.ProcessEnv = process.env): Launch | null {
  for (const [launcher, sizeVar, rankVar] of LAUNCHERS) {
    const size = Number(env[sizeVar]);
    if (env[sizeVar] === undefined || !Number.isInteger(size) || size < 1) continue;
    return { launcher, size, rank: Number(env[rankVar] ?? 0) };
  }
  return null;
}

export interface OpenOptions {
  /** The number of processes the job must have (e.g. from --world-size); checked against the launch. */
  worldSize?: number;
  /** Environment to read (tests pass their own). */
  env?: NodeJS.ProcessEnv;
}

/**
 * The communicator of this process: SingleProcess when started on its own (or as the only rank),
 * MpiCommunicator when started by an MPI launcher with more ranks. Throws, saying what to install
 * and how to start the job, when several processes are wanted but MPI cannot provide them.
 */
export async function openCommunicator(opts: OpenOptions = {}): Promise<Communicator> {
  const env = opts.env ?? process.env;
  const want = opts.worldSize;
  if (want !== undefined && (!Number.isInteger(want) || want < 1))
    throw new Error(`world size must be a positive integer, got ${want}`);
  const launch = detectLaunch(env);
  if (!launch) {
    if (want === undefined || want === 1) return new SingleProcess();
    throw new Error(
      `A world size of ${want} needs ${want} processes started by an MPI launcher, but this process was started on its own: ${MPI_INSTALL_HINT.replaceAll(' N ', ` ${want} `)}.`,
    );
  }
  if (want !== undefined && want !== launch.size) {
    throw new Error(
      `World size ${want} was asked for, but ${launch.launcher} started ${launch.size} process(es): start the job with -np ${want} or drop the world-size option.`,
    );
  }
  if (launch.size === 1) return new SingleProcess();
  const addon = loadMpiAddon(mpiAddonPath(env));
  const comm = new MpiCommunicator(addon);
  if (comm.size !== launch.size) {
    comm.abort(
      `MPI reports ${comm.size} processes but ${launch.launcher} announced ${launch.size}: the MPI library the addon was built against does not match the launcher (rebuild with npm run build:mpi using the same MPI as mpirun/srun)`,
    );
  }
  return comm;
}
