// Checkpoints of a pre-training run in safetensors: both encoders (parameters and BN running
// statistics), the queues and their pointers, the optimiser's momentum, and in the metadata the
// step, RNG and sampler state and the run's configuration. Encoded in memory (browser-safe; the
// Trainer and the CLI share it); the CLI writes the bytes atomically. A restore checks every
// name and shape against the model before touching it.
import { encodeSafetensors, decodeSafetensors, safeTensor, type SafeTensor } from '../engine/safetensors.js';
import type { FlatStore } from '../engine/index.js';
import { expectTensor } from './tensor-check.js';
import type { DenseCL } from '../models/densecl.js';
import type { Sgd } from '../engine/ops/sgd.js';

export const CHECKPOINT_FORMAT = 'densecl-webgpu/1';

/** Everything outside the GPU stores that a resumed run needs. */
export interface RunCounters {
  step: number;
  epoch: number;
  /** Training forwards seen by BN layers (torchvision's num_batches_tracked). */
  bnSteps: number;
  rngState: number[];
  sampler: unknown;
  config: Record<string, unknown>;
}

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/**
 * The run counters of a checkpoint, parsed and checked (types and ranges); `what` names the
 * file in errors. A resumed run trusts nothing else in them.
 */
export function parseCounters(text: string | undefined, what: string): RunCounters {
  const fail = (why: string): never => {
    throw new Error(`${what}: its run counters (metadata "counters") ${why}; the checkpoint is corrupt or not ours`);
  };
  let c: unknown;
  try {
    c = JSON.parse(text ?? '');
  } catch {
    return fail(text === undefined ? 'are missing' : 'are not JSON');
  }
  if (c === null || typeof c !== 'object' || Array.isArray(c)) return fail('are not a JSON object');
  const r = c as Record<string, unknown>;
  for (const k of ['step', 'epoch', 'bnSteps'])
    if (!isCount(r[k])) fail(`have "${k}" ${JSON.stringify(r[k])}, expected a whole number >= 0`);
  const rng = r.rngState;
  if (
    !Array.isArray(rng) ||
    rng.length !== 4 ||
    !rng.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff) ||
    rng.every((x) => x === 0)
  ) {
    fail(`have "rngState" ${JSON.stringify(rng)}, expected 4 unsigned 32-bit words, not all zero`);
  }
  const sampler = r.sampler as Record<string, unknown> | null;
  if (
    sampler !== null &&
    (typeof sampler !== 'object' ||
      Array.isArray(sampler) ||
      !['seed', 'epoch', 'position'].every((k) => isCount(sampler[k])))
  ) {
    fail(`have "sampler" ${JSON.stringify(sampler)}, expected null or {seed, epoch, position} of whole numbers >= 0`);
  }
  if (r.config === null || typeof r.config !== 'object' || Array.isArray(r.config)) fail('have no "config" object');
  return r as unknown as RunCounters;
}

/** A queue pointer from the metadata: a whole number in [0, K) at a multiple of the batch (the queue takes whole batches). */
function parsePointer(
  text: string | undefined,
  name: string,
  queueSize: number,
  batchSize: number,
  what: string,
): number {
  const p = text === undefined ? 0 : /^(0|[1-9][0-9]*)$/.test(text) ? Number(text) : Number.NaN;
  if (!(p < queueSize) || p % batchSize !== 0) {
    throw new Error(
      `${what}: metadata "${name}" is ${JSON.stringify(text)}, expected a whole number below the queue size ${queueSize} and a multiple of the batch ${batchSize}`,
    );
  }
  return p;
}

/** Thrown instead of encoding when the state holds NaN or infinity. */
export class NonFiniteStateError extends Error {}

/** The stores saved in a checkpoint, under name prefixes. */
function stores(model: DenseCL, sgd: Sgd): [string, FlatStore][] {
  return [
    ['encoder_q.', model.query.params],
    ['encoder_q.', model.query.buffers],
    ['encoder_k.', model.key.params],
    ['encoder_k.', model.key.buffers],
    ['optimizer.momentum.', sgd.momentum],
    ['', model.queues],
  ];
}

export async function encodeCheckpoint(model: DenseCL, sgd: Sgd, counters: RunCounters): Promise<Uint8Array> {
  const tensors = new Map<string, SafeTensor>();
  for (const [prefix, store] of stores(model, sgd)) {
    const values = await store.readAll();
    for (const e of store.entries) {
      if (e.name.startsWith('_')) continue;
      const v = values.get(e.name)!;
      // NaN weights need not show in the loss (ReLU and max-pool squash NaN), so look here.
      if (!v.every(Number.isFinite)) throw new NonFiniteStateError(`'${prefix + e.name}' holds NaN or infinite values`);
      tensors.set(prefix + e.name, safeTensor(v, [...e.shape]));
    }
  }
  return encodeSafetensors(tensors, {
    format: CHECKPOINT_FORMAT,
    counters: JSON.stringify(counters),
    queue_ptr: String(model.ptr),
    queue2_ptr: String(model.ptr2),
    queue_layout: 'rows: [K, dim], one key per row',
  });
}

/**
 * Restores a checkpoint into the model and optimiser; throws, naming `what` and the first
 * problem (a missing, extra, misshapen or non-finite tensor, bad counters or queue pointers),
 * before writing anything. `batchSize` is the run's whole batch (the queue pointers advance by it).
 */
export function restoreCheckpoint(
  bytes: Uint8Array,
  model: DenseCL,
  sgd: Sgd,
  what: string,
  batchSize: number,
): RunCounters {
  const file = decodeSafetensors(bytes, what);
  const fail = (why: string): never => {
    throw new Error(`${what} does not match this model: ${why}`);
  };
  if (file.metadata.format !== CHECKPOINT_FORMAT)
    fail(`format '${file.metadata.format ?? 'none'}', expected '${CHECKPOINT_FORMAT}'`);
  const plan: [FlatStore, string, Float32Array][] = [];
  const expected = new Set<string>();
  for (const [prefix, store] of stores(model, sgd)) {
    for (const e of store.entries) {
      if (e.name.startsWith('_')) continue;
      expected.add(prefix + e.name);
      const values = expectTensor(
        file,
        prefix + e.name,
        e.shape,
        what,
        'this model',
        'saved with another arch, width, dim, queue size or method?',
      );
      plan.push([store, e.name, values]);
    }
  }
  // A checkpoint of a larger model (DenseCL's dense head and second queue, loaded as MoCo-v2) must not lose them silently.
  const extra = [...file.tensors.keys()].filter((k) => !expected.has(k));
  if (extra.length) {
    fail(
      `it holds ${extra.length} tensor(s) this model does not have (${extra
        .slice(0, 3)
        .map((k) => `'${k}'`)
        .join(', ')}${extra.length > 3 ? ', ...' : ''}); saved with another method, arch, width or dim?`,
    );
  }
  const counters = parseCounters(file.metadata.counters, what);
  const K = model.cfg.queueSize;
  const ptr = parsePointer(file.metadata.queue_ptr, 'queue_ptr', K, batchSize, what);
  const ptr2 = parsePointer(file.metadata.queue2_ptr, 'queue2_ptr', K, batchSize, what);
  for (const [store, name, data] of plan) store.write(name, data);
  model.ptr = ptr;
  model.ptr2 = ptr2;
  return counters;
}
