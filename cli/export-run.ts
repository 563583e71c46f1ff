// `densecl export RUNDIR`: the query encoder's backbone from a run's checkpoint, in torchvision
// or detectron2 names, written beside the checkpoint. Needs no GPU. Every tensor of the backbone
// the run's settings describe is checked (present, F32 of its shape, finite) before anything is
// written.
import { join } from 'node:path';
import { loadSafetensors, saveSafetensors } from '../train/io.js';
import { torchvisionState, detectron2State, type ExportFormat } from '../train/export.js';
import type { SafeTensor } from '../engine/safetensors.js';
import { ResNet, type Arch } from '../models/resnet.js';
import { parseCounters } from '../train/checkpoint.js';
import { savedOptions } from '../train/resume.js';
import { expectTensor } from '../train/tensor-check.js';
import { CHECKPOINT } from '../train/run-folder.js';

const PREFIX = 'encoder_q.backbone.';

export function exportRun(runDir: string, format: ExportFormat): string {
  if (format !== 'torchvision' && format !== 'detectron2')
    throw new Error(`export: --format must be torchvision or detectron2, got '${format}'`);
  const ckpt = join(runDir, CHECKPOINT);
  const file = loadSafetensors(ckpt);
  const counters = parseCounters(file.metadata.counters, ckpt);
  const o = savedOptions(counters.config, ckpt);
  const net = new ResNet({ arch: o.arch as Arch, width: o.width, smallStem: o.smallStem });
  const against = `the ${o.arch} (width ${o.width}, ${o.smallStem ? 'small' : '7x7'} stem) its settings describe`;
  const read = (specs: { name: string; shape: readonly number[] }[]) =>
    new Map(specs.map((s) => [s.name, expectTensor(file, PREFIX + s.name, s.shape, ckpt, against)] as const));
  const params = read(net.paramSpecs());
  const buffers = read(net.bufferSpecs());
  const shapes = new Map([...net.paramSpecs(), ...net.bufferSpecs()].map((s) => [s.name, [...s.shape]]));
  const tv = torchvisionState(params, buffers, shapes, net.bnNames(), counters.bnSteps);
  const out: Map<string, SafeTensor> = format === 'torchvision' ? tv : detectron2State(tv);
  const path = join(runDir, `backbone_${format}.safetensors`);
  saveSafetensors(path, out, { format, source: ckpt, arch: o.arch });
  return path;
}
