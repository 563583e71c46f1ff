// y = x.permute(perm) made contiguous: each output element reads x through permuted strides.
//! WG = 256
//! T = f32
struct Params {
  n: u32, rank: u32, _p0: u32, _p1: u32,
  outShape: array<vec4<u32>, 2>,
  inStrides: array<vec4<u32>, 2>,
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<$T>;
@group(0) @binding(2) var<storage, read_write> y: array<$T>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * $WGu;
  if (i >= params.n) { return; }
  var rem = i;
  var src = 0u;
  for (var d = i32(params.rank) - 1; d >= 0; d--) {
    let dim = params.outShape[d / 4][d % 4];
    src += (rem % dim) * params.inStrides[d / 4][d % 4];
    rem = rem / dim;
  }
  y[i] = x[src];
}
