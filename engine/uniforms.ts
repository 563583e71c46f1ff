// Uniform parameter layout read from the WGSL struct itself (wgsl_reflect), so TypeScript writes
// fields by name and a missing or misspelt field is an error rather than garbage on the GPU.
import { WgslReflect } from 'wgsl_reflect';

export type Scalar = 'f32' | 'u32' | 'i32';
interface Field {
  offset: number;
  scalar: Scalar;
  count: number;
}

export interface ShaderInterface {
  /** Byte size of the Params struct, 0 when the shader has no uniform. */
  uniformSize: number;
  fields: Map<string, Field>;
  /** Storage bindings from binding 1 on, in binding order; true where written by the shader. */
  storageWritable: boolean[];
  workgroupSize: [number, number, number];
}

interface TypeLike {
  name: string;
  format?: TypeLike | null;
  count?: number;
  size?: number;
}

function scalarOf(t: TypeLike): Scalar {
  let cur: TypeLike | null | undefined = t;
  while (cur && !['f32', 'u32', 'i32'].includes(cur.name)) cur = cur.format;
  if (!cur)
    throw new Error(`uniform field of type ${t.name}: only f32/u32/i32 scalars, vectors and arrays are supported`);
  return cur.name as Scalar;
}

export function reflectShader(source: string, label: string): ShaderInterface {
  const r = new WgslReflect(source);
  const fields = new Map<string, Field>();
  let uniformSize = 0;
  const u = r.uniforms[0];
  if (u) {
    if (u.binding !== 0) throw new Error(`${label}: the uniform Params must be @binding(0)`);
    uniformSize = u.size;
    const members = (u.type as unknown as { members: { name: string; offset: number; size: number; type: TypeLike }[] })
      .members;
    for (const m of members) fields.set(m.name, { offset: m.offset, scalar: scalarOf(m.type), count: m.size / 4 });
  }
  const storage = [...r.storage].sort((a, b) => a.binding - b.binding);
  storage.forEach((s, i) => {
    if (s.binding !== i + 1)
      throw new Error(`${label}: storage bindings must be numbered 1, 2, ... (found ${s.binding})`);
  });
  const entry = r.entry.compute[0];
  if (!entry) throw new Error(`${label}: no @compute entry point`);
  const ws = (entry as unknown as { workgroupSize?: number[] }).workgroupSize ?? [1, 1, 1];
  const wg: [number, number, number] = [ws[0] ?? 1, ws[1] ?? 1, ws[2] ?? 1];
  return {
    uniformSize,
    fields,
    storageWritable: storage.map((s) => String(s.access).includes('write')),
    workgroupSize: wg,
  };
}

/**
 * A uniform value that changes from step to step (a learning rate, a queue position): packed like
 * a number, but a captured step program remembers where it went and takes a new value at replay.
 */
export interface LiveValue {
  readonly live: string;
  readonly value: number;
}

export const live = (name: string, value: number): LiveValue => ({ live: name, value });

export type ParamValues = Record<string, number | number[] | LiveValue>;

/** Where a live value sits in a packed Params image (bytes from the image's base). */
export interface LivePatch {
  name: string;
  offset: number;
  scalar: Scalar;
}

/**
 * Writes named values into a Params struct image; every field must be given. Returns where the
 * live values went (empty when there are none).
 */
export function packParams(
  iface: ShaderInterface,
  values: ParamValues,
  into: DataView,
  base: number,
  label: string,
): LivePatch[] {
  const patches: LivePatch[] = [];
  for (const [name, f] of iface.fields) {
    if (name.startsWith('_')) continue; // padding
    const v = values[name];
    if (v === undefined) throw new Error(`${label}: uniform field '${name}' was not given`);
    if (typeof v === 'object' && !Array.isArray(v)) {
      patches.push({ name: v.live, offset: f.offset, scalar: f.scalar });
      writeScalar(into, base + f.offset, f.scalar, v.value);
      continue;
    }
    const arr = typeof v === 'number' ? [v] : v;
    if (arr.length > f.count) throw new Error(`${label}: field '${name}' holds ${f.count} values, got ${arr.length}`);
    for (let i = 0; i < arr.length; i++) writeScalar(into, base + f.offset + 4 * i, f.scalar, arr[i]);
  }
  for (const name of Object.keys(values)) {
    if (!iface.fields.has(name)) throw new Error(`${label}: shader has no uniform field '${name}'`);
  }
  return patches;
}

export function writeScalar(into: DataView, at: number, scalar: Scalar, value: number): void {
  if (scalar === 'f32') into.setFloat32(at, value, true);
  else if (scalar === 'u32') into.setUint32(at, value >>> 0, true);
  else into.setInt32(at, value | 0, true);
}
