// A pre-trained backbone file (torchvision names, safetensors) loaded into our ResNet, for
// evaluation and for checking exports against torchvision. Every parameter and BN statistic the
// architecture needs must be present with the right shape; anything else (fc.*) is ignored.
import { loadSafetensors } from './io.js';
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
  const state = new ModelState(rt, net.paramSpecs(), net.bufferSpecs(), 0, 'backbone');
  const needed = [...net.paramSpecs(), ...net.bufferSpecs()];
  const describe = `${cfg.arch} (width ${cfg.width}${cfg.smallStem ? ', small stem' : ''})`;
  try {
    for (const spec of needed) {
      const t = file.tensors.get(spec.name);
      if (!t) throw new Error(`backbone ${path} does not match ${describe}: '${spec.name}' is missing (was it exported from another --arch or --width?)`);
      if (t.shape.length !== spec.shape.length || t.shape.some((d, i) => d !== spec.shape[i])) {
        throw new Error(`backbone ${path} does not match ${describe}: '${spec.name}' is [${t.shape.join(', ')}], the model needs [${spec.shape.join(', ')}]`);
      }
      if (t.dtype !== 'F32') throw new Error(`backbone ${path}: '${spec.name}' is ${t.dtype}, expected F32`);
    }
    for (const spec of net.paramSpecs()) state.params.write(spec.name, file.tensors.get(spec.name)!.data as Float32Array);
    for (const spec of net.bufferSpecs()) state.buffers.write(spec.name, file.tensors.get(spec.name)!.data as Float32Array);
  } catch (e) {
    state.destroy();
    throw e;
  }
  state.setRequiresGrad(false);
  const known = new Set(needed.map((s) => s.name));
  const ignored = [...file.tensors.keys()].filter((k) => !known.has(k) && !k.endsWith('num_batches_tracked'));
  return { net, state, ignored };
}
