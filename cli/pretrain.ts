// The pre-training loop: DenseCL or MoCo-v2 on a folder of images or the built-in scenes, with
// a progress line, a JSON-lines log of every step, atomic checkpoints that resume exactly, and
// the backbone exported for PyTorch at the end. In a data-parallel job (a communicator of
// several ranks) every rank trains on its slice of each batch and only rank 0 touches the run
// folder: it reads the checkpoint to resume from and broadcasts its bytes, and it alone writes.
import { readFileSync } from 'node:fs';
import { makeFolder, readSafetensorsMetadata } from '../train/io.js';
import { join, resolve } from 'node:path';
import { acquireGpu, Runtime, setRuntime } from '../engine/index.js';
import { SingleProcess, type Communicator } from '../engine/comm/communicator.js';
import { openCommunicator } from '../engine/comm/launch.js';
import { decodeSafetensors } from '../engine/safetensors.js';
import { NonFiniteStateError, parseCounters, type RunCounters } from '../train/checkpoint.js';
import { Trainer, type StepStats } from '../train/trainer.js';
import type { SyncTimes } from '../train/step-strategy.js';
import { exportRun } from './export-run.js';
import { StepProfiler } from './profile-run.js';
import { Progress } from '../train/progress.js';
import { RunFolder, CHECKPOINT } from '../train/run-folder.js';
import { checkCheckpointSettings } from '../train/resume.js';
import { readInitBackbone, applyInitBackbone, initWithResumeError } from '../train/init-backbone.js';
import { openTrainingData, type TrainingData } from '../train/data-source.js';
import { checkOptionRanges, describeOptions, trainerOptions, type PretrainOptions } from '../train/presets.js';
import { checkStepSettings } from '../train/step-checks.js';
import { flagName } from '../train/args.js';
import type { SamplerState } from '../train/data/loader.js';

export { PRETRAIN_PRESETS, type PretrainOptions } from '../train/presets.js';
export { resumeOptions } from '../train/resume.js';

/** Checks the flags, naming them as the user typed them (the same checks as the Trainer's, train/step-checks.ts). */
function validateFlags(o: PretrainOptions, worldSize: number): void {
  checkOptionRanges(o);
  checkStepSettings(o, worldSize, flagName);
  if (worldSize > 1 && o.profile > 0)
    throw new Error(
      `--profile times the kernels of one process; run it without mpirun (the job has ${worldSize} processes)`,
    );
}

export interface PretrainResult {
  /** The run's settings (a resumed run's are the saved ones). */
  options: PretrainOptions;
  runDir: string;
  steps: number;
  losses: number[];
  checkpoint: string;
  backbone: string;
}

/**
 * Runs (or resumes) a pre-training run; uses `runtime` when given, else acquires a GPU and
 * releases it at the end. With `comm` of several ranks, every rank of the job calls this.
 */
export async function pretrain(
  o: PretrainOptions,
  runtime?: Runtime,
  comm: Communicator = new SingleProcess(),
): Promise<PretrainResult> {
  validateFlags(o, comm.size);
  const lead = comm.rank === 0;
  const runDir = resolve(o.out);
  // Only rank 0 touches the run folder.
  const folder = lead ? new RunFolder(runDir) : null;
  // Checked whole before anything in the run folder is written; a resumed run keeps the path it started from (resumeOptions refuses the flag).
  const init = o.initBackbone && !o.resume ? readInitBackbone(o.initBackbone, o) : null;
  if (folder && !o.resume) folder.checkNewRun(o.overwrite);
  if (lead) makeFolder(runDir);
  const checkpointPath = join(runDir, CHECKPOINT);
  const saved = o.resume ? await shareCheckpoint(comm, checkpointPath) : null;
  if (saved) checkCheckpointSettings(saved.counters.config, o, checkpointPath);
  if (saved && o.initBackbone && o.initBackbone !== saved.counters.config.initBackbone) {
    throw initWithResumeError(o.initBackbone, runDir);
  }
  const data: TrainingData = await openTrainingData(o, (saved?.counters.sampler as SamplerState | undefined) ?? null, {
    rank: comm.rank,
    worldSize: comm.size,
  });
  const stepsPerEpoch = data.loader.batchesPerEpoch;
  const totalSteps = o.epochs * stepsPerEpoch;
  const rt = runtime ?? (await openRuntime(comm));
  const trainer = new Trainer(rt, trainerOptions(o, totalSteps), { comm });
  // Ranks other than 0 print nothing but errors; their figures are the same job-wide means.
  const progress = lead ? new Progress() : null;
  const [S, B] = [o.imgSize, o.batchSize];
  const losses: number[] = [];
  /** The step of the last checkpoint this run wrote or resumed from; null before there is one. */
  let lastGood: number | null = null;
  const stopped = (why: string) =>
    new Error(
      `${why}; training stopped. ` +
        (lastGood === null
          ? `No checkpoint of this run was written yet${o.overwrite ? ` (the run that was in ${runDir} is untouched)` : ''}. `
          : `The last good checkpoint (step ${lastGood}) is intact at ${checkpointPath}. `) +
        `Try a lower --lr or check the data.`,
    );
  progress?.note(describeOptions(o));
  const stale = folder?.removeStaleTemporaries() ?? [];
  if (stale.length)
    progress?.note(
      `removed ${stale.length} temporary file(s) that killed writers left in ${runDir}: ${stale.join(', ')}`,
    );
  try {
    // Where the run's backbones started, in config.json and every checkpoint (a resumed run keeps its own).
    const savedConfig = saved?.counters.config ?? {};
    const provenance = init
      ? { initBackbone: init.path, initBackboneSha256: init.sha256, initBackboneBytes: init.bytes }
      : { initBackboneSha256: savedConfig.initBackboneSha256, initBackboneBytes: savedConfig.initBackboneBytes };
    const config = { ...o, resume: '', ...(provenance.initBackboneSha256 !== undefined ? provenance : {}) };
    if (saved) {
      lastGood = trainer.loadState(saved.bytes, checkpointPath).step;
      folder?.startResumed(config, lastGood, (m) => progress!.note(`warning: ${m}`));
      progress?.note(`resumed ${runDir} at step ${lastGood}${comm.size > 1 ? ` on ${comm.size} processes` : ''}`);
    } else {
      if (init) {
        applyInitBackbone(init, [trainer.model.query, trainer.model.key]);
        progress?.note(
          `backbones (query and key) from ${init.path} (sha256 ${init.sha256.slice(0, 12)}...)${init.ignored.length ? `; ignored ${init.ignored.length} tensor(s) of it: ${init.ignored.slice(0, 3).join(', ')}${init.ignored.length > 3 ? ', ...' : ''}` : ''}`,
        );
      }
      folder?.startNew(config);
    }
    const job =
      comm.size > 1
        ? `, ${comm.size} processes (${comm.description}; this is rank ${comm.rank} of ${comm.size}), ${B / comm.size} images each`
        : '';
    progress?.note(
      `${o.method} ${o.arch} (width ${o.width}, ${o.smallStem ? 'small' : '7x7'} stem) on ${data.description}: ` +
        `${totalSteps} steps of batch ${B} at ${S}x${S}${job}, queue ${o.queueSize}, lr ${trainer.lrAt(0).toExponential(2)} -> ${runDir}`,
    );

    // The step in flight, with how long it waited for its batch and how long issuing it took
    // (with one step in flight, a wait is time the GPU went without work).
    let pending: { stats: Promise<StepStats>; dataWaitMs: number; issueMs: number } | null = null;
    // Images/s over the last steps to finish; the first step (shader compilation) starts the clock.
    const finished: number[] = [];
    // Figures are read one step late, so the GPU never waits for the CPU to look at them.
    const settle = async (): Promise<void> => {
      if (!pending) return;
      const { dataWaitMs, issueMs } = pending;
      const p = await pending.stats;
      pending = null;
      if (!Number.isFinite(p.loss)) throw stopped(`the loss became ${p.loss} at step ${p.step}`);
      losses.push(p.loss);
      finished.push(performance.now());
      if (finished.length > 21) finished.shift();
      const span = finished[finished.length - 1] - finished[0];
      const imagesPerSec = finished.length > 1 ? ((finished.length - 1) * B * 1000) / Math.max(span, 1) : 0;
      const figures = {
        step: p.step + 1,
        totalSteps,
        epoch: Math.floor(p.step / stepsPerEpoch),
        epochs: o.epochs,
        imagesPerSec,
        loss: p.loss,
        lossGlobal: p.lossGlobal,
        lossDense: p.lossDense,
        lr: p.lr,
        etaSec: imagesPerSec > 0 ? ((totalSteps - p.step - 1) * B) / imagesPerSec : Number.NaN,
        dataWaitMs: Math.round(dataWaitMs * 10) / 10,
        issueMs: Math.round(issueMs * 10) / 10,
      };
      if (!folder) return;
      // Data-parallel steps also log where their communication time went (rank 0's view).
      folder.log({ ...figures, ...(p.sync ? { sync: roundTimes(p.sync) } : {}), time: new Date().toISOString() });
      progress!.update(figures);
    };
    const checkpoint = async (): Promise<void> => {
      await settle();
      const step = trainer.steps;
      let bytes: Uint8Array;
      try {
        bytes = await trainer.saveState({
          epoch: Math.floor(step / stepsPerEpoch),
          sampler: data.loader.state(),
          config: { ...o, ...(provenance.initBackboneSha256 !== undefined ? provenance : {}) },
        });
      } catch (e) {
        if (!(e instanceof NonFiniteStateError)) throw e;
        throw stopped(`the model diverged by step ${step} (${e.message})`);
      }
      folder?.writeCheckpoint(bytes);
      lastGood = step;
    };

    const firstStep = trainer.steps;
    const profiler = o.profile > 0 ? new StepProfiler(rt) : null;
    const endStep = o.stopAfter > 0 ? Math.min(totalSteps, firstStep + o.stopAfter) : totalSteps;
    while (trainer.steps < endStep) {
      const waitStart = performance.now();
      const batch = await data.next();
      const dataWaitMs = performance.now() - waitStart;
      // --profile N: steps after two warm-up steps (shader compilation) are timed per kernel.
      const profiled = profiler !== null && trainer.steps >= firstStep + 2 && profiler.steps < o.profile;
      let stats: Promise<StepStats> | null = null;
      let issueMs = 0;
      const issue = () => {
        const t0 = performance.now();
        stats = trainer.trainStep(batch.q, batch.k);
        issueMs = performance.now() - t0;
      };
      if (profiled) await profiler.run(issue);
      else issue();
      if (profiled && profiler.steps === o.profile) {
        profiler.write(runDir, `${o.method} ${o.arch} training steps of ${runDir}`);
        progress!.note(
          `profile of ${o.profile} step(s): ${join(runDir, 'profile.md')}, trace ${join(runDir, 'trace.json')}`,
        );
      }
      await settle();
      pending = { stats: stats!, dataWaitMs, issueMs };
      if (trainer.steps % o.checkpointEvery === 0 && trainer.steps < endStep) await checkpoint();
    }
    await checkpoint();
  } finally {
    await data.close();
    trainer.destroy();
    if (!runtime) rt.destroy();
  }
  const backbone = lead ? exportRun(runDir, 'torchvision') : '';
  return { options: o, runDir, steps: lastGood ?? 0, losses, checkpoint: checkpointPath, backbone };
}

/**
 * The job this process belongs to (launched by mpirun / srun, or alone); `worldSize` is the
 * --world-size flag: the job must have that many processes, else the error says what to install
 * or how to launch it.
 */
export async function openJob(worldSize: string | boolean | undefined): Promise<Communicator> {
  if (worldSize !== undefined && (typeof worldSize !== 'string' || !/^[1-9][0-9]*$/.test(worldSize))) {
    throw new Error(`pretrain: --world-size needs a positive integer, got '${worldSize}'`);
  }
  return openCommunicator({ worldSize: worldSize === undefined ? undefined : Number(worldSize) });
}

/**
 * pretrain() as one rank of `comm`'s job; `options` is read inside, so bad flags end the job
 * too. A failing rank ends the whole job (MPI abort, non-zero exit everywhere) instead of
 * leaving the other ranks waiting in a collective; rank 0's last checkpoint stays intact.
 */
export async function pretrainInJob(comm: Communicator, options: () => PretrainOptions): Promise<PretrainResult> {
  let r: PretrainResult;
  try {
    r = await pretrain(options(), undefined, comm);
  } catch (e) {
    if (comm.size > 1) comm.abort(`densecl: ${(e as Error).message}`);
    throw e;
  }
  await comm.close();
  return r;
}

/** The GPU of this rank: $DENSECL_ADAPTER picks one by name (Dawn cannot pick among identical GPUs by index). */
async function openRuntime(comm: Communicator): Promise<Runtime> {
  const adapter = process.env.DENSECL_ADAPTER?.split(',')[comm.localRank]?.trim() || undefined;
  const handle = await acquireGpu({ adapter });
  const rt = new Runtime(handle);
  setRuntime(rt);
  const who = comm.size > 1 ? `rank ${comm.rank}/${comm.size} (local ${comm.localRank}/${comm.localSize}): ` : '';
  const shared =
    comm.localSize > 1 && !adapter
      ? ` (shared by the ${comm.localSize} ranks on this machine unless DENSECL_ADAPTER names one per local rank)`
      : '';
  console.log(`[engine] ${who}WebGPU adapter: ${handle.adapterDescription}${shared}`);
  return rt;
}

/** Rank 0 reads the checkpoint and sends its bytes to the others (no shared file system needed). */
async function shareCheckpoint(
  comm: Communicator,
  path: string,
): Promise<{ bytes: Uint8Array; counters: RunCounters }> {
  if (comm.size === 1) return readCheckpointFile(path);
  let bytes = comm.rank === 0 ? readCheckpointFile(path).bytes : new Uint8Array(0);
  const length = await comm.broadcast(Int32Array.of(bytes.length), 0);
  if (comm.rank !== 0) bytes = new Uint8Array(length[0]);
  await comm.broadcast(bytes, 0);
  return { bytes, counters: countersOf(bytes, path) };
}

function roundTimes(t: SyncTimes): SyncTimes {
  const r = (x: number) => Math.round(x * 100) / 100;
  return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, r(v)])) as unknown as SyncTimes;
}

/** A checkpoint's bytes and run counters (read before the model exists: the data sampler needs them). */
function readCheckpointFile(path: string): { bytes: Uint8Array; counters: RunCounters } {
  readSafetensorsMetadata(path); // the header first: a wrong file is refused before it is read whole
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new Error(`cannot read checkpoint ${path}: ${(e as Error).message}`);
  }
  return { bytes, counters: countersOf(bytes, path) };
}

function countersOf(bytes: Uint8Array, path: string): RunCounters {
  return parseCounters(decodeSafetensors(bytes, path).metadata.counters, path);
}
