// Weight [O, C, KH, KW] -> A[cin, kh, kw, m] for the implicit-GEMM core, with the m axis
// zero-padded to MP (a multiple of the register tile) so the core's vec4 reads never need a
// bounds check. TRANS = false: cin = c, m = o (forward); TRANS = true: cin = o, m = c (input
// gradient). The weight is small next to the activations, so this copy is cheap.
//! TRANS = false
struct Params { O: u32, C: u32, KHW: u32, MP: u32, total: u32, _p0: u32, _p1: u32, _p2: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read_write> A: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 256u;
  if (idx >= params.total) { return; }
  let m = idx % params.MP;
  let rest = idx / params.MP;
  let k = rest % params.KHW;
  let cin = rest / params.KHW;
  var o = m;
  var c = cin;
  if ($TRANS) {
    o = cin;
    c = m;
  }
  var v = 0.0;
  if (o < params.O && c < params.C) { v = W[(o * params.C + c) * params.KHW + k]; }
  A[idx] = v;
}
