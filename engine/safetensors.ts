// The safetensors format, encoded and decoded in memory (no file system here, so browser code
// can use it; train/io.ts adds atomic file reads and writes for Node).
//
// Layout: u64 little-endian N, then N bytes of UTF-8 JSON, then the data. The JSON maps each
// tensor name to {dtype, shape, data_offsets: [begin, end]} (offsets relative to the start of
// the data) and may hold "__metadata__": a map of strings to strings. The header is padded with
// spaces so that the data starts on an 8-byte boundary. Tensors are row-major, little-endian,
// and together cover the data exactly, without gaps or overlaps.

export type SafeDType = 'F64' | 'F32' | 'I64' | 'I32' | 'U32' | 'U8';

export type SafeArray = Float64Array | Float32Array | BigInt64Array | Int32Array | Uint32Array | Uint8Array;

export interface SafeTensor {
  dtype: SafeDType;
  shape: number[];
  data: SafeArray;
}

export interface SafetensorsFile {
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
}

const ELEMENT_BYTES: Record<SafeDType, number> = { F64: 8, F32: 4, I64: 8, I32: 4, U32: 4, U8: 1 };

const ARRAY_OF: Record<
  SafeDType,
  { new (buf: ArrayBuffer, offset: number, length: number): SafeArray; BYTES_PER_ELEMENT: number }
> = {
  F64: Float64Array,
  F32: Float32Array,
  I64: BigInt64Array,
  I32: Int32Array,
  U32: Uint32Array,
  U8: Uint8Array,
};

// Guards against reading a huge bogus length from a file that is not safetensors at all.
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('safetensors: this code assumes a little-endian host');
}

/** The dtype that matches a typed array (Uint8Array -> U8, BigInt64Array -> I64, ...). */
export function dtypeOf(data: SafeArray): SafeDType {
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Float64Array) return 'F64';
  if (data instanceof BigInt64Array) return 'I64';
  if (data instanceof Int32Array) return 'I32';
  if (data instanceof Uint32Array) return 'U32';
  if (data instanceof Uint8Array) return 'U8';
  throw new Error(
    'safetensors: unsupported array type (use Float32Array, Float64Array, BigInt64Array, Int32Array, Uint32Array or Uint8Array)',
  );
}

/** A tensor entry whose dtype is taken from its array. */
export function safeTensor(data: SafeArray, shape: number[] = [data.length]): SafeTensor {
  return { dtype: dtypeOf(data), shape, data };
}

/**
 * Serialises tensors with optional string metadata.
 * `what` names the destination in error messages.
 */
export function encodeSafetensors(
  tensors: Map<string, SafeTensor> | Record<string, SafeTensor>,
  metadata: Record<string, string> = {},
  what = 'safetensors',
): Uint8Array {
  // Widest dtypes first (stable), so that every array lands aligned for its element size.
  const entries = (tensors instanceof Map ? [...tensors] : Object.entries(tensors)).sort(
    (a, b) => ELEMENT_BYTES[b[1].dtype] - ELEMENT_BYTES[a[1].dtype],
  );
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`${what}: metadata "${k}" must be a string, got ${typeof v}`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new Error(`${what}: "__metadata__" is reserved and cannot name a tensor`);
    const elems = t.shape.reduce((a, b) => a * b, 1);
    if (!t.shape.every((d) => Number.isInteger(d) && d >= 0))
      throw new Error(`${what}: tensor "${name}" has a bad shape [${t.shape}]`);
    if (dtypeOf(t.data) !== t.dtype)
      throw new Error(`${what}: tensor "${name}" says dtype ${t.dtype} but holds a ${t.data.constructor.name}`);
    if (elems !== t.data.length)
      throw new Error(
        `${what}: tensor "${name}" has shape [${t.shape}] (${elems} elements) but ${t.data.length} values`,
      );
    const bytes = elems * ELEMENT_BYTES[t.dtype];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLen = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLen + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLen);
  let at = 8 + headerLen;
  for (const [, t] of entries) {
    const b = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    out.set(b, at);
    at += b.length;
  }
  return out;
}

/**
 * Parses a safetensors buffer. Arrays are views into `bytes` where alignment allows, copies
 * otherwise. `what` (usually the file path) prefixes every error.
 */
export function decodeSafetensors(bytes: Uint8Array, what = 'safetensors buffer'): SafetensorsFile {
  const fail = (msg: string): never => {
    throw new Error(`${what}: ${msg}`);
  };
  if (bytes.length < 8)
    fail(`too short to be a safetensors file (${bytes.length} bytes; the header length alone takes 8)`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES))
    fail(`header length ${n} is implausible (over ${MAX_HEADER_BYTES} bytes): not a safetensors file, or corrupt`);
  const headerLen = Number(n);
  if (8 + headerLen > bytes.length)
    fail(`truncated: the header claims ${headerLen} bytes but the file has only ${bytes.length - 8} after the length`);
  let header: Record<string, unknown>;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen));
    header = JSON.parse(text);
  } catch (e) {
    return fail(`the JSON header does not parse (${(e as Error).message}): not a safetensors file, or corrupt`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('the header is not a JSON object');

  const metadata: Record<string, string> = {};
  const raw = header.__metadata__;
  if (raw !== undefined) {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
      fail('"__metadata__" is not an object of strings');
    for (const [k, v] of Object.entries(raw as object)) {
      if (typeof v !== 'string') fail(`"__metadata__"."${k}" is not a string`);
      metadata[k] = v;
    }
  }

  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  const spans: { name: string; begin: number; end: number; dtype: SafeDType; shape: number[] }[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const t = info as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof t !== 'object' || t === null) fail(`tensor "${name}": entry is not an object`);
    if (typeof t.dtype !== 'string' || !(t.dtype in ELEMENT_BYTES)) {
      fail(
        `tensor "${name}": dtype ${JSON.stringify(t.dtype)} is not supported (supported: ${Object.keys(ELEMENT_BYTES).join(', ')})`,
      );
    }
    const dtype = t.dtype as SafeDType;
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isInteger(d) && d >= 0))
      fail(`tensor "${name}": shape ${JSON.stringify(t.shape)} is not a list of non-negative integers`);
    const off = t.data_offsets;
    if (
      !Array.isArray(off) ||
      off.length !== 2 ||
      !off.every((o) => Number.isInteger(o) && o >= 0) ||
      off[1] < off[0]
    ) {
      fail(`tensor "${name}": data_offsets ${JSON.stringify(off)} is not [begin, end] with 0 <= begin <= end`);
    }
    const [begin, end] = off as number[];
    const shape = t.shape as number[];
    const elems = shape.reduce((a, b) => a * b, 1);
    if (end - begin !== elems * ELEMENT_BYTES[dtype]) {
      fail(
        `tensor "${name}": ${dtype} [${shape}] needs ${elems * ELEMENT_BYTES[dtype]} bytes but data_offsets span ${end - begin}`,
      );
    }
    if (end > dataLen)
      fail(`truncated: tensor "${name}" ends at byte ${end} of the data but the file holds only ${dataLen} data bytes`);
    spans.push({ name, begin, end, dtype, shape });
  }
  // The format requires the tensors to tile the data: no gaps, no overlaps, nothing left over.
  const sorted = [...spans].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const s of sorted) {
    if (s.begin !== cursor)
      fail(
        `tensor "${s.name}" starts at data byte ${s.begin} but the previous tensor ends at ${cursor} (${s.begin < cursor ? 'overlap' : 'gap'})`,
      );
    cursor = s.end;
  }
  if (cursor !== dataLen)
    fail(`${dataLen - cursor} bytes after the last tensor: corrupt file, or not written as safetensors`);

  const tensors = new Map<string, SafeTensor>();
  for (const s of spans) {
    const Arr = ARRAY_OF[s.dtype];
    const at = bytes.byteOffset + dataStart + s.begin;
    const count = (s.end - s.begin) / Arr.BYTES_PER_ELEMENT;
    let data: SafeArray;
    if (at % Arr.BYTES_PER_ELEMENT === 0) {
      data = new Arr(bytes.buffer as ArrayBuffer, at, count);
    } else {
      const copy = new Uint8Array(s.end - s.begin);
      copy.set(bytes.subarray(dataStart + s.begin, dataStart + s.end));
      data = new Arr(copy.buffer, 0, count);
    }
    tensors.set(s.name, { dtype: s.dtype, shape: s.shape, data });
  }
  return { tensors, metadata };
}

/** Reads any integer or float tensor as plain numbers (I64 values must fit in 2^53). */
export function toNumbers(t: SafeTensor, what = 'tensor'): Float64Array {
  const out = new Float64Array(t.data.length);
  if (t.data instanceof BigInt64Array) {
    for (let i = 0; i < out.length; i++) {
      const v = t.data[i];
      if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER))
        throw new Error(`${what}: I64 value ${v} at ${i} does not fit a JS number exactly`);
      out[i] = Number(v);
    }
  } else {
    out.set(t.data);
  }
  return out;
}
