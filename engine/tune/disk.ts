// The tuning cache on disk (Node): one JSON file, by default ~/.cache/densecl-webgpu/tune.json
// or $DENSECL_TUNE_CACHE, holding the decisions of every adapter that used it:
//   { "format": 1, "kernelVersion": "...", "adapters": { "<adapter key>": { "<class>": Decision } } }
// A file from another kernel version (stale) or unreadable (corrupt) is ignored with one
// warning and replaced at the next save. Saves merge with what is on disk at that moment and
// write a temporary file then rename it over the old one, so readers never see half a file and
// two processes saving at once leave one of their valid files (a decision of the other may be
// lost and is timed again later).
import type { Decision, TuneStore } from './tuner.js';

type Fs = typeof import('node:fs');
interface FileShape {
  format: 1;
  kernelVersion: string;
  adapters: Record<string, Record<string, Decision>>;
}

export async function defaultCachePath(): Promise<string> {
  const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
  if (env.DENSECL_TUNE_CACHE) return env.DENSECL_TUNE_CACHE;
  const osName = 'node:os';
  const pathName = 'node:path';
  const os = (await import(/* @vite-ignore */ osName)) as typeof import('node:os');
  const path = (await import(/* @vite-ignore */ pathName)) as typeof import('node:path');
  return path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'densecl-webgpu', 'tune.json');
}

/** A store on `file` for decisions made by kernels of `kernelVersion`. */
export async function diskStore(
  file: string,
  kernelVersion: string,
  warn: (m: string) => void = console.warn,
): Promise<TuneStore> {
  const fsName = 'node:fs';
  const pathName = 'node:path';
  const fs = (await import(/* @vite-ignore */ fsName)) as Fs;
  const path = (await import(/* @vite-ignore */ pathName)) as typeof import('node:path');
  let warned = false;
  const read = (): FileShape => {
    const empty: FileShape = { format: 1, kernelVersion, adapters: {} };
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      return empty; // no file yet
    }
    let problem = '';
    try {
      const d = JSON.parse(text) as FileShape;
      if (d?.format !== 1 || typeof d.adapters !== 'object' || d.adapters === null)
        problem = 'not a tuning cache of format 1';
      else if (d.kernelVersion !== kernelVersion)
        problem = `made for kernel version ${d.kernelVersion}, this engine's is ${kernelVersion} (stale)`;
      else return d;
    } catch (e) {
      problem = `unreadable (${(e as Error).message})`;
    }
    if (!warned) warn(`[tune] ignoring the tuning cache ${file}: ${problem}; it will be rewritten`);
    warned = true;
    return empty;
  };
  return {
    load: (adapterKey) => ({ ...read().adapters[adapterKey] }),
    save(adapterKey, key, decision) {
      const d = read();
      d.adapters[adapterKey] = { ...d.adapters[adapterKey], [key]: decision };
      fs.mkdirSync(path.dirname(file), { recursive: true });
      const tmp = `${file}.${(globalThis as { process?: { pid: number } }).process?.pid ?? 0}.${Math.random().toString(36).slice(2)}.tmp`;
      fs.writeFileSync(tmp, JSON.stringify(d, null, 1));
      fs.renameSync(tmp, file);
    },
  };
}
