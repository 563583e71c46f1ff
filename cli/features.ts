// `densecl features`: the last-stage features of a backbone file on given inputs (eval-mode BN),
// written as safetensors; scripts/verify_export.py compares them with torchvision's model.
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { init, tensor, noGrad } from '../engine/index.js';
import { loadBackbone } from '../train/backbone.js';
import { loadSafetensors, saveSafetensors } from '../train/io.js';
import { safeTensor } from '../engine/safetensors.js';
import type { Arch } from '../models/resnet.js';

export const FEATURES_DEFAULTS = { backbone: '', arch: 'resnet18', width: 1, smallStem: false, input: '', out: '' };

/** Whether `a` and `b` name the same file (or would: the same path when `b` does not exist yet). */
function sameFile(a: string, b: string): boolean {
  if (resolve(a) === resolve(b)) return true;
  if (!existsSync(a) || !existsSync(b)) return false;
  const [x, y] = [statSync(a), statSync(b)];
  return x.dev === y.dev && x.ino === y.ino;
}

export async function features(o: typeof FEATURES_DEFAULTS): Promise<string> {
  for (const k of ['backbone', 'input', 'out'] as const) if (!o[k]) throw new Error(`features: --${k} is required`);
  for (const k of ['backbone', 'input'] as const)
    if (sameFile(o.out, o[k])) throw new Error(`features: --out ${o.out} is the --${k} file; choose another --out`);
  // The input is checked before the GPU is set up: F32 images [N, 3, H, W], finite.
  const x = loadSafetensors(o.input).tensors.get('input');
  if (!x) throw new Error(`features: ${o.input} has no tensor named 'input'`);
  if (x.dtype !== 'F32' || x.shape.length !== 4 || x.shape[1] !== 3) {
    throw new Error(
      `features: ${o.input}: 'input' is ${x.dtype}[${x.shape.join(', ')}], expected F32 images [N, 3, H, W]`,
    );
  }
  if (!(x.data as Float32Array).every(Number.isFinite))
    throw new Error(`features: ${o.input}: 'input' holds NaN or infinite values`);
  const rt = await init({ quiet: true });
  const { net, state } = loadBackbone(rt, o.backbone, { arch: o.arch as Arch, width: o.width, smallStem: o.smallStem });
  const y = noGrad(() => net.forward(state, tensor(x.data as Float32Array, x.shape), { training: false }));
  const values = (await y.data()) as Float32Array;
  saveSafetensors(o.out, { features: safeTensor(values, [...y.shape]) });
  state.destroy();
  rt.destroy();
  return o.out;
}
