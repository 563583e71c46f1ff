// WGSL sources carry `$NAME` placeholders with defaults in `//! NAME = value` header lines, so
// one file serves every variant (an elementwise expression, a tile size, a transposed operand)
// and the shader test can compile each file with its defaults.
//
// Shared WGSL comes from one place: a line `//#include "lib/name.wgsl"` is replaced by that
// snippet (shaders/lib/, bundled as text through engine/wgsl-lib.ts), recursively, each snippet
// at most once per shader. Snippets may use placeholders and declare `//!` defaults; the
// including file's defaults win over a snippet's, and the caller's defines over both.
//
// A specialisation whose code (comments aside) uses f16 gets `enable f16;` put first, so one file
// serves f32 and f16 operands through a type placeholder.
//
// Declarations that only some variants have (an extra binding) sit between `//#if NAME` (or
// `//#if !NAME`) and `//#endif` lines, NAME a true/false define: kept or dropped whole. No nesting.
import { WGSL_LIB } from './wgsl-lib.js';
import type { ShaderInterface } from './uniforms.js';

const DEFAULT_LINE = /^\/\/!\s*([A-Z_][A-Z0-9_]*)\s*=\s*(.*)$/gm;
const PLACEHOLDER = /\$([A-Z_][A-Z0-9_]*)/g;
const INCLUDE_LINE = /^[ \t]*\/\/#include\s+"([^"]+)"[ \t]*$/gm;

export type Defines = Record<string, string | number | boolean>;

export function shaderDefaults(source: string): Defines {
  const out: Defines = {};
  for (const m of source.matchAll(DEFAULT_LINE)) out[m[1]] = m[2].trim();
  return out;
}

/** The source with every `//#include` replaced by its snippet (each snippet once). */
export function expandIncludes(source: string, label: string, library: Record<string, string> = WGSL_LIB): string {
  const seen = new Set<string>();
  const expand = (text: string, from: string): string =>
    text.replace(INCLUDE_LINE, (_, name: string) => {
      const snippet = library[name];
      if (snippet === undefined) {
        throw new Error(
          `shader ${label}: ${from} includes "${name}", which is not in the snippet library (engine/wgsl-lib.ts lists ${Object.keys(library).join(', ') || 'nothing'})`,
        );
      }
      if (seen.has(name)) return `// (${name} included above)`;
      seen.add(name);
      return `// ---- ${name}\n${expand(snippet, name)}\n// ---- end of ${name}`;
    });
  return expand(source, label);
}

export function specialize(
  source: string,
  label: string,
  defines: Defines = {},
  library: Record<string, string> = WGSL_LIB,
): string {
  const code = expandIncludes(source, label, library);
  // Defaults are gathered from the expanded text, so the including file's (earlier) lines must
  // win: collect them last-first.
  const defaults: Defines = {};
  for (const m of [...code.matchAll(DEFAULT_LINE)].reverse()) defaults[m[1]] = m[2].trim();
  const values = { ...defaults, ...defines };
  const out = keepConditionals(code, label, values).replace(PLACEHOLDER, (_, name: string) => {
    const v = values[name];
    if (v === undefined) throw new Error(`shader ${label}: placeholder $${name} has no value and no //! default`);
    return String(v);
  });
  const uncommented = out.replace(LINE_COMMENT, '');
  return USES_F16.test(uncommented) && !ENABLES_F16.test(uncommented) ? `enable f16;\n${out}` : out;
}

const CONDITIONAL = /^[ \t]*\/\/#if[ \t]+(!?)([A-Z_][A-Z0-9_]*)[ \t]*\n([\s\S]*?)^[ \t]*\/\/#endif[ \t]*$/gm;

/** The text with each `//#if` block kept (its body) or dropped, by its boolean define. */
function keepConditionals(code: string, label: string, values: Defines): string {
  const out = code.replace(CONDITIONAL, (_, not: string, name: string, body: string) => {
    const v = String(values[name]);
    if (v !== 'true' && v !== 'false')
      throw new Error(`shader ${label}: //#if ${name} needs ${name} true or false, got ${values[name]}`);
    return (v === 'true') !== (not === '!') ? body : '';
  });
  const stray = /^[ \t]*\/\/#(if|endif)\b.*$/m.exec(out);
  if (stray) throw new Error(`shader ${label}: '${stray[0].trim()}' has no matching //#if or //#endif (no nesting)`);
  return out;
}

const LINE_COMMENT = /\/\/.*$/gm;
const USES_F16 = /\bf16\b/;
const ENABLES_F16 = /^\s*enable\s+[^;]*\bf16\b/m;

/** A stable cache key for one specialisation of a shader. */
export function kernelKey(label: string, defines: Defines = {}): string {
  const parts = Object.keys(defines)
    .sort()
    .map((k) => `${k}=${defines[k]}`);
  return parts.length ? `${label}[${parts.join(',')}]` : label;
}

export interface Kernel {
  key: string;
  label: string;
  iface: ShaderInterface;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  /** Whether it has been dispatched yet (its first run may include shader compilation). */
  used: boolean;
}

/** What a profiler or a trace needs to know about one dispatch. */
export interface DispatchInfo {
  kernel: string;
  op: string;
  workgroups: [number, number, number];
  flops: number;
  bytes: number;
  shapes: string;
}
