// Every re-laid conv weight of one parameter store in one dispatch (engine/ops/conv2d/weight-pack.ts):
// entry e fills A[start_e, start_e + size_e) from the weight at element SRC_e of the store.
// The table holds 8 words per entry, sorted by start: start, size, src, O, C, KHW, MP,
// CINP | TAP_MAJOR << 30 | TRANS << 31. Gaps between entries (offset alignment) are not written.
// AT: A's element type (f16 for the mixed-precision pack). Two elements per invocation, in whole
// 4-byte words for f16: starts and sizes are even, so a pair never straddles two entries.
//! AT = f32
//#include "lib/conv2d_relayout.wgsl"
//#include "lib/entry_table.wgsl"
struct Params { total: u32, entries: u32, _p1: u32, _p2: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<u32>;
@group(0) @binding(3) var<storage, read_write> A: array<vec2<$AT>>;

// Element `local` of the weight of the entry at table word e.
fn value(e: u32, local: u32) -> f32 {
  let flags = table[e + 7u];
  let s = relayoutSource(local, table[e + 3u], table[e + 4u], table[e + 5u], table[e + 6u], flags & 0x3fffffffu,
                         (flags & 0x40000000u) != 0u, (flags & 0x80000000u) != 0u);
  return select(0.0, W[table[e + 2u] + u32(max(s, 0))], s >= 0);
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let pair = gid.x + gid.y * nwg.x * 256u;
  let idx = 2u * pair;
  if (idx >= params.total) { return; }
  let e = entryAt(idx, params.entries, 8u);
  let local = idx - table[e];
  if (local >= table[e + 1u]) { return; }
  A[pair] = vec2<$AT>(vec2<f32>(value(e, local), value(e, local + 1u)));
}
