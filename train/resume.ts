// Resuming a run: its settings come from the checkpoint itself (config.json is a copy for
// people to read), and flags may change only how long it runs and how this invocation runs;
// any other flag that contradicts the run is refused by name.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { flagName } from './args.js';
import { initWithResumeError } from './init-backbone.js';
import { readSafetensorsMetadata } from './io.js';
import { CHECKPOINT } from './run-folder.js';
import { PRETRAIN_PRESETS, ADJUSTABLE, type PretrainOptions } from './presets.js';

/** Settings of one invocation, not carried into the next. */
const PER_INVOCATION = { stopAfter: 0, profile: 0, overwrite: false };
/** Settings the checkpoint's tensors and counters depend on: a run with others cannot load it. */
const MODEL_SETTINGS = ['method', 'arch', 'width', 'smallStem', 'dim', 'queueSize', 'batchSize'] as const;

/** A checkpoint's saved configuration (counters.config) as options, each of the right type. */
export function savedOptions(config: unknown, what: string): PretrainOptions {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new Error(`${what}: its saved configuration (metadata "counters", field "config") is not an object`);
  }
  // Runs saved before presets existed were made from what is now the tiny preset; it fills keys they lack.
  const base = PRETRAIN_PRESETS.tiny.options;
  const o: Record<string, unknown> = { ...base };
  for (const k of Object.keys(base) as (keyof PretrainOptions)[]) {
    if (!(k in config)) continue;
    const v = (config as Record<string, unknown>)[k];
    if (typeof v !== typeof base[k])
      throw new Error(`${what}: its saved setting "${k}" is ${JSON.stringify(v)}, expected a ${typeof base[k]}`);
    o[k] = v;
  }
  return o as PretrainOptions;
}

/** The options saved in a run folder's checkpoint (read from its header alone). */
function savedRunOptions(runDir: string): PretrainOptions {
  const path = join(runDir, CHECKPOINT);
  if (!existsSync(path)) throw new Error(`--resume ${runDir}: no ${CHECKPOINT} there; nothing to resume`);
  const meta = readSafetensorsMetadata(path);
  let counters: { config?: unknown } | null;
  try {
    counters = JSON.parse(meta.counters ?? '') as { config?: unknown } | null;
  } catch {
    throw new Error(`${path}: its run counters (metadata "counters") are missing or unreadable; it cannot be resumed`);
  }
  return savedOptions(counters?.config, path);
}

/**
 * The options of a resumed run: the checkpoint's own, with `given` (the options the user gave)
 * allowed to change only the ADJUSTABLE ones; the others must agree with the run.
 */
export function resumeOptions(runDir: string, given: Partial<PretrainOptions> = {}): PretrainOptions {
  if (given.overwrite)
    throw new Error(`--resume continues the run in ${runDir} and --overwrite would replace it; give one of them`);
  if (given.initBackbone) throw initWithResumeError(given.initBackbone, runDir);
  const saved = savedRunOptions(runDir);
  const contradictions: string[] = [];
  for (const [k, v] of Object.entries(given) as [keyof PretrainOptions, unknown][]) {
    if (v === undefined || ADJUSTABLE.includes(k) || k === 'resume' || k === 'overwrite') continue;
    if (k === 'out' ? resolve(String(v)) === resolve(runDir) : v === saved[k]) continue;
    contradictions.push(`${flagName(k)} ${v} (the run has ${k === 'out' ? runDir : saved[k]})`);
  }
  if (contradictions.length) {
    throw new Error(
      `--resume ${runDir}: ${contradictions.join(', ')}. A resumed run keeps the settings saved in its checkpoint; ` +
        `only ${ADJUSTABLE.map(flagName).join(', ')} may change. To change others, start a new run with another --out.`,
    );
  }
  const adjusted = Object.fromEntries(
    ADJUSTABLE.filter((k) => given[k as keyof PretrainOptions] !== undefined).map((k) => [
      k,
      given[k as keyof PretrainOptions],
    ]),
  );
  return { ...saved, ...PER_INVOCATION, ...adjusted, out: runDir, resume: runDir };
}

/** Refuses to load a checkpoint saved with other model settings than `o`'s, naming each. */
export function checkCheckpointSettings(config: unknown, o: PretrainOptions, path: string): void {
  const saved = savedOptions(config, path);
  const differ = MODEL_SETTINGS.filter((k) => saved[k] !== o[k]);
  if (differ.length) {
    throw new Error(
      `${path} does not match this run: it was saved with ${differ.map((k) => `${flagName(k)} ${saved[k]}`).join(', ')}; this run has ${differ.map((k) => `${flagName(k)} ${o[k]}`).join(', ')}`,
    );
  }
}
