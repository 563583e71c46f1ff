// `densecl export RUNDIR`: the query encoder's backbone from a run's checkpoint, in torchvision
// or detectron2 names, written beside the checkpoint. Needs no GPU.
import { join } from 'node:path';
import { loadSafetensors, saveSafetensors } from './io.js';
import { torchvisionState, detectron2State, type ExportFormat } from './export.js';
import type { SafeTensor } from '../engine/safetensors.js';
import type { RunCounters } from './checkpoint.js';

const PREFIX = 'encoder_q.backbone.';

export function exportRun(runDir: string, format: ExportFormat): string {
  if (format !== 'torchvision' && format !== 'detectron2') throw new Error(`export: --format must be torchvision or detectron2, got '${format}'`);
  const ckpt = join(runDir, 'checkpoint.safetensors');
  const file = loadSafetensors(ckpt);
  const params = new Map<string, Float32Array>();
  const buffers = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>();
  for (const [name, t] of file.tensors) {
    if (!name.startsWith(PREFIX)) continue;
    const short = name.slice(PREFIX.length);
    (short.includes('running_') ? buffers : params).set(short, t.data as Float32Array);
    shapes.set(short, t.shape);
  }
  if (params.size === 0) throw new Error(`export: ${ckpt} holds no '${PREFIX}*' tensors; is it a densecl checkpoint?`);
  const bnNames = [...buffers.keys()].filter((k) => k.endsWith('.running_mean')).map((k) => k.slice(0, -'.running_mean'.length));
  const counters = JSON.parse(file.metadata.counters ?? '{}') as Partial<RunCounters>;
  const tv = torchvisionState(params, buffers, shapes, bnNames, counters.bnSteps ?? 0);
  const out: Map<string, SafeTensor> = format === 'torchvision' ? tv : detectron2State(tv);
  const path = join(runDir, `backbone_${format}.safetensors`);
  saveSafetensors(path, out, { format, source: ckpt, arch: String((counters.config as { arch?: string } | undefined)?.arch ?? '') });
  return path;
}
