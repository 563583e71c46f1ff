// Profiling real training steps: `densecl pretrain --profile N` (N steps of a real run, after two
// warm-up steps so shader compilation is not counted) and `densecl profile` (synthetic data, a
// chosen model, batch and image size). Writes the per-kernel table, with the shares of this
// device's measured peaks, and a Chrome trace. The first profiled step times every dispatch alone;
// later ones time short dispatches in groups (see ProfileOptions.groupMs), marked as estimated.
import { writeFileSync } from 'node:fs';
import { makeFolder } from '../train/io.js';
import { join, resolve } from 'node:path';
import {
  profile, aggregate, formatTable, markdownTable, chromeTrace, measurePeak, describePeak, init, tensor, scope, noGrad, Rng,
  type Runtime, type KernelRecord, type ProfileResult, type Peak,
} from '../engine/index.js';
import { DenseCL, type Method } from '../models/densecl.js';
import type { Arch } from '../models/resnet.js';
import { Sgd } from '../engine/ops/sgd.js';

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
    this.records.push(...r.records.map((x) => ({ ...x, startMs: x.startMs + offset, endMs: x.endMs + offset, cpuMs: x.cpuMs + this.wallMs })));
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
    const head = `${title}\nadapter: ${this.rt.adapterDescription}\ntiming: ${this.method === 'timestamps' ? `GPU timestamp queries; dispatches not timed before are timed alone, known ones under ${this.groupMs.toFixed(2)} ms in groups` : 'coarse (no timestamp-query): one submission per kernel'}\n` +
      `${this.steps} step(s), ${this.records.length / Math.max(1, this.steps)} dispatches and ${gpuMs.toFixed(1)} ms of kernel time per step` +
      ` (${(100 * estimated / Math.max(gpuMs, 1e-9)).toFixed(1)}% of it estimated: short dispatches timed in groups)` +
      (this.peak ? `\n${describePeak(this.peak)}` : '');
    const byKernel = aggregate(this.records, 'kernel', this.peak ?? undefined);
    const byOp = aggregate(this.records, 'op', this.peak ?? undefined);
    const text = `${head}\n\n${formatTable(byOp, 'per op')}\n\n${formatTable(byKernel, 'per kernel')}\n`;
    writeFileSync(join(dir, 'profile.txt'), text);
    writeFileSync(join(dir, 'profile.md'), `# ${title}\n\n${head.split('\n').slice(1).join('  \n')}\n\n## Per op\n\n${markdownTable(byOp)}\n\n## Per kernel\n\n${markdownTable(byKernel)}\n`);
    writeFileSync(join(dir, 'trace.json'), JSON.stringify(chromeTrace({ records: this.records, method: this.method })));
    return text;
  }
}

export const PROFILE_DEFAULTS = {
  method: 'densecl',
  arch: 'resnet18',
  width: 1,
  smallStem: false,
  batchSize: 8,
  imgSize: 224,
  queueSize: 4096,
  bnGroups: 8,
  steps: 2,
  out: 'runs/profile',
};

/** `densecl profile`: profiles training steps of a chosen model on synthetic images. */
export async function profileModel(o: typeof PROFILE_DEFAULTS): Promise<string> {
  const rt = await init();
  const model = new DenseCL(rt, {
    arch: o.arch as Arch, width: o.width, smallStem: o.smallStem, method: o.method as Method, dim: 128,
    queueSize: o.queueSize, tau: 0.2, momentum: 0.999, lambda: 0.5, startIters: 0, bnGroups: o.bnGroups, seed: 0,
  });
  const sgd = new Sgd(model.query.params, model.query.grads, { momentum: 0.9, weightDecay: 1e-4 });
  const rng = new Rng(0);
  const [B, S] = [o.batchSize, o.imgSize];
  const images = Float32Array.from({ length: B * 3 * S * S }, () => rng.normal());
  const step = (i: number) =>
    scope(() => {
      model.query.zeroGrad();
      const out = model.trainStep(tensor(images, [B, 3, S, S]), tensor(images, [B, 3, S, S]), i, rng);
      noGrad(() => sgd.step(0.01));
      return out.loss;
    });
  console.log('warming up (the first step compiles the shaders)...');
  for (let i = 0; i < 2; i++) await step(i).item();
  const profiler = new StepProfiler(rt);
  for (let i = 0; i < o.steps; i++) await profiler.run(() => step(2 + i));
  const dir = resolve(o.out);
  const text = profiler.write(dir, `${o.method} ${o.arch} (width ${o.width}) training step, batch ${B}, ${S}x${S}`);
  model.destroy();
  sgd.momentum.destroy();
  rt.destroy();
  return `${text}\nwrote ${join(dir, 'profile.md')} and ${join(dir, 'trace.json')} (open in https://ui.perfetto.dev)`;
}
