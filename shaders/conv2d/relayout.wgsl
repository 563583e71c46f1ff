// Weight [O, C, KH, KW] -> A for the implicit-GEMM kernels, with the m axis zero-padded to MP (a
// multiple of the tile) so their vec4 reads never need a bounds check. TRANS = false: cin = c,
// m = o (forward); TRANS = true: cin = o, m = c (input gradient).
// TAP_MAJOR = false: A[cin, kh, kw, m] (conv2d_gemm*.wgsl); true: A[kh, kw, cin, m] with cin
// zero-padded to CINP (tiled.wgsl, whose K slices run over the channels of one tap).
// AT: A's element type (f16: the mixed-precision operand, rounded to nearest). Two elements per
// invocation (MP is even), so an f16 A is written in whole 4-byte words.
// One weight per dispatch; relayout_pack.wgsl does every weight of a parameter store at once.
//! TRANS = false
//! TAP_MAJOR = false
//! AT = f32
//#include "lib/conv2d_relayout.wgsl"
struct Params { O: u32, C: u32, KHW: u32, MP: u32, total: u32, CINP: u32, _p1: u32, _p2: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read_write> A: array<vec2<$AT>>;

fn value(idx: u32) -> f32 {
  let s = relayoutSource(idx, params.O, params.C, params.KHW, params.MP, params.CINP, $TAP_MAJOR, $TRANS);
  return select(0.0, W[u32(max(s, 0))], s >= 0);
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let pair = gid.x + gid.y * nwg.x * 256u;
  let idx = 2u * pair;
  if (idx >= params.total) { return; }
  A[pair] = vec2<$AT>(vec2<f32>(value(idx), value(idx + 1u)));
}
