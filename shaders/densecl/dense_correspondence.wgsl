// DenseCL's correspondence: for each image n and query cell i, the key cell j whose backbone
// feature is most cosine-similar: argmax_j <q[n,:,i], k[n,:,j]> / |k[n,:,j]| (dividing by |q_i|
// does not change the argmax over j). Ties go to the smallest j, as torch.max does.
//! WG = 64
struct Params { N: u32, C: u32, S2: u32, _pad: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> qb: array<f32>;
@group(0) @binding(2) var<storage, read> kb: array<f32>;
@group(0) @binding(3) var<storage, read_write> ind: array<i32>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * $WGu;
  if (idx >= params.N * params.S2) { return; }
  let n = idx / params.S2;
  let i = idx % params.S2;
  let base = n * params.C * params.S2;
  var best = -3.0e38;
  var bestJ = 0u;
  for (var j = 0u; j < params.S2; j++) {
    var dot = 0.0;
    var nk = 0.0;
    for (var c = 0u; c < params.C; c++) {
      let kv = kb[base + c * params.S2 + j];
      dot += qb[base + c * params.S2 + i] * kv;
      nk += kv * kv;
    }
    let sim = dot / max(sqrt(nk), 1e-12);
    if (sim > best) { best = sim; bestJ = j; }
  }
  ind[idx] = i32(bestJ);
}
