// Command-line flags: --key value, --key=value and bare --flag (true); kebab-case keys become
// camelCase. A JSON config file (--config FILE) supplies the same keys; flags override it.
import { readFileSync, statSync } from 'node:fs';

const MAX_CONFIG_BYTES = 1 << 20;

export type Flags = Record<string, string | boolean>;

export function parseArgs(argv: string[]): { positional: string[]; flags: Flags } {
  const positional: string[] = [];
  const flags: Flags = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const key = camel(a.slice(2, eq < 0 ? undefined : eq));
    if (eq >= 0) flags[key] = a.slice(eq + 1);
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) flags[key] = argv[++i];
    else flags[key] = true;
  }
  return { positional, flags };
}

/**
 * A command takes `takes` positional arguments after its name (export: the run folder); any
 * more is a mistake, such as a value whose flag lost its -- or a stray word.
 */
export function refuseStrayArguments(command: string, args: string[], takes: number): void {
  const stray = args.slice(takes);
  if (stray.length) {
    throw new Error(
      `${command}: unexpected argument${stray.length > 1 ? 's' : ''} ${stray.map((a) => `'${a}'`).join(' ')}; options are given as --name value (densecl help lists them)`,
    );
  }
}

function camel(s: string): string {
  return s.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * The options a user gave: the keys of the --config JSON file (camelCased), then the flags,
 * which win; untyped, as given.
 */
export function givenOptions(flags: Flags, command: string): Record<string, unknown> {
  const fromFile: Record<string, unknown> = {};
  if (typeof flags.config === 'string') {
    let parsed: unknown;
    try {
      // A device or a huge file (--config /dev/zero) would be read forever.
      const info = statSync(flags.config);
      if (!info.isFile()) throw new Error('not a regular file');
      if (info.size > MAX_CONFIG_BYTES)
        throw new Error(`${info.size} bytes, more than a config file's limit of ${MAX_CONFIG_BYTES}`);
      parsed = JSON.parse(readFileSync(flags.config, 'utf8'));
    } catch (e) {
      throw new Error(`${command}: cannot read config file ${flags.config}: ${(e as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null)
      throw new Error(`${command}: config file ${flags.config} must hold a JSON object`);
    for (const [k, v] of Object.entries(parsed)) fromFile[camel(k)] = v;
  }
  const { config: _config, ...rest } = flags;
  return { ...fromFile, ...rest };
}

/** `batchSize` as the user types it: `--batch-size`. */
export function flagName(key: string): string {
  return '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/**
 * `given` (see givenOptions) over `defaults`, converting each value to the type of its
 * default; unknown keys are an error that lists the known ones.
 */
export function typedOptions<T extends Record<string, string | number | boolean>>(
  defaults: T,
  given: Record<string, unknown>,
  command: string,
): T {
  const merged: Record<string, unknown> = { ...defaults };
  for (const [k, v] of Object.entries(given)) {
    if (!(k in defaults)) {
      throw new Error(
        `${command}: unknown option ${flagName(k)}; known: ${Object.keys(defaults).map(flagName).join(' ')}`,
      );
    }
    const want = typeof defaults[k];
    const flag = flagName(k);
    if (v === '') throw new Error(`${command}: ${flag} was given an empty value`);
    if (want === 'number') {
      // Plain decimal notation only: Number() would also take '0x8', ' ' or 'Infinity'.
      const n = typeof v === 'number' ? v : typeof v === 'string' && DECIMAL.test(v.trim()) ? Number(v) : Number.NaN;
      if (!Number.isFinite(n))
        throw new Error(
          `${command}: ${flag} needs a number, got ${typeof v === 'string' ? `'${v}'` : JSON.stringify(v)}`,
        );
      merged[k] = n;
    } else if (want === 'boolean') {
      if (v === true || v === 'true' || v === '1') merged[k] = true;
      else if (v === false || v === 'false' || v === '0') merged[k] = false;
      else throw new Error(`${command}: ${flag} is true or false (or given bare for true), got ${JSON.stringify(v)}`);
    } else {
      if (typeof v !== 'string' && typeof v !== 'number')
        throw new Error(
          `${command}: ${flag} needs a value${typeof v === 'boolean' ? '' : `, got ${JSON.stringify(v)}`}`,
        );
      merged[k] = String(v);
    }
  }
  return merged as T;
}

/** Defaults, then a JSON config file (--config FILE), then flags. */
export function resolveOptions<T extends Record<string, string | number | boolean>>(
  defaults: T,
  flags: Flags,
  command: string,
): T {
  return typedOptions(defaults, givenOptions(flags, command), command);
}
