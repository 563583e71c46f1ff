// `densecl features`: the last-stage features of a backbone file on given inputs (eval-mode BN),
// written as safetensors; scripts/verify_export.py compares them with torchvision's model.
import { init, tensor, noGrad } from '../../engine/index.js';
import { loadBackbone } from '../backbone.js';
import { loadSafetensors, saveSafetensors } from '../io.js';
import { safeTensor } from '../../engine/safetensors.js';
import type { Arch } from '../../models/resnet.js';

export const FEATURES_DEFAULTS = { backbone: '', arch: 'resnet18', width: 1, smallStem: false, input: '', out: '' };

export async function features(o: typeof FEATURES_DEFAULTS): Promise<string> {
  for (const k of ['backbone', 'input', 'out'] as const) if (!o[k]) throw new Error(`features: --${k} is required`);
  const rt = await init({ quiet: true });
  const { net, state } = loadBackbone(rt, o.backbone, { arch: o.arch as Arch, width: o.width, smallStem: o.smallStem });
  const x = loadSafetensors(o.input).tensors.get('input');
  if (!x) throw new Error(`features: ${o.input} has no tensor named 'input'`);
  const y = noGrad(() => net.forward(state, tensor(x.data as Float32Array, x.shape), { training: false }));
  const values = (await y.data()) as Float32Array;
  saveSafetensors(o.out, { features: safeTensor(values, [...y.shape]) });
  state.destroy();
  rt.destroy();
  return o.out;
}
