// A fuzzed reader: thousands of mutated checkpoints (bytes flipped, header fields retyped,
// offsets moved, truncations, metadata changed) through the safetensors reader, the file loader
// and the Trainer's checkpoint loader. Each must either fail with an error that names the file
// or load a state that validates; never another exception (a TypeError from inside), and a
// refused file must leave the model as it was. Seeded, so a failure reproduces; FUZZ_CASES and
// FUZZ_SEED change the run.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gpu, TINY_TRAINER } from './helpers.js';
import { runtime, Rng } from '../engine/index.js';
import { decodeSafetensors } from '../engine/safetensors.js';
import { loadSafetensors } from '../train/io.js';
import { Trainer, type TrainerOptions } from '../train/trainer.js';
import { randomArray } from './helpers.js';

const t = suite('fuzzed checkpoint reader');
const CASES = Number(process.env.FUZZ_CASES ?? 3000);
const SEED = Number(process.env.FUZZ_SEED ?? 1);
const NAME = 'fuzz.safetensors';
const TINY: Partial<TrainerOptions> = {
  ...TINY_TRAINER,
  totalSteps: 100,
};

t.before(async () => {
  await gpu();
});

/** The file's header JSON and data, split (the file is known to be valid). */
function split(bytes: Uint8Array): { header: Record<string, unknown>; data: Uint8Array } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  return {
    header: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, unknown>,
    data: bytes.subarray(8 + n),
  };
}

function join8(header: unknown, data: Uint8Array, lengthDelta = 0): Uint8Array {
  const h = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(Math.max(0, h.length + lengthDelta)), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

/** Odd values of every JSON type, for retyping a field. */
const ODD: unknown[] = [
  null,
  -1,
  0,
  1,
  3.5,
  1e9,
  -1e308,
  'abc',
  '',
  '7',
  [],
  [0, 0, 0, 0],
  [1, 2],
  {},
  true,
  'NaN',
  2 ** 53 + 2,
];

/** One mutation of a valid checkpoint, chosen by `rng`; `what` describes it for a failure message. */
function mutate(good: Uint8Array, rng: Rng): { bytes: Uint8Array; what: string } {
  const pick = <T>(xs: readonly T[]): T => xs[rng.int(xs.length)];
  const { header, data } = split(good);
  const kind = rng.int(8);
  if (kind === 0) {
    const bytes = good.slice();
    const flips = 1 + rng.int(8);
    // Half the flips land in the header, where they do the most damage.
    const headerEnd = good.length - data.length;
    for (let i = 0; i < flips; i++) bytes[rng.int(rng.int(2) ? headerEnd : bytes.length)] ^= 1 << rng.int(8);
    return { bytes, what: `${flips} bits flipped` };
  }
  if (kind === 1) {
    const at = rng.int(good.length);
    return { bytes: good.slice(0, at), what: `truncated to ${at} bytes` }; // its own buffer, as a file read gives
  }
  if (kind === 2) {
    const extra = Uint8Array.from({ length: 1 + rng.int(64) }, () => rng.int(256));
    const bytes = new Uint8Array(good.length + extra.length);
    bytes.set(good);
    bytes.set(extra, good.length);
    return { bytes, what: `${extra.length} bytes appended` };
  }
  if (kind === 3) {
    const delta = pick([-9, -1, 1, 8, 1 << 20, -(1 << 20)]);
    return { bytes: join8(header, data, delta), what: `header length off by ${delta}` };
  }
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const name = pick(names);
  const entry = { ...(header[name] as Record<string, unknown>) };
  if (kind === 4) {
    const field = pick(['dtype', 'shape', 'data_offsets']);
    const shape = entry.shape as number[];
    const options: unknown[] = [
      ...ODD,
      'I32',
      'F16',
      'U8',
      'F64',
      [...shape].reverse(),
      [...shape, 1],
      shape.slice(1),
      shape.map((d) => d * 2),
    ];
    entry[field] = pick(options);
    return {
      bytes: join8({ ...header, [name]: entry }, data),
      what: `tensor '${name}' field ${field} = ${JSON.stringify(entry[field])}`,
    };
  }
  if (kind === 5) {
    const [b, e] = entry.data_offsets as number[];
    const shift = pick([-4, 4, -1, 1, 4096, -4096]);
    entry.data_offsets = pick([
      [b + shift, e + shift],
      [b, e + shift],
      [b + shift, e],
      [e, b],
    ]);
    return {
      bytes: join8({ ...header, [name]: entry }, data),
      what: `tensor '${name}' offsets moved to ${JSON.stringify(entry.data_offsets)}`,
    };
  }
  if (kind === 6) {
    const { [name]: _gone, ...rest } = header;
    return { bytes: join8(rest, data), what: `tensor '${name}' removed from the header` };
  }
  // Metadata: a run counter, a queue pointer or the format retyped.
  const meta = { ...(header.__metadata__ as Record<string, string>) };
  const counters = JSON.parse(meta.counters) as Record<string, unknown>;
  const field = pick([
    'step',
    'epoch',
    'bnSteps',
    'rngState',
    'sampler',
    'config',
    'queue_ptr',
    'queue2_ptr',
    'format',
    'counters',
  ]);
  const value = pick(ODD);
  if (field === 'queue_ptr' || field === 'queue2_ptr' || field === 'format') meta[field] = String(value);
  else if (field === 'counters') meta.counters = String(value);
  else meta.counters = JSON.stringify({ ...counters, [field]: value });
  return {
    bytes: join8({ ...header, __metadata__: meta }, data),
    what: `metadata ${field} = ${JSON.stringify(value)}`,
  };
}

/** Either returns normally or throws an Error whose message names the file; anything else fails the test. */
function namedOrLoaded(run: () => unknown, what: string, file: string): 'loaded' | 'refused' {
  try {
    run();
    return 'loaded';
  } catch (e) {
    assert.ok(
      e instanceof Error && e.message.includes(file),
      `${what}: ${e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e)} (does not name ${file})`,
    );
    return 'refused';
  }
}

t(
  `${CASES} mutated checkpoints: each is refused by name or loads a valid state; a refused one changes nothing`,
  async () => {
    const rt = runtime();
    const source = new Trainer(rt, TINY);
    await source.trainStep(randomArray(4 * 3 * 16 * 16, 1), randomArray(4 * 3 * 16 * 16, 2));
    const good = await source.saveState();
    source.destroy();
    const target = new Trainer(rt, TINY);
    const dir = mkdtempSync(join(tmpdir(), 'densecl-fuzz-'));
    const rng = new Rng(SEED);
    const started = performance.now();
    const counts = { loaded: 0, refused: 0 };
    try {
      target.loadState(good, NAME);
      let reference = await target.saveState();
      for (let i = 0; i < CASES; i++) {
        const { bytes, what } = mutate(good, rng);
        const label = `case ${i} (seed ${SEED}): ${what}`;
        namedOrLoaded(() => decodeSafetensors(bytes, NAME), `${label}, decode`, NAME);
        if (i % 10 === 0) {
          const path = join(dir, NAME);
          writeFileSync(path, bytes);
          namedOrLoaded(() => loadSafetensors(path), `${label}, file`, path);
        }
        const outcome = namedOrLoaded(() => target.loadState(bytes, NAME), `${label}, load`, NAME);
        counts[outcome]++;
        if (outcome === 'loaded') {
          // Whatever loaded is a state a run can continue from: counters in range, and it saves
          // again (which refuses non-finite values) and reloads.
          const { ptr, ptr2 } = target.model;
          for (const p of [ptr, ptr2])
            assert.ok(Number.isInteger(p) && p >= 0 && p < 8 && p % 4 === 0, `${label}: loaded a queue pointer ${p}`);
          assert.ok(
            Number.isSafeInteger(target.steps) && target.steps >= 0 && target.steps <= 100,
            `${label}: loaded step ${target.steps}`,
          );
          reference = await target.saveState();
          target.loadState(reference, NAME);
        } else if (i % 200 === 0) {
          assert.ok(
            Buffer.compare(Buffer.from(await target.saveState()), Buffer.from(reference)) === 0,
            `${label}: the refused file changed the model`,
          );
        }
      }
      assert.ok(
        Buffer.compare(Buffer.from(await target.saveState()), Buffer.from(reference)) === 0,
        'the refused files changed the model',
      );
    } finally {
      target.destroy();
    }
    const sec = (performance.now() - started) / 1000;
    console.log(
      `  fuzz: ${CASES} cases in ${sec.toFixed(1)} s: ${counts.refused} refused by name, ${counts.loaded} loaded a valid state`,
    );
    assert.ok(counts.refused > CASES / 2 && counts.loaded > 0, `both outcomes occur (${JSON.stringify(counts)})`);
  },
);

t.run();
