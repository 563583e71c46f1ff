// The weight-gradient partials waiting in a gradient store's partials area summed into their
// .grads, all in one dispatch (engine/ops/conv2d/grad-partials.ts). Each output
// element adds its chunks in order from 0 and then adds the sum to .grad, exactly as the
// reduction kernel's ACCUMULATE pass does (shaders/reduce_sum.wgsl), so results match it bit for bit.
// The table holds 5 words per entry, in order of first workgroup: first workgroup, first partial
// element, chunks, elements per chunk, first .grad element in the gradient store.
//#include "lib/entry_table.wgsl"
struct Params { entries: u32, _p0: u32, _p1: u32, _p2: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> table: array<u32>;
@group(0) @binding(2) var<storage, read> partials: array<f32>;
@group(0) @binding(3) var<storage, read_write> grads: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let group = wid.x + wid.y * nwg.x;
  let e = entryAt(group, params.entries, 5u);
  let size = table[e + 3u];
  let i = (group - table[e]) * 256u + lid;
  if (i >= size) { return; }
  var at = table[e + 1u] + i;
  var acc = 0.0;
  for (var c = 0u; c < table[e + 2u]; c++) {
    acc += partials[at];
    at += size;
  }
  let dst = table[e + 4u] + i;
  grads[dst] = acc + grads[dst];
}
