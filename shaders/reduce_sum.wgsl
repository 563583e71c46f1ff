// Sum over the middle axis of an [outer, R, inner] view, in chunks of `chunk` along R:
// y[o, c, i] = scale * sum_{r in chunk c} x[o, r, i]. One chunk is a plain reduction; many
// chunks are the first pass of a two-pass reduction when R is long and the output small.
// With ACCUMULATE the sum is added to what y holds (a parameter's .grad), sparing a separate
// accumulation.
//! ACCUMULATE = false
//! WG = 256
struct Params { outer: u32, reduce: u32, inner: u32, scale: f32, chunk: u32, chunks: u32, _p0: u32, _p1: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * $WGu;
  if (idx >= params.outer * params.chunks * params.inner) { return; }
  let i = idx % params.inner;
  let c = (idx / params.inner) % params.chunks;
  let o = idx / (params.inner * params.chunks);
  let r0 = c * params.chunk;
  let r1 = min(r0 + params.chunk, params.reduce);
  var at = (o * params.reduce + r0) * params.inner + i;
  var acc = 0.0;
  for (var r = r0; r < r1; r++) {
    acc += x[at];
    at += params.inner;
  }
  var v = acc * params.scale;
  if ($ACCUMULATE) { v += y[idx]; }
  y[idx] = v;
}
