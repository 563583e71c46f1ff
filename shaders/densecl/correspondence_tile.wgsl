// DenseCL's correspondence, tiled: for each image n and query cell i, the key cell j maximising
// <q[n,:,i], k[n,:,j]> / max(|k[n,:,j]|, 1e-12) (as dense_correspondence.wgsl; ties go to the
// smallest j, as torch.max does). A workgroup owns 16 query cells of one image and streams the
// key cells through in tiles of 16, the channels in chunks of 16 staged in workgroup memory
// (coalesced along the cells); invocation (tx, ty) accumulates the dot product of query cell ty
// with key cell tx and that key's squared norm, in channel order. Each invocation keeps its
// best key over the tiles; the 16 of a query cell are merged in key order at the end.
struct Params { N: u32, C: u32, S2: u32, _pad: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> qb: array<f32>;
@group(0) @binding(2) var<storage, read> kb: array<f32>;
@group(0) @binding(3) var<storage, read_write> ind: array<i32>;

const T = 16u;
var<workgroup> qs: array<f32, 256>;
var<workgroup> ks: array<f32, 256>;
var<workgroup> bestSim: array<f32, 256>;
var<workgroup> bestKey: array<u32, 256>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let C = params.C;
  let S2 = params.S2;
  let n = wid.y;
  let i0 = wid.x * T;
  let tx = lid.x;
  let ty = lid.y;
  let base = n * C * S2;
  // Staging: channel ty of the chunk, cell tx of the tile (clamped; masked later).
  let qCell = min(i0 + tx, S2 - 1u);
  var best = -3.0e38;
  var bestJ = 0u;
  for (var j0 = 0u; j0 < S2; j0 += T) {
    let kCell = min(j0 + tx, S2 - 1u);
    var dotv = 0.0;
    var nk = 0.0;
    for (var c0 = 0u; c0 < C; c0 += T) {
      let c = c0 + ty;
      var qv = 0.0;
      var kv = 0.0;
      if (c < C) {
        qv = qb[base + c * S2 + qCell];
        kv = kb[base + c * S2 + kCell];
      }
      workgroupBarrier();
      qs[ty * T + tx] = qv;
      ks[ty * T + tx] = kv;
      workgroupBarrier();
      for (var cc = 0u; cc < T; cc++) {
        let k = ks[cc * T + tx];
        dotv += qs[cc * T + ty] * k;
        nk += k * k;
      }
    }
    let sim = dotv / max(sqrt(nk), 1e-12);
    if (j0 + tx < S2 && sim > best) {
      best = sim;
      bestJ = j0 + tx;
    }
  }
  bestSim[ty * T + tx] = best;
  bestKey[ty * T + tx] = bestJ;
  workgroupBarrier();
  let i = i0 + tx;
  if (ty == 0u && i < S2) {
    // Invocation x's keys are x, x + 16, ...: take the largest, the smallest key on ties.
    var b = -3.0e38;
    var bj = 0u;
    for (var x = 0u; x < T; x++) {
      let s = bestSim[tx * T + x];
      let j = bestKey[tx * T + x];
      if (s > b || (s == b && j < bj)) {
        b = s;
        bj = j;
      }
    }
    ind[n * S2 + i] = i32(bj);
  }
}
