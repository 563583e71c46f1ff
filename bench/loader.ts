// The data loader alone (issue 15: does it keep up with the training step?): images/s of
// BatchLoader over a FolderDataset of JPEG photos, as `densecl pretrain --data DIR` feeds it
// (JPEG decode with sharp, then the MoCo-v2 augmentation of two views, as bytes), with N worker threads,
// its consumer taking no time at all. Also the time and CPU time of each stage per image
// (decode vs augmenting both views), in this thread, one image at a time. The GPU is not used.
// Sizes: LOADER_FOLDER (a folder of images; default: photo-like JPEGs made once, see
// lib/photos.ts), LOADER_IMAGES (512: how many to make), LOADER_WORKERS (0, 1, 2, 4, ... up to
// the cores), LOADER_BATCHES ("32,256"), LOADER_IMG (224), LOADER_TIMED_IMAGES (512: at least
// this many images timed per case), LOADER_STAGE_IMAGES (32).
import { availableParallelism, loadavg } from 'node:os';
import { BatchLoader } from '../train/data/loader.js';
import { FolderDataset } from '../train/data/folder.js';
import { augmentView, MOCO_V2 } from '../train/data/augment.js';
import { rngFor } from '../train/data/seeds.js';
import type { BenchContext } from './lib/context.js';
import type { Measurement } from './lib/timing.js';
import { writeReport } from './lib/report.js';
import { cachedPhotoFolder } from './lib/photos.js';

interface Throughput {
  batch: number;
  workers: number;
  /** Batches taken before the clock starts (the prefetch queue filled, every worker busy). */
  warmBatches: number;
  timedBatches: number;
  msPerBatch: number;
  imagesPerSec: number;
  /** Process CPU time (all threads) over wall time while timed. */
  coresUsed: number;
  /** From creating the loader to its first batch (worker start-up included). */
  firstBatchMs: number;
  /** The machine's 1-minute load average when the timed batches ended (other jobs on the cores). */
  load: number;
}

interface Stages {
  images: number;
  decodeMs: number;
  decodeCpuMs: number;
  augmentMs: number;
  augmentCpuMs: number;
  srcPixels: number;
}

const cpuMs = (c: NodeJS.CpuUsage): number => (c.user + c.system) / 1000;

function defaultWorkers(cores: number): number[] {
  const out = [0];
  for (let n = 1; n < cores; n *= 2) out.push(n);
  out.push(cores);
  return out;
}

function numberList(name: string, fallback: number[]): number[] {
  const text = process.env[name];
  if (!text) return fallback;
  const xs = text.split(',').map(Number);
  if (xs.some((x) => !Number.isInteger(x) || x < 0))
    throw new Error(`${name}="${text}": expected a comma-separated list of non-negative integers`);
  return xs;
}

async function throughput(
  ds: FolderDataset,
  batch: number,
  size: number,
  workers: number,
  timedImages: number,
): Promise<Throughput> {
  const t0 = performance.now();
  // Byte views, as densecl pretrain loads them (data-source.ts).
  const loader = await BatchLoader.create(ds, {
    batchSize: batch,
    size,
    seed: 0,
    workers,
    pixels: 'bytes',
    onWarning: () => {},
  });
  try {
    await loader.next();
    const firstBatchMs = performance.now() - t0;
    // Whole rounds of batches, one per worker, so that the clock starts and stops between rounds.
    const round = Math.max(1, workers);
    const prefetch = Math.max(2, workers + 1); // the loader's default
    const warmBatches = prefetch + round;
    const timedBatches = Math.ceil(Math.max(Math.ceil(timedImages / batch), 2 * round) / round) * round;
    for (let i = 1; i < warmBatches; i++) await loader.next();
    const c0 = process.cpuUsage();
    const start = performance.now();
    for (let i = 0; i < timedBatches; i++) await loader.next();
    const wall = performance.now() - start;
    const cpu = cpuMs(process.cpuUsage(c0));
    return {
      batch,
      workers,
      warmBatches,
      timedBatches,
      msPerBatch: wall / timedBatches,
      imagesPerSec: (timedBatches * batch * 1000) / wall,
      coresUsed: cpu / wall,
      firstBatchMs,
      load: loadavg()[0],
    };
  } finally {
    await loader.close();
  }
}

/** Decode and augmentation per image, in this thread, one image at a time. */
async function stages(ds: FolderDataset, size: number, n: number): Promise<Stages> {
  const out: Stages = { images: n, decodeMs: 0, decodeCpuMs: 0, augmentMs: 0, augmentCpuMs: 0, srcPixels: 0 };
  const view = new Float32Array(3 * size * size);
  // Image -1 is a warm-up (JIT compilation), not counted.
  for (let i = -1; i < n; i++) {
    const index = Math.max(i, 0) % ds.length;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const { image } = await ds.get(index);
    const c1 = process.cpuUsage();
    const t1 = performance.now();
    for (const v of [0, 1]) augmentView(image, rngFor(0, 0, index, v), size, MOCO_V2, view);
    if (i < 0) continue;
    out.decodeMs += t1 - t0;
    out.decodeCpuMs += cpuMs(c1) - cpuMs(c0);
    out.srcPixels += image.width * image.height;
    out.augmentMs += performance.now() - t1;
    out.augmentCpuMs += cpuMs(process.cpuUsage(c1));
  }
  return out;
}

export async function run(ctx: BenchContext): Promise<void> {
  const quick = !!process.env.BENCH_QUICK;
  const cores = availableParallelism();
  const S = Number(process.env.LOADER_IMG ?? 224);
  const workerCounts = numberList('LOADER_WORKERS', quick ? [0, 1] : defaultWorkers(cores));
  const batches = numberList('LOADER_BATCHES', quick ? [32] : [32, 256]);
  const timedImages = Number(process.env.LOADER_TIMED_IMAGES ?? (quick ? 64 : 512));
  const stageImages = Number(process.env.LOADER_STAGE_IMAGES ?? (quick ? 8 : 32));

  let folder = process.env.LOADER_FOLDER;
  let what: string;
  if (folder) {
    what = `the images in ${folder}`;
  } else {
    const count = Number(process.env.LOADER_IMAGES ?? (quick ? 128 : 512));
    const t0 = performance.now();
    const made = await cachedPhotoFolder({ count });
    if (made.made)
      console.log(
        `[loader] made ${made.count} photos in ${made.dir} (${((performance.now() - t0) / 1000).toFixed(0)} s)`,
      );
    folder = made.dir;
    what =
      `${made.count} photo-like JPEGs made by bench/lib/photos.ts (built-in scenes with fractal detail and grain; 500x375, 500x333, 375x500, 500x500; ` +
      `quality 90, 4:2:0; ${(made.bytes / made.count / 1024).toFixed(0)} KB on average) in ${made.dir}`;
  }
  const ds = await FolderDataset.open(folder, { cropSize: S, onWarning: (m) => console.log(`[loader] warning: ${m}`) });
  console.log(
    `[loader] ${ds.length} images from ${folder}; ${cores} cores, load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' / ')}`,
  );

  const st = await stages(ds, S, stageImages);
  const per = (x: number) => x / st.images;
  const decodeShare = st.decodeCpuMs / (st.decodeCpuMs + st.augmentCpuMs);
  console.log(
    `[loader] per image: decode ${per(st.decodeMs).toFixed(1)} ms (CPU ${per(st.decodeCpuMs).toFixed(1)}), augment 2 views ${per(st.augmentMs).toFixed(1)} ms (CPU ${per(st.augmentCpuMs).toFixed(1)})`,
  );

  const results: Throughput[] = [];
  const measurements: Measurement[] = [];
  for (const B of batches) {
    if (B > ds.length) {
      console.log(`[loader] batch ${B} skipped: the folder has only ${ds.length} images`);
      continue;
    }
    for (const N of workerCounts) {
      const r = await throughput(ds, B, S, N, timedImages);
      results.push(r);
      const workload = `batch ${B}, ${S} px`;
      measurements.push({
        workload,
        name: `workers ${N}`,
        msPerOp: r.msPerBatch,
        msPerOpMin: NaN,
        gflops: 0,
        gbps: 0,
        reps: 1,
        samples: r.timedBatches,
        rmePercent: NaN,
        cpuMsPerOp: r.msPerBatch * r.coresUsed,
      });
      console.log(
        `[loader] ${workload}, workers ${N}: ${r.imagesPerSec.toFixed(1)} images/s, ${r.msPerBatch.toFixed(0)} ms per batch, ${r.coresUsed.toFixed(2)} cores busy, first batch after ${r.firstBatchMs.toFixed(0)} ms, load ${r.load.toFixed(2)}`,
      );
    }
  }
  if (!results.length)
    throw new Error(
      `loader bench: no batch size of ${batches.join(', ')} fits the ${ds.length} images of ${folder}; set LOADER_BATCHES or use more images`,
    );

  const table = [
    '| batch | workers | images/s | ms per batch | cores busy (CPU time / wall) | images/s per busy core | first batch ms | batches timed (after warm-up) | load average (1 min) |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...results.map(
      (r) =>
        `| ${r.batch} | ${r.workers} | ${r.imagesPerSec.toFixed(1)} | ${r.msPerBatch.toFixed(0)} | ${r.coresUsed.toFixed(2)} | ${(r.imagesPerSec / r.coresUsed).toFixed(1)} | ${r.firstBatchMs.toFixed(0)} | ${r.timedBatches} (${r.warmBatches}) | ${r.load.toFixed(2)} |`,
    ),
  ].join('\n');
  const stageTable = [
    '| stage | ms per image | CPU ms per image | share of CPU |',
    '| --- | ---: | ---: | ---: |',
    `| decode (sharp: JPEG to 8-bit RGB, ${(st.srcPixels / st.images / 1e3).toFixed(0)} kpixels on average) | ${per(st.decodeMs).toFixed(2)} | ${per(st.decodeCpuMs).toFixed(2)} | ${(100 * decodeShare).toFixed(0)}% |`,
    `| augment (MoCo-v2, two ${S}x${S} views) | ${per(st.augmentMs).toFixed(2)} | ${per(st.augmentCpuMs).toFixed(2)} | ${(100 * (1 - decodeShare)).toFixed(0)}% |`,
  ].join('\n');
  const ours = `workers ${Math.max(...workerCounts)}`;
  const written = writeReport({
    suite: 'loader',
    title: `Benchmark: the data loader alone, JPEG photos to two MoCo-v2 views at ${S} px`,
    adapter: `${ctx.adapter} (not used: the loader runs on the CPU)`,
    ours,
    measurements,
    leadSections: [
      { title: 'Images/s of BatchLoader over a FolderDataset, by worker threads', markdown: table },
      {
        title: `Where the time goes: one image at a time in the main thread (${st.images} images)`,
        markdown: stageTable,
      },
    ],
    tableTitle: `Milliseconds per batch (ratios: speed-up of ${ours} over the others)`,
    notes: [
      `Data: ${what}; ${ds.length} images. Files are read from the page cache after the first pass (no disk I/O measured).`,
      'The consumer takes each batch as soon as it is ready, so images/s is what the loader alone can make: training keeps up with a GPU step rate of up to this many images/s. ' +
        'Each case is timed after a warm-up that fills the prefetch queue and keeps every worker busy, over whole rounds of batches (one per worker).',
      "With 0 workers the main thread augments while sharp decodes on libuv's thread pool (4 threads), so it can still use more than one core. `densecl pretrain` uses --workers 2 by default.",
      'Cores busy is the process CPU time of all threads (main, workers, libvips/libuv) over wall time. On a machine shared with other jobs, images/s per busy core is the steadier figure.',
    ],
    extra: { folder, images: ds.length, cores, size: S, throughput: results, stages: st },
  });
  console.log(`${table}\n\n${stageTable}\n\n${written.markdown}`);
}
