// Backward of the mean contrastive loss for a chunk of rows, in place on the logits:
//   P[r, j] = softmax_j * scale,  dpos[r] = (softmax_pos - 1) * scale,  scale = g / (R * tau)
// where g is the upstream gradient of the mean (read from the GPU, no readback).
//! WG = 256
struct Params { rows: u32, K: u32, rowOffset: u32, invTau: f32, invRows: f32, _p0: u32, _p1: u32, _p2: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> pos: array<f32>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> logits: array<f32>;
@group(0) @binding(5) var<storage, read_write> dpos: array<f32>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * $WGu;
  let total = params.rows * (params.K + 1u);
  if (i >= total) { return; }
  let r = i / (params.K + 1u);
  let j = i % (params.K + 1u);
  let row = params.rowOffset + r;
  let scale = g[0] * params.invRows * params.invTau;
  let l = lse[row];
  if (j == params.K) {
    dpos[row] = (exp(pos[row] * params.invTau - l) - 1.0) * scale;
  } else {
    let at = r * params.K + j;
    logits[at] = exp(logits[at] * params.invTau - l) * scale;
  }
}
