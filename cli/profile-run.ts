// Profiling real training steps: `densecl pretrain --profile N` (N steps of a real run, after two
// warm-up steps so shader compilation is not counted) and `densecl profile` (synthetic data, a
// chosen model, batch and image size). Writes the per-kernel table, with the shares of this
// device's measured peaks, and a Chrome trace. The first profiled step times every dispatch alone;
// later ones time short dispatches in groups (see ProfileOptions.groupMs), marked as estimated.
import { writeFileSync } from 'node:fs';
import { makeFolder } from '../train/io.js';
import { join, resolve } from 'node:path';
import {
  profile,
  aggregate,
  formatTable,
  markdownTable,
  chromeTrace,
  measurePeak,
  describePeak,
  init,
  Rng,
  type Runtime,
  type KernelRecord,
  type ProfileResult,
  type Peak,
} from '../engine/index.js';
import { Trainer, TRAINER_DEFAULTS, type TrainerOptions } from '../train/trainer.js';
import { checkOptionRanges, optionsOverPreset, trainerOptions } from '../train/presets.js';
import { checkStepSettings } from '../train/step-checks.js';
import { flagName, givenOptions, typedOptions, type Flags } from '../train/args.js';

/** Collects the records of several profiled steps and writes the reports. */
export class StepProfiler {
  private records: KernelRecord[] = [];
  private wallMs = 0;
  private method: ProfileResult['method'] = 'timestamps';
  private peak: Peak | null = null;
  private groupMs = 0;
  steps = 0;

  constructor(private readonly rt: Runtime) {}

  async run(step: () => unknown): Promise<void> {
    this.peak ??= await measurePeak(this.rt);
    const r = await profile(this.rt, step);
    const offset = this.records.length ? this.records[this.records.length - 1].endMs + 1 : 0;
    this.records.push(
      ...r.records.map((x) => ({
        ...x,
        startMs: x.startMs + offset,
        endMs: x.endMs + offset,
        cpuMs: x.cpuMs + this.wallMs,
      })),
    );
    this.wallMs += r.wallMs;
    this.method = r.method;
    this.groupMs = r.groupMs;
    this.steps++;
  }

  /** Writes profile.txt, profile.md and trace.json into `dir`; returns the console table. */
  write(dir: string, title: string): string {
    makeFolder(dir);
    const gpuMs = this.records.reduce((s, r) => s + r.gpuMs, 0) / Math.max(1, this.steps);
    const estimated = this.records.reduce((s, r) => s + (r.estimated ? r.gpuMs : 0), 0) / Math.max(1, this.steps);
    const head =
      `${title}\nadapter: ${this.rt.adapterDescription}\ntiming: ${this.method === 'timestamps' ? `GPU timestamp queries; dispatches not timed before are timed alone, known ones under ${this.groupMs.toFixed(2)} ms in groups` : 'coarse (no timestamp-query): one submission per kernel'}\n` +
      `${this.steps} step(s), ${this.records.length / Math.max(1, this.steps)} dispatches and ${gpuMs.toFixed(1)} ms of kernel time per step` +
      ` (${((100 * estimated) / Math.max(gpuMs, 1e-9)).toFixed(1)}% of it estimated: short dispatches timed in groups)` +
      (this.peak ? `\n${describePeak(this.peak)}` : '');
    const byKernel = aggregate(this.records, 'kernel', this.peak ?? undefined);
    const byOp = aggregate(this.records, 'op', this.peak ?? undefined);
    const text = `${head}\n\n${formatTable(byOp, 'per op')}\n\n${formatTable(byKernel, 'per kernel')}\n`;
    writeFileSync(join(dir, 'profile.txt'), text);
    writeFileSync(
      join(dir, 'profile.md'),
      `# ${title}\n\n${head.split('\n').slice(1).join('  \n')}\n\n## Per op\n\n${markdownTable(byOp)}\n\n## Per kernel\n\n${markdownTable(byKernel)}\n`,
    );
    writeFileSync(join(dir, 'trace.json'), JSON.stringify(chromeTrace({ records: this.records, method: this.method })));
    return text;
  }
}

/** `densecl profile`'s own settings; the step's are a preset's ('profile' unless --preset names another) changed by pretrain's flags. */
const PROFILE_RUN = { steps: 2, out: 'runs/profile' };

export interface ProfileOptions {
  preset: string;
  trainer: TrainerOptions;
  steps: number;
  out: string;
}

/** The options of `densecl profile`: the training step's settings (as `densecl pretrain` takes them), the steps to time and the folder. */
export function profileOptions(flags: Flags): ProfileOptions {
  const given = givenOptions(flags, 'profile');
  const own: Record<string, unknown> = {};
  const step: Record<string, unknown> = {};
  const stepKeys = ['preset', ...Object.keys(TRAINER_DEFAULTS).filter((k) => k !== 'totalSteps')];
  for (const [k, v] of Object.entries(given)) {
    if (k in PROFILE_RUN) own[k] = v;
    else if (stepKeys.includes(k)) step[k] = v;
    else
      throw new Error(
        `profile: unknown option ${flagName(k)}; known: ${[...stepKeys, ...Object.keys(PROFILE_RUN)].map(flagName).join(' ')}`,
      );
  }
  const o = optionsOverPreset(step, 'profile', 'profile');
  checkOptionRanges(o);
  checkStepSettings(o, 1, flagName);
  const run = typedOptions(PROFILE_RUN, own, 'profile');
  if (!Number.isSafeInteger(run.steps) || run.steps < 1)
    throw new Error(`--steps must be a whole number >= 1, got ${run.steps}`);
  return { preset: o.preset, trainer: trainerOptions(o), ...run };
}

/** `densecl profile`: profiles training steps of the public Trainer on synthetic images. */
export async function profileModel(p: ProfileOptions): Promise<string> {
  const rt = await init();
  const o = p.trainer;
  const trainer = new Trainer(rt, o);
  try {
    const rng = new Rng(o.seed);
    const [B, S] = [o.batchSize, o.imgSize];
    const images = Float32Array.from({ length: B * 3 * S * S }, () => rng.normal());
    console.log('warming up (the first step compiles the shaders)...');
    for (let i = 0; i < 2; i++) await trainer.trainStep(images, images);
    const profiler = new StepProfiler(rt);
    for (let i = 0; i < p.steps; i++) {
      let stats: Promise<unknown> | null = null;
      await profiler.run(() => (stats = trainer.trainStep(images, images)));
      await stats;
    }
    const dir = resolve(p.out);
    const text = profiler.write(
      dir,
      `${o.method} ${o.arch} (width ${o.width}) training step, batch ${B}, ${S}x${S} (preset ${p.preset})`,
    );
    return `${text}\nwrote ${join(dir, 'profile.md')} and ${join(dir, 'trace.json')} (open in https://ui.perfetto.dev)`;
  } finally {
    trainer.destroy();
    rt.destroy();
  }
}
