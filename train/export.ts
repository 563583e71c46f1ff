// The pre-trained backbone for PyTorch users: the query encoder's ResNet alone (no heads, no fc),
// with torchvision parameter names and BN running statistics, as the official DenseCL tools
// extract it; optionally renamed for detectron2 (stem.*, res2..res5, convK.norm, shortcut).
import { safeTensor, type SafeTensor } from '../engine/safetensors.js';

export type ExportFormat = 'torchvision' | 'detectron2';

/**
 * `params` and `buffers` hold the backbone's tensors under torchvision names; `bnNames` lists
 * its BN layers, which get num_batches_tracked = `bnSteps` (int64, as torchvision stores it).
 */
export function torchvisionState(
  params: Map<string, Float32Array>,
  buffers: Map<string, Float32Array>,
  shapes: Map<string, number[]>,
  bnNames: string[],
  bnSteps: number,
): Map<string, SafeTensor> {
  const out = new Map<string, SafeTensor>();
  for (const [name, v] of [...params, ...buffers]) out.set(name, safeTensor(v, shapes.get(name) ?? [v.length]));
  for (const bn of bnNames) out.set(`${bn}.num_batches_tracked`, safeTensor(new BigInt64Array([BigInt(bnSteps)]), []));
  return sortByName(out);
}

/** detectron2's ResNet names (what its converter for torchvision/MoCo weights produces). */
export function detectron2Name(name: string): string | null {
  if (name.endsWith('num_batches_tracked')) return null;
  let k = name;
  if (!k.startsWith('layer')) k = 'stem.' + k;
  for (let i = 1; i <= 4; i++) k = k.replace(`layer${i}`, `res${i + 1}`);
  for (let i = 1; i <= 3; i++) k = k.replace(`bn${i}`, `conv${i}.norm`);
  k = k.replace('downsample.0', 'shortcut').replace('downsample.1', 'shortcut.norm');
  return k;
}

export function detectron2State(torchvision: Map<string, SafeTensor>): Map<string, SafeTensor> {
  const out = new Map<string, SafeTensor>();
  for (const [name, t] of torchvision) {
    const k = detectron2Name(name);
    if (k) out.set(k, t);
  }
  return sortByName(out);
}

function sortByName(m: Map<string, SafeTensor>): Map<string, SafeTensor> {
  return new Map([...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
