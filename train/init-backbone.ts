// `densecl pretrain --init-backbone FILE.safetensors`: a new run's query and key backbones start
// from a torchvision-named ResNet state dict (what `densecl export --format torchvision` writes,
// or torchvision's resnet*.state_dict() saved with safetensors). Checked whole before the run
// folder is touched: every tensor the backbone needs (F32, its shape, finite), nothing unknown;
// fc.* and num_batches_tracked are ignored.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadSafetensors } from './io.js';
import { ResNet, type Arch } from '../models/resnet.js';
import type { PretrainOptions } from './presets.js';
import type { FlatStore } from '../engine/index.js';

const PREFIX = 'backbone.';

export interface InitBackbone {
  path: string;
  sha256: string;
  bytes: number;
  /** Backbone tensors under the model's names (without the 'backbone.' prefix). */
  tensors: Map<string, Float32Array>;
  /** Names in the file that were not loaded (fc.*, num_batches_tracked). */
  ignored: string[];
}

const IGNORED = (name: string) => name.startsWith('fc.') || name.endsWith('.num_batches_tracked');

const listed = (names: string[]) =>
  `${names
    .slice(0, 3)
    .map((n) => `'${n}'`)
    .join(', ')}${names.length > 3 ? `, ... (${names.length} in all)` : ''}`;

export function readInitBackbone(path: string, o: PretrainOptions): InitBackbone {
  if (!existsSync(path))
    throw new Error(
      `--init-backbone ${path}: no such file; give a .safetensors state dict (e.g. what densecl export RUNDIR --format torchvision writes)`,
    );
  const file = loadSafetensors(path);
  const net = new ResNet({ arch: o.arch as Arch, width: o.width, smallStem: o.smallStem });
  const model = `the ${o.arch} (width ${o.width}, ${o.smallStem ? 'small' : '7x7'} stem) of this run`;
  const specs = [...net.paramSpecs(), ...net.bufferSpecs()];
  const missing: string[] = [];
  const misshapen: string[] = [];
  const nonFinite: string[] = [];
  const tensors = new Map<string, Float32Array>();
  for (const s of specs) {
    const t = file.tensors.get(s.name);
    if (!t) missing.push(s.name);
    else if (t.dtype !== 'F32' || t.shape.length !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i]))
      misshapen.push(`${s.name}: ${t.dtype}[${t.shape.join(', ')}], needs F32[${s.shape.join(', ')}]`);
    else if (!(t.data as Float32Array).every(Number.isFinite)) nonFinite.push(s.name);
    else tensors.set(s.name, t.data as Float32Array);
  }
  const known = new Set(specs.map((s) => s.name));
  const unexpected = [...file.tensors.keys()].filter((k) => !known.has(k) && !IGNORED(k));
  const problems = [
    missing.length ? `missing tensor(s) ${listed(missing)}` : '',
    unexpected.length ? `unexpected tensor(s) ${listed(unexpected)}` : '',
    misshapen.length ? `wrong shape or dtype: ${listed(misshapen)}` : '',
    nonFinite.length ? `NaN or infinite values in ${listed(nonFinite)}` : '',
  ].filter(Boolean);
  if (problems.length) {
    throw new Error(
      `--init-backbone ${path} does not fit ${model}: ${problems.join('; ')}. ` +
        `Give a torchvision-named state dict of the same --arch, --width and stem (e.g. densecl export RUNDIR --format torchvision), or change those flags to the file's.`,
    );
  }
  const bytes = readFileSync(path);
  return {
    path: resolve(path),
    sha256: createHash('sha256').update(bytes).digest('hex'),
    bytes: bytes.length,
    tensors,
    ignored: [...file.tensors.keys()].filter(IGNORED),
  };
}

/** Writes the backbone into both encoders (the key encoder starts as a copy of the query). */
export function applyInitBackbone(init: InitBackbone, encoders: { params: FlatStore; buffers: FlatStore }[]): void {
  for (const enc of encoders) {
    for (const store of [enc.params, enc.buffers]) {
      for (const e of store.entries) {
        const v = e.name.startsWith(PREFIX) ? init.tensors.get(e.name.slice(PREFIX.length)) : undefined;
        if (v) store.write(e.name, v);
      }
    }
  }
}

/** --init-backbone is for new runs: a resumed run's checkpoint holds its weights. */
export function initWithResumeError(file: string, runDir: string): Error {
  return new Error(
    `--init-backbone ${file} with --resume ${runDir}: the checkpoint already holds the run's weights; drop --init-backbone, or start a new run with another --out`,
  );
}
