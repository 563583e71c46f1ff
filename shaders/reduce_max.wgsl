// Max over the middle axis of an [outer, R, inner] view, with the index of the first maximum
// (the backward pass routes the gradient to it, as PyTorch's max(dim) does).
//! WG = 256
struct Params { outer: u32, reduce: u32, inner: u32, _pad: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> arg: array<i32>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * $WGu;
  if (idx >= params.outer * params.inner) { return; }
  let o = idx / params.inner;
  let i = idx % params.inner;
  let base = o * params.reduce * params.inner + i;
  var best = x[base];
  var bestR = 0u;
  for (var r = 1u; r < params.reduce; r++) {
    let v = x[base + r * params.inner];
    if (v > best || (v != v && best == best)) { best = v; bestR = r; }
  }
  y[idx] = best;
  arg[idx] = i32(bestR);
}
