// c = EXPR(a, b) elementwise with NumPy broadcasting: a and b are read through strides that
// are 0 along broadcast dimensions. BROADCAST = false is the same-shape fast path.
//! EXPR = a + b
//! BROADCAST = true
//! WG = 256
struct Params {
  n: u32, rank: u32, _p0: u32, _p1: u32,
  outShape: array<vec4<u32>, 2>,
  aStrides: array<vec4<u32>, 2>,
  bStrides: array<vec4<u32>, 2>,
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;

fn op(a: f32, b: f32) -> f32 { return $EXPR; }

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * $WGu;
  if (i >= params.n) { return; }
  if (!$BROADCAST) {
    C[i] = op(A[i], B[i]);
    return;
  }
  var rem = i;
  var ia = 0u;
  var ib = 0u;
  for (var d = i32(params.rank) - 1; d >= 0; d--) {
    let dim = params.outShape[d / 4][d % 4];
    let c = rem % dim;
    rem = rem / dim;
    ia += c * params.aStrides[d / 4][d % 4];
    ib += c * params.bStrides[d / 4][d % 4];
  }
  C[i] = op(A[ia], B[ib]);
}
