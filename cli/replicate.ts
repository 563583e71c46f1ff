// `densecl replicate` (npm run replicate): the paper's claim at small scale. For each seed,
// three backbones of the same architecture: random init (the model's own init, exported the
// same way), MoCo-v2 and DenseCL pre-trained with the same budget on the built-in scenes; each
// evaluated frozen by the linear probe (top-1) and the segmentation probe (mIoU) on held-out
// scenes. Writes results.md (table of means and spreads, per-seed figures), results.json and
// losses.png (pre-training loss curves), updated after every run. Finished runs are kept: re-running the command with
// the same --out skips them, so an interrupted comparison continues where it stopped.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { init, type Runtime } from '../engine/index.js';
import { ResNet, type Arch, type ResNetConfig } from '../models/resnet.js';
import { ModelState } from '../models/state.js';
import { pretrain } from './pretrain.js';
import { PRETRAIN_PRESETS } from '../train/presets.js';
import { torchvisionState } from '../train/export.js';
import { saveSafetensors, makeFolder } from '../train/io.js';
import { openSegmentationData } from '../train/eval/datasets.js';
import { linearProbe, LINEAR_PROBE_DEFAULTS } from '../train/eval/linear-probe.js';
import { segProbe, SEG_PROBE_DEFAULTS } from '../train/eval/seg-probe.js';
import { writeLinePlot, writeSegmentationPicture, type Series } from '../train/eval/picture.js';
import { backboneFeatures } from './eval.js';

/** Sized for this 2-core CPU (lavapipe) to finish within an hour; --preset gpu is the longer setting. */
export const REPLICATE_DEFAULTS = {
  preset: 'cpu',
  seeds: 2,
  arch: 'resnet18',
  width: 0.25,
  smallStem: true,
  imgSize: 32,
  epochs: 2,
  batchSize: 32,
  queueSize: 256,
  builtinImages: 1024,
  /** Base learning rate per 256 images (the paper's COCO setting: 0.3). */
  lr: 0.3,
  bnGroups: 8,
  workers: 2,
  evalTrainImages: 1024,
  evalValImages: 512,
  dataSeed: 1000,
  linearEpochs: LINEAR_PROBE_DEFAULTS.epochs,
  segEpochs: SEG_PROBE_DEFAULTS.epochs,
  out: 'runs/replicate',
};

/** What --preset gpu changes: a budget for a real GPU (hours on this CPU). */
const GPU_PRESET: Partial<ReplicateOptions> = {
  seeds: 3,
  width: 0.5,
  imgSize: 64,
  epochs: 50,
  batchSize: 64,
  queueSize: 4096,
  builtinImages: 8192,
  workers: 8,
  evalTrainImages: 4096,
  evalValImages: 1024,
};

export type ReplicateOptions = typeof REPLICATE_DEFAULTS;

const METHODS = ['random', 'mocov2', 'densecl'] as const;
type Method = (typeof METHODS)[number];
const COLOURS: Record<Method, string> = { random: '#888888', mocov2: '#1f77b4', densecl: '#d62728' };

interface RunResult {
  method: Method;
  seed: number;
  /** The options the run was made with (all but preset, seeds, workers and out). */
  settings: Record<string, string | number | boolean>;
  top1: number;
  mIoU: number;
  pixelAccuracy: number;
  iou: (number | null)[];
  pretrainSeconds: number;
  evalSeconds: number;
  losses: number[];
}

/** The flags the user gave win over the preset. */
export function replicateOptions(o: ReplicateOptions, given: Set<string>): ReplicateOptions {
  if (o.preset !== 'cpu' && o.preset !== 'gpu')
    throw new Error(`replicate: --preset must be cpu or gpu, got '${o.preset}'`);
  if (o.preset === 'cpu') return o;
  const merged: Record<string, unknown> = { ...o };
  for (const [k, v] of Object.entries(GPU_PRESET)) if (!given.has(k)) merged[k] = v;
  return merged as ReplicateOptions;
}

function meanStd(v: number[]): { mean: number; std: number } {
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const std = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) : 0;
  return { mean, std };
}

/**
 * The backbone as the model initialises it (the same draws as the query encoder of DenseCL or
 * MoCo-v2 with this seed), written as a torchvision-named backbone file at `path`.
 */
export async function exportRandomInit(rt: Runtime, cfg: ResNetConfig, seed: number, path: string): Promise<string> {
  const net = new ResNet(cfg);
  const state = new ModelState(rt, net.paramSpecs(), net.bufferSpecs(), seed, 'random_init');
  try {
    const params = await state.params.readAll();
    const buffers = new Map([...(await state.buffers.readAll())].filter(([k]) => k !== '_none'));
    const shapes = new Map([...net.paramSpecs(), ...net.bufferSpecs()].map((s) => [s.name, s.shape]));
    makeFolder(dirname(path));
    saveSafetensors(path, torchvisionState(params, buffers, shapes, net.bnNames(), 0), {
      format: 'torchvision',
      source: `random init, seed ${seed}`,
    });
    return path;
  } finally {
    state.destroy();
  }
}

function fmt(v: { mean: number; std: number }): string {
  return `${(100 * v.mean).toFixed(2)} ± ${(100 * v.std).toFixed(2)}`;
}

export async function replicate(o: ReplicateOptions, runtime?: Runtime): Promise<{ table: string; out: string }> {
  if (!Number.isInteger(o.seeds) || o.seeds < 1)
    throw new Error(`replicate: --seeds must be a positive integer, got ${o.seeds}`);
  const out = resolve(o.out);
  makeFolder(out);
  const rt = runtime ?? (await init({ quiet: true }));
  const started = performance.now();
  const results: RunResult[] = [];
  const say = (s: string) =>
    console.error(`[replicate ${((performance.now() - started) / 60000).toFixed(1)} min] ${s}`);
  const common = { arch: o.arch, width: o.width, smallStem: o.smallStem, imgSize: o.imgSize };
  // What a kept run must share with this invocation to be reused.
  const { preset: _p, seeds: _s, workers: _w, out: _o, ...settings } = o as Record<string, string | number | boolean>;
  try {
    const data = await openSegmentationData({
      data: 'builtin',
      imgSize: o.imgSize,
      trainImages: o.evalTrainImages,
      valImages: o.evalValImages,
      dataSeed: o.dataSeed,
      fashionMnistDir: '',
      numClasses: 0,
    });
    for (let seed = 0; seed < o.seeds; seed++) {
      for (const method of METHODS) {
        const dir = join(out, `seed${seed}`, method);
        const done = join(dir, 'result.json');
        if (existsSync(done)) {
          const kept = JSON.parse(readFileSync(done, 'utf8')) as RunResult;
          const differ = Object.keys(settings).filter(
            (k) => JSON.stringify(kept.settings?.[k]) !== JSON.stringify(settings[k]),
          );
          if (differ.length) {
            throw new Error(
              `replicate: ${done} was made with other settings (${differ.map((k) => `${k} ${kept.settings?.[k]} there, ${settings[k]} now`).join(', ')}); ` +
                `use another --out, or delete ${out} to start over`,
            );
          }
          results.push(kept);
          say(`${method} seed ${seed}: kept from an earlier run`);
          continue;
        }
        const t0 = performance.now();
        let backbone: string;
        let losses: number[] = [];
        if (method === 'random') {
          backbone = await exportRandomInit(
            rt,
            { arch: o.arch as Arch, width: o.width, smallStem: o.smallStem },
            seed,
            join(dir, 'backbone_torchvision.safetensors'),
          );
        } else {
          say(`pre-training ${method} seed ${seed}: ${o.epochs} epochs of ${o.builtinImages} scenes`);
          const r = await pretrain(
            {
              ...PRETRAIN_PRESETS.tiny.options,
              ...common,
              method,
              seed,
              epochs: o.epochs,
              batchSize: o.batchSize,
              queueSize: o.queueSize,
              builtinImages: o.builtinImages,
              lr: o.lr,
              bnGroups: o.bnGroups,
              workers: o.workers,
              checkpointEvery: 50,
              out: dir,
              // A run interrupted before its result.json is started again from scratch.
              overwrite: true,
            },
            rt,
          );
          backbone = r.backbone;
          losses = readFileSync(join(dir, 'log.jsonl'), 'utf8')
            .trim()
            .split('\n')
            .map((l) => (JSON.parse(l) as { loss: number }).loss);
        }
        const t1 = performance.now();
        const feats = await backboneFeatures(
          rt,
          {
            ...common,
            backbone,
            data: 'builtin',
            trainImages: 0,
            valImages: 0,
            dataSeed: o.dataSeed,
            fashionMnistDir: '',
            featureBatch: 64,
            seed,
            quiet: true,
          },
          data,
          true,
        );
        const lin = await linearProbe(rt, feats.train, feats.val, data.classNames.length - 1, {
          ...LINEAR_PROBE_DEFAULTS,
          epochs: o.linearEpochs,
          seed,
        });
        const seg = await segProbe(rt, feats.train, feats.val, data.classNames.length, {
          ...SEG_PROBE_DEFAULTS,
          epochs: o.segEpochs,
          seed,
        });
        const shown = Math.min(SEG_PROBE_DEFAULTS.keepPredictions, feats.val.count);
        const images = [];
        for (let i = 0; i < shown; i++) images.push((await data.val.get(i)).image);
        await writeSegmentationPicture(
          join(dir, 'segmentation.png'),
          images,
          feats.val.labelMaps!.subarray(0, shown * o.imgSize * o.imgSize),
          seg.predictions,
          o.imgSize,
        );
        const result: RunResult = {
          method,
          seed,
          settings,
          top1: lin.top1,
          mIoU: seg.mIoU,
          pixelAccuracy: seg.pixelAccuracy,
          iou: seg.iou,
          pretrainSeconds: (t1 - t0) / 1000,
          evalSeconds: (performance.now() - t1) / 1000,
          losses,
        };
        writeFileSync(done, JSON.stringify(result, null, 2));
        results.push(result);
        // The table so far, so that an interrupted comparison still leaves its figures.
        await report(o, out, results, (performance.now() - started) / 1000);
        say(
          `${method} seed ${seed}: linear top-1 ${(100 * lin.top1).toFixed(2)}%, seg mIoU ${(100 * seg.mIoU).toFixed(2)}% (pre-training ${result.pretrainSeconds.toFixed(0)} s, evaluation ${result.evalSeconds.toFixed(0)} s)`,
        );
      }
    }
  } finally {
    if (!runtime) rt.destroy();
  }
  return report(o, out, results, (performance.now() - started) / 1000);
}

async function report(
  o: ReplicateOptions,
  out: string,
  results: RunResult[],
  seconds: number,
): Promise<{ table: string; out: string }> {
  const by = (m: Method) => results.filter((r) => r.method === m);
  const rows = METHODS.map((m) => {
    const rs = by(m);
    return `| ${m === 'random' ? 'random init' : m === 'mocov2' ? 'MoCo-v2' : 'DenseCL'} | ${fmt(meanStd(rs.map((r) => r.mIoU)))} | ${fmt(meanStd(rs.map((r) => r.top1)))} | ${rs.length} |`;
  });
  const table = `| backbone | seg mIoU % (mean ± sd) | linear top-1 % (mean ± sd) | seeds |\n| --- | --- | --- | --- |\n${rows.join('\n')}`;
  const perSeed = results
    .map(
      (r) =>
        `| ${r.method} | ${r.seed} | ${(100 * r.mIoU).toFixed(2)} | ${(100 * r.pixelAccuracy).toFixed(2)} | ${(100 * r.top1).toFixed(2)} | ${r.pretrainSeconds.toFixed(0)} | ${r.evalSeconds.toFixed(0)} |`,
    )
    .join('\n');
  const d = meanStd(by('densecl').map((r) => r.mIoU));
  const m = meanStd(by('mocov2').map((r) => r.mIoU));
  const rnd = meanStd(by('random').map((r) => r.mIoU));
  const paired = by('densecl').map((r) => r.mIoU - (by('mocov2').find((x) => x.seed === r.seed)?.mIoU ?? NaN));
  const claim = [
    `- DenseCL above MoCo-v2 on seg mIoU: ${d.mean > m.mean ? 'yes' : 'NO'} (${(100 * (d.mean - m.mean)).toFixed(2)} points; per seed ${paired.map((v) => (100 * v).toFixed(2)).join(', ')})`,
    `- both above random init on seg mIoU: ${d.mean > rnd.mean && m.mean > rnd.mean ? 'yes' : 'NO'} (random ${(100 * rnd.mean).toFixed(2)})`,
    `- linear top-1 of DenseCL and MoCo-v2: ${(100 * meanStd(by('densecl').map((r) => r.top1)).mean).toFixed(2)} vs ${(100 * meanStd(by('mocov2').map((r) => r.top1)).mean).toFixed(2)}`,
  ].join('\n');
  const seriesList: Series[] = results
    .filter((r) => r.losses.length)
    .map((r) => ({
      name: `${r.method} seed ${r.seed}`,
      colour: COLOURS[r.method],
      dash: r.seed > 0 ? '5,3' : undefined,
      points: r.losses.map((l, i) => [i + 1, l] as [number, number]),
    }));
  const plot = seriesList.length
    ? await writeLinePlot(join(out, 'losses'), 'Pre-training loss on the built-in scenes', 'step', 'loss', seriesList)
    : null;
  const settings = Object.entries(o)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  const md =
    `# DenseCL vs MoCo-v2 vs random init (built-in scenes)\n\n` +
    `Settings: ${settings}.\nPre-training: ${o.epochs} epochs of ${o.builtinImages} scenes (scene seed = run seed), batch ${o.batchSize}, queue ${o.queueSize}, ` +
    `lr ${o.lr} per 256 images, cosine. Evaluation on ${o.evalTrainImages} train / ${o.evalValImages} held-out scenes of seed ${o.dataSeed} at ${o.imgSize}x${o.imgSize}, ` +
    `frozen backbone (eval-mode BN), standardised features; linear probe ${o.linearEpochs} epochs, segmentation probe (1x1 conv + bilinear upsampling) ${o.segEpochs} epochs.\n` +
    `Total time ${(seconds / 60).toFixed(1)} min (runs kept from earlier invocations not counted).\n\n` +
    `${table}\n\nThe claim (paper: DenseCL > MoCo-v2 > random on dense prediction, linear accuracy close):\n${claim}\n\n` +
    `Per run:\n\n| method | seed | mIoU % | pixel acc % | top-1 % | pre-train s | eval s |\n| --- | --- | --- | --- | --- | --- | --- |\n${perSeed}\n\n` +
    (plot ? `![pre-training losses](losses.png)\n` : '');
  writeFileSync(join(out, 'results.md'), md);
  writeFileSync(
    join(out, 'results.json'),
    JSON.stringify({ options: o, results: results.map(({ losses: _l, settings: _s, ...r }) => r) }, null, 2),
  );
  return { table, out };
}
