// WGSL sources carry `$NAME` placeholders with defaults in `//! NAME = value` header lines, so
// one file serves every variant (an elementwise expression, a tile size, a transposed operand)
// and the shader test can compile each file with its defaults.

const DEFAULT_LINE = /^\/\/!\s*([A-Z_][A-Z0-9_]*)\s*=\s*(.*)$/gm;
const PLACEHOLDER = /\$([A-Z_][A-Z0-9_]*)/g;

export type Defines = Record<string, string | number | boolean>;

export function shaderDefaults(source: string): Defines {
  const out: Defines = {};
  for (const m of source.matchAll(DEFAULT_LINE)) out[m[1]] = m[2].trim();
  return out;
}

export function specialize(source: string, label: string, defines: Defines = {}): string {
  const values = { ...shaderDefaults(source), ...defines };
  return source.replace(PLACEHOLDER, (_, name: string) => {
    const v = values[name];
    if (v === undefined) throw new Error(`shader ${label}: placeholder $${name} has no value and no //! default`);
    return String(v);
  });
}

/** A stable cache key for one specialisation of a shader. */
export function kernelKey(label: string, defines: Defines = {}): string {
  const parts = Object.keys(defines).sort().map((k) => `${k}=${defines[k]}`);
  return parts.length ? `${label}[${parts.join(',')}]` : label;
}
