import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, writeFileSync, readdirSync, rmSync, truncateSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeSafetensors, decodeSafetensors, safeTensor, toNumbers, type SafeTensor } from '../engine/safetensors.js';
import { saveSafetensors, loadSafetensors, writeFileAtomic } from '../train/io.js';

// Tests run from the bundle in .build/test/; fixtures stay in the source tree.
const fixture = (name: string): string => fileURLToPath(new URL(`../../test/fixtures/${name}`, import.meta.url));

const t = suite('safetensors');
const dir = mkdtempSync(join(tmpdir(), 'safetensors-test-'));
t.after(() => rmSync(dir, { recursive: true, force: true }));

function throwsWith(fn: () => unknown, ...parts: string[]): void {
  try {
    fn();
  } catch (e) {
    const msg = (e as Error).message;
    for (const p of parts) assert.ok(msg.includes(p), `error "${msg}" should mention "${p}"`);
    return;
  }
  assert.unreachable(`expected an error mentioning ${parts.join(', ')}`);
}

t('reads a file written independently (scripts/make_safetensors_fixture.py)', () => {
  const f = loadSafetensors(fixture('tiny.safetensors'));
  assert.equal(f.metadata, { format: 'pt', note: 'written by scripts/make_safetensors_fixture.py' });
  const w = f.tensors.get('conv1.weight')!;
  assert.is(w.dtype, 'F32');
  assert.equal(w.shape, [2, 3, 3, 3]);
  assert.equal(
    Array.from(w.data as Float32Array),
    Array.from({ length: 54 }, (_, i) => i * 0.25 - 3),
  );
  const nbt = f.tensors.get('bn1.num_batches_tracked')!;
  assert.is(nbt.dtype, 'I64');
  assert.equal(nbt.shape, []);
  assert.equal(Array.from(nbt.data as BigInt64Array), [7n]);
  assert.equal(Array.from(toNumbers(nbt)), [7]);
  assert.equal(Array.from(f.tensors.get('queue_ptr')!.data as BigInt64Array), [-5n, 2n ** 40n + 3n]);
  assert.equal(Array.from(f.tensors.get('labels')!.data as Int32Array), [0, -1, 2, 2147483647, -2147483648, 5]);
  assert.equal(Array.from(f.tensors.get('rng_state')!.data as Uint32Array), [0, 1, 4294967295, 123456789]);
  assert.equal(Array.from(f.tensors.get('mask')!.data as Uint8Array), [1, 0, 255]);
  assert.equal(Array.from(f.tensors.get('bn1.running_var')!.data as Float32Array), [1, 0.5]);
});

t('re-encoding the fixture reproduces it byte for byte', () => {
  // Both writers put wider dtypes first and pad the header with spaces to 8 bytes; with the same
  // tensor order and compact JSON the bytes must agree.
  const bytes = readFileSync(fixture('tiny.safetensors'));
  const f = decodeSafetensors(bytes, 'tiny');
  const again = encodeSafetensors(f.tensors, f.metadata);
  assert.is(again.length, bytes.length);
  assert.ok(Buffer.from(again).equals(bytes), 'bytes differ');
});

t('round trip through a file keeps names, shapes, dtypes and values', () => {
  const tensors: Record<string, SafeTensor> = {
    a: safeTensor(Float32Array.from([1.5, -2, 3.25, Number.NaN]), [2, 2]),
    odd: safeTensor(Uint8Array.from([9, 8, 7])),
    b: safeTensor(BigInt64Array.from([-1n, 123n])),
    c: safeTensor(Int32Array.from([-7]), []),
    d: safeTensor(Uint32Array.from([4000000000])),
    e: safeTensor(new Float32Array(0), [0, 3]),
  };
  const path = join(dir, 'sub', 'rt.safetensors');
  saveSafetensors(path, tensors, { step: '12' });
  const back = loadSafetensors(path);
  assert.equal(back.metadata, { step: '12' });
  assert.equal([...back.tensors.keys()].sort(), Object.keys(tensors).sort());
  for (const [name, want] of Object.entries(tensors)) {
    const got = back.tensors.get(name)!;
    assert.is(got.dtype, want.dtype, name);
    assert.equal(got.shape, want.shape, name);
    assert.equal(Array.from(got.data as ArrayLike<unknown>), Array.from(want.data as ArrayLike<unknown>), name);
  }
  // Data must start 8-aligned and the F32 data keeps 4-byte alignment although a U8 came first.
  const raw = readFileSync(path);
  const n = Number(raw.readBigUInt64LE(0));
  assert.is(n % 8, 0);
  const header = JSON.parse(raw.subarray(8, 8 + n).toString());
  assert.is(header.a.data_offsets[0] % 4, 0);
  assert.is(header.odd.data_offsets[1], raw.length - 8 - n, 'the U8 tensor is last');
  assert.equal(readdirSync(join(dir, 'sub')), ['rt.safetensors'], 'no temporary file left behind');
});

t('atomic write replaces the old file only when complete', () => {
  const path = join(dir, 'atomic.bin');
  writeFileAtomic(path, Uint8Array.from([1, 2, 3]));
  writeFileAtomic(path, Uint8Array.from([4, 5]));
  assert.equal(Array.from(readFileSync(path)), [4, 5]);
  throwsWith(
    () => writeFileAtomic(join(path, 'inside-a-file'), Uint8Array.from([1])),
    'could not write',
    'inside-a-file',
  );
  assert.equal(Array.from(readFileSync(path)), [4, 5]);
});

t('corrupt and truncated files give errors naming the file and the problem', () => {
  const good = encodeSafetensors({ w: safeTensor(Float32Array.from([1, 2, 3, 4])) });
  const put = (name: string, bytes: Uint8Array): string => {
    const p = join(dir, name);
    writeFileSync(p, bytes);
    return p;
  };
  const truncated = put('truncated.safetensors', good.subarray(0, good.length - 3));
  throwsWith(() => loadSafetensors(truncated), truncated, 'truncated', '"w"');
  const short = put('short.safetensors', good.subarray(0, 5));
  throwsWith(() => loadSafetensors(short), short, 'too short');
  const headerCut = put('headercut.safetensors', good.subarray(0, 20));
  throwsWith(() => loadSafetensors(headerCut), headerCut, 'truncated', 'header');
  const notSt = put('text.safetensors', new TextEncoder().encode('this is not a safetensors file at all'));
  throwsWith(() => loadSafetensors(notSt), notSt, 'implausible');
  const extra = new Uint8Array(good.length + 4);
  extra.set(good);
  const padded = put('extra.safetensors', extra);
  throwsWith(() => loadSafetensors(padded), padded, '4 bytes after the last tensor');
  const badJson = good.slice();
  badJson[9] = 0x7b; // '{' where a '"' was
  const bj = put('badjson.safetensors', badJson);
  throwsWith(() => loadSafetensors(bj), bj, 'JSON header does not parse');
  const f16 = new TextEncoder().encode(JSON.stringify({ h: { dtype: 'F16', shape: [1], data_offsets: [0, 2] } }));
  const withF16 = new Uint8Array(8 + f16.length + 2);
  new DataView(withF16.buffer).setBigUint64(0, BigInt(f16.length), true);
  withF16.set(f16, 8);
  throwsWith(() => decodeSafetensors(withF16, 'half.safetensors'), 'half.safetensors', 'F16', 'not supported');
  throwsWith(() => loadSafetensors(join(dir, 'missing.safetensors')), 'missing.safetensors', 'could not read');
  throwsWith(
    () => encodeSafetensors({ w: { dtype: 'F32', shape: [3], data: new Float32Array(2) } }, {}, 'out.st'),
    'out.st',
    '"w"',
    '3 elements',
  );
});

t('a huge file that is not safetensors is refused from its header, without reading it whole', () => {
  const path = join(dir, 'huge.safetensors');
  writeFileSync(path, '');
  truncateSync(path, 2047 * 1024 * 1024); // sparse: no disk space used
  const before = process.resourceUsage().maxRSS;
  try {
    throwsWith(() => loadSafetensors(path), path, 'JSON header does not parse');
    const grewMiB = (process.resourceUsage().maxRSS - before) / 1024;
    assert.ok(grewMiB < 256, `peak memory grew by ${grewMiB.toFixed(0)} MiB: the file was read`);
  } finally {
    unlinkSync(path);
  }
});

t.run();
