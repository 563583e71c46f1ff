// Backward of gather / index_select without float atomics: one invocation per element of x
// walks the index entries that could hit it (the line of the output along `axis` through its
// other coordinates) and sums the gradients of those whose index equals its own coordinate.
// Deterministic, and O(x.size * outShape[axis]): cheap for the short axes it is used on.
//! WG = 256
struct Params {
  n: u32, rank: u32, axis: u32, outAxisLen: u32,
  xShape: array<vec4<u32>, 2>,
  outShape: array<vec4<u32>, 2>,
  outStrides: array<vec4<u32>, 2>,
  idxStrides: array<vec4<u32>, 2>,
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> index: array<i32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * $WGu;
  if (i >= params.n) { return; }
  var rem = i;
  var outBase = 0u;
  var idxBase = 0u;
  var own = 0u;
  var covered = true;
  for (var d = i32(params.rank) - 1; d >= 0; d--) {
    let dim = params.xShape[d / 4][d % 4];
    let c = rem % dim;
    rem = rem / dim;
    if (u32(d) == params.axis) {
      own = c;
    } else {
      // gather's index may be smaller than x off the axis: such elements get no gradient.
      covered = covered && c < params.outShape[d / 4][d % 4];
      outBase += c * params.outStrides[d / 4][d % 4];
      idxBase += c * params.idxStrides[d / 4][d % 4];
    }
  }
  var acc = 0.0;
  if (covered) {
    let a = params.axis;
    let outStep = params.outStrides[a / 4u][a % 4u];
    let idxStep = params.idxStrides[a / 4u][a % 4u];
    for (var j = 0u; j < params.outAxisLen; j++) {
      if (index[idxBase + j * idxStep] == i32(own)) { acc += g[outBase + j * outStep]; }
    }
  }
  dx[i] = acc;
}
