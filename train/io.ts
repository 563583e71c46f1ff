// Node-only file I/O: atomic writes (a crash never leaves a half-written checkpoint in place of
// a good one) and safetensors files on disk.
import {
  openSync,
  writeSync,
  readSync,
  fsyncSync,
  closeSync,
  renameSync,
  unlinkSync,
  readFileSync,
  readdirSync,
  statSync,
  mkdirSync,
  existsSync,
} from 'node:fs';
import { dirname, basename, join, resolve } from 'node:path';
import { encodeSafetensors, decodeSafetensors, type SafeTensor, type SafetensorsFile } from '../engine/safetensors.js';

/**
 * Creates `dir` and any missing parents, like mkdir -p. Node's recursive mkdirSync loops forever
 * where a parent exists but refuses children with ENOENT (/proc/x), so each level is made here.
 */
export function makeFolder(dir: string): void {
  const missing: string[] = [];
  let d = resolve(dir);
  while (!existsSync(d)) {
    missing.unshift(d);
    if (dirname(d) === d) break;
    d = dirname(d);
  }
  try {
    if (existsSync(d) && !statSync(d).isDirectory()) throw new Error(`${d} is not a folder`);
    for (const m of missing) mkdirSync(m);
  } catch (e) {
    throw new Error(`cannot create the folder ${dir}: ${(e as Error).message}`);
  }
}

/**
 * Writes `bytes` to `path` atomically: a temporary file in the same directory (same file
 * system, so rename is atomic), fsync, rename over the target, then fsync the directory so the
 * rename itself survives a power loss.
 */
export function writeFileAtomic(path: string, bytes: Uint8Array): void {
  const dir = dirname(path);
  // The name says whose it is (removeStaleTemporaries relies on it).
  const tmp = join(
    dir,
    `.${basename(path)}.${process.pid}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}.tmp`,
  );
  let fd = -1;
  try {
    makeFolder(dir);
    fd = openSync(tmp, 'wx', 0o644);
    let at = 0;
    while (at < bytes.length) at += writeSync(fd, bytes, at, bytes.length - at);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, path);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // the temporary file was never created or is already gone
    }
    throw new Error(`could not write ${path}: ${(e as Error).message}`);
  }
  try {
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // some file systems refuse fsync on a directory; the rename has happened either way
  }
}

/**
 * Removes the temporary files writeFileAtomic left in `dir` for the files `names` when their
 * writer was killed: only names of that pattern, only when the writing process is not running
 * on this machine and the file is over a minute old, or when it is over a day old (a writer on
 * another machine). Returns the names removed.
 */
export function removeStaleTemporaries(dir: string, names: readonly string[], now = Date.now()): string[] {
  const removed: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const entry of entries) {
    const m = /^\.(.+)\.([0-9]+)\.[0-9a-z]+\.tmp$/.exec(entry);
    if (!m || !names.includes(m[1])) continue;
    const path = join(dir, entry);
    try {
      const age = now - statSync(path).mtimeMs;
      if (age > 24 * 3600e3 || (age > 60e3 && !processRuns(Number(m[2])))) {
        unlinkSync(path);
        removed.push(entry);
      }
    } catch {
      // gone already, or not ours to remove
    }
  }
  return removed;
}

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function saveSafetensors(
  path: string,
  tensors: Map<string, SafeTensor> | Record<string, SafeTensor>,
  metadata: Record<string, string> = {},
): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata, path));
}

export function loadSafetensors(path: string): SafetensorsFile {
  readSafetensorsMetadata(path); // the header first: a wrong file is refused before it is read whole
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new Error(`could not read safetensors file ${path}: ${(e as Error).message}`);
  }
  return decodeSafetensors(bytes, path);
}

// As engine/safetensors.ts: a larger header length means the file is not safetensors.
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/**
 * The "__metadata__" strings of a safetensors file, read from its header alone (a checkpoint's
 * tensors can be gigabytes). The header must also account for the file's size exactly, so a
 * file that is not safetensors, or truncated, or padded, is refused before it is read whole;
 * the whole file is checked again when it is decoded.
 */
export function readSafetensorsMetadata(path: string): Record<string, string> {
  const fail = (why: string): never => {
    throw new Error(`${path}: ${why}`);
  };
  let fd = -1;
  try {
    fd = openSync(path, 'r');
    const info = statSync(path);
    if (!info.isFile()) return fail('not a regular file');
    const size = info.size;
    const lengthBytes = Buffer.alloc(8);
    if (size < 8 || readSync(fd, lengthBytes, 0, 8, 0) !== 8)
      return fail(`too short to be a safetensors file (${size} bytes)`);
    const n = lengthBytes.readBigUInt64LE(0);
    if (n > BigInt(MAX_HEADER_BYTES))
      return fail(
        `header length ${n} is implausible (over ${MAX_HEADER_BYTES} bytes): not a safetensors file, or corrupt`,
      );
    if (n > BigInt(size - 8))
      return fail(
        `truncated or not safetensors: the header claims ${n} bytes, the file has ${size - 8} after the length`,
      );
    const header = Buffer.alloc(Number(n));
    if (readSync(fd, header, 0, header.length, 8) !== header.length) return fail('the header could not be read whole');
    let parsed: Record<string, { data_offsets?: unknown } | undefined>;
    try {
      parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(header)) as typeof parsed;
    } catch (e) {
      return fail(`the JSON header does not parse (${(e as Error).message}): not a safetensors file, or corrupt`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
      return fail('the header is not a JSON object');
    // The tensors tile the data, so the largest end offset is the data's length.
    const dataBytes = size - 8 - Number(n);
    let dataEnd = 0;
    for (const [name, t] of Object.entries(parsed)) {
      if (name === '__metadata__') continue;
      const end = Array.isArray(t?.data_offsets) ? Number(t.data_offsets[1]) : Number.NaN;
      if (!Number.isSafeInteger(end) || end < 0)
        return fail(`tensor "${name}": data_offsets ${JSON.stringify(t?.data_offsets)} is not [begin, end]`);
      if (end > dataBytes)
        return fail(
          `truncated: tensor "${name}" ends at byte ${end} of the data but the file holds only ${dataBytes} data bytes`,
        );
      dataEnd = Math.max(dataEnd, end);
    }
    if (dataEnd < dataBytes)
      return fail(`${dataBytes - dataEnd} bytes after the last tensor: corrupt file, or not written as safetensors`);
    const meta = (parsed as { __metadata__?: unknown }).__metadata__;
    if (meta === undefined) return {};
    if (
      meta === null ||
      typeof meta !== 'object' ||
      Array.isArray(meta) ||
      !Object.values(meta).every((v) => typeof v === 'string')
    ) {
      return fail('"__metadata__" is not an object of strings');
    }
    return meta as Record<string, string>;
  } catch (e) {
    if ((e as Error).message.startsWith(path)) throw e;
    throw new Error(`could not read ${path}: ${(e as Error).message}`);
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}
