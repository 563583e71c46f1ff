// A pre-trained backbone file (torchvision names, safetensors) loaded into our ResNet, for
// evaluation and for checking exports against torchvision. Every parameter and BN statistic the
// architecture needs must be present, F32 of the right shape and finite; anything else (fc.*) is ignored.
import { loadSafetensors } from './io.js';
import { expectTensor } from './tensor-check.js';
import { ResNet, type ResNetConfig } from '../models/resnet.js';
import { ModelState } from '../models/state.js';
import type { Runtime } from '../engine/index.js';

export interface LoadedBackbone {
  net: ResNet;
  state: ModelState;
  ignored: string[];
}

export function loadBackbone(rt: Runtime, path: string, cfg: ResNetConfig): LoadedBackbone {
  const file = loadSafetensors(path);
  const net = new ResNet(cfg);
  const needed = [...net.paramSpecs(), ...net.bufferSpecs()];
  const describe = `${cfg.arch} (width ${cfg.width}${cfg.smallStem ? ', small stem' : ''})`;
  const hint = 'was it exported from another --arch or --width?';
  // Everything is checked before the model's GPU state exists.
  const values = (spec: { name: string; shape: readonly number[] }) =>
    [spec.name, expectTensor(file, spec.name, spec.shape, `backbone ${path}`, describe, hint)] as const;
  const params = net.paramSpecs().map(values);
  const buffers = net.bufferSpecs().map(values);
  const state = new ModelState(rt, net.paramSpecs(), net.bufferSpecs(), 0, 'backbone');
  for (const [name, v] of params) state.params.write(name, v);
  for (const [name, v] of buffers) state.buffers.write(name, v);
  state.setRequiresGrad(false);
  const known = new Set(needed.map((s) => s.name));
  const ignored = [...file.tensors.keys()].filter((k) => !known.has(k) && !k.endsWith('num_batches_tracked'));
  return { net, state, ignored };
}
