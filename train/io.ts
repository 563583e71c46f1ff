// Node-only file I/O: atomic writes (a crash never leaves a half-written checkpoint in place of
// a good one) and safetensors files on disk.
import { openSync, writeSync, fsyncSync, closeSync, renameSync, unlinkSync, readFileSync, statSync, mkdirSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { encodeSafetensors, decodeSafetensors, type SafeTensor, type SafetensorsFile } from '../engine/safetensors.js';

/**
 * Writes `bytes` to `path` atomically: a temporary file in the same directory (same file
 * system, so rename is atomic), fsync, rename over the target, then fsync the directory so the
 * rename itself survives a power loss.
 */
export function writeFileAtomic(path: string, bytes: Uint8Array): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}.tmp`);
  let fd = -1;
  try {
    mkdirSync(dir, { recursive: true });
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

export function saveSafetensors(path: string, tensors: Map<string, SafeTensor> | Record<string, SafeTensor>, metadata: Record<string, string> = {}): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata, path));
}

export function loadSafetensors(path: string): SafetensorsFile {
  let bytes: Uint8Array;
  try {
    if (!statSync(path).isFile()) throw new Error('not a regular file');
    bytes = readFileSync(path);
  } catch (e) {
    throw new Error(`could not read safetensors file ${path}: ${(e as Error).message}`);
  }
  return decodeSafetensors(bytes, path);
}
