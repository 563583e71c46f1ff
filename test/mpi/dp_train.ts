// One rank of the data-parallel checks in test/distributed.test.ts, started as
// `mpirun -np N node .build/test/mpi/dp_train.mjs MODE DIR`:
//   steps DIR     3 steps of a tiny DenseCL at job batch 8 on fixed random views, each rank on
//                 its slice; rank 0 writes DIR/state.safetensors, every rank the shuffle
//                 permutations it used (DIR/permutations.RANK.json).
//   pretrain DIR [STEPS]  the real `densecl pretrain` loop (MoCo-v2), checkpoint every step: hundreds of
//                 steps for the test to kill a rank in, or stopping after STEPS (for a resume).
//   fail DIR      the same, but rank 1 is given a data folder that does not exist.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { init } from '../../engine/index.js';
import { openCommunicator } from '../../engine/comm/launch.js';
import { Trainer } from '../../train/trainer.js';
import { pretrainInJob } from '../../cli/pretrain.js';
import { PRETRAIN_PRESETS } from '../../train/presets.js';
import { randomArray } from '../helpers.js';

const [mode, dir, steps] = [process.argv[2], process.argv[3], Number(process.argv[4] ?? 0)];
const comm = await openCommunicator();
const W = comm.size;
mkdirSync(dir, { recursive: true });

if (mode === 'steps') {
  const rt = await init({ quiet: true });
  // The in-memory test's configuration (test/distributed.test.ts: TINY).
  const trainer = new Trainer(
    rt,
    { batchSize: 8, bnGroups: 4, imgSize: 16, width: 1 / 16, dim: 8, queueSize: 16, seed: 3, lr: 0.3 },
    { comm, bucketBytes: 16 << 10 },
  );
  const per = 3 * 16 * 16;
  const mine = (x: Float32Array) => x.subarray((comm.rank * 8 * per) / W, ((comm.rank + 1) * 8 * per) / W);
  const permutations: number[][] = [];
  for (let step = 0; step < 3; step++) {
    const stats = await trainer.trainStep(
      mine(randomArray(8 * per, 100 * step)),
      mine(randomArray(8 * per, 100 * step + 1)),
    );
    if (stats.keyPermutation) permutations.push([...stats.keyPermutation]);
  }
  const state = await trainer.saveState(); // collective: every rank
  if (comm.rank === 0) writeFileSync(join(dir, 'state.safetensors'), state);
  writeFileSync(join(dir, `permutations.${comm.rank}.json`), JSON.stringify(permutations));
  trainer.destroy();
  rt.destroy();
  await comm.close();
} else if (mode === 'pretrain' || mode === 'fail') {
  await pretrainInJob(comm, () => ({
    ...PRETRAIN_PRESETS.tiny.options,
    // MoCo-v2: DenseCL's correspondence argmax can flip on float-noise differences between batch
    // decompositions (2 ranks of 4 vs 1 process of 8 sum in other orders), which a comparison of
    // runs then sees as a jump; the equality of DenseCL itself is checked in 'steps' mode.
    method: 'mocov2',
    width: 1 / 16,
    imgSize: 16,
    batchSize: 8,
    bnGroups: 4,
    queueSize: 16,
    dim: 8,
    builtinImages: 64,
    epochs: 100,
    workers: 0,
    checkpointEvery: 1,
    stopAfter: steps,
    out: dir,
    data: mode === 'fail' && comm.rank === 1 ? join(dir, 'no-such-folder') : 'builtin',
  }));
} else {
  comm.abort(`dp_train: unknown mode '${mode}' (steps, pretrain or fail)`, 2);
}
