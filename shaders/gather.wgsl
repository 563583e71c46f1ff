// y = x gathered along `axis` by integer indices (torch.gather and index_select). Output
// coordinate c reads x at c with c[axis] replaced by index[sum_d c[d] * idxStrides[d]]: gather
// has the index laid out like the output, index_select a 1-D index (strides 0 but on `axis`).
// Out-of-range indices yield 0 (the host cannot check them without a readback).
//! WG = 256
//! T = f32
struct Params {
  n: u32, rank: u32, axis: u32, axisLen: u32,
  outShape: array<vec4<u32>, 2>,
  xStrides: array<vec4<u32>, 2>,
  idxStrides: array<vec4<u32>, 2>,
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<$T>;
@group(0) @binding(2) var<storage, read> index: array<i32>;
@group(0) @binding(3) var<storage, read_write> y: array<$T>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * $WGu;
  if (i >= params.n) { return; }
  var rem = i;
  var src = 0u;
  var at = 0u;
  for (var d = i32(params.rank) - 1; d >= 0; d--) {
    let dim = params.outShape[d / 4][d % 4];
    let c = rem % dim;
    rem = rem / dim;
    at += c * params.idxStrides[d / 4][d % 4];
    if (u32(d) != params.axis) { src += c * params.xStrides[d / 4][d % 4]; }
  }
  // A negative index becomes a huge u32 and fails the same test.
  let k = u32(index[at]);
  if (k >= params.axisLen) {
    y[i] = $T(0);
    return;
  }
  let a = params.axis;
  y[i] = x[src + k * params.xStrides[a / 4u][a % 4u]];
}
