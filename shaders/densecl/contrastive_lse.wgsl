// Per row r of a chunk of logits (q_r . queue_j, j < K) and the row's positive logit, with
// temperature tau: lse[r] = log(exp(pos/tau) + sum_j exp(l_j/tau)) by an online log-sum-exp
// (one pass, running max), and loss[r] = lse[r] - pos/tau (cross-entropy, positive at index 0).
//! WG = 64
struct Params { rows: u32, K: u32, rowOffset: u32, invTau: f32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> pos: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> loss: array<f32>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = gid.x + gid.y * nwg.x * $WGu;
  if (r >= params.rows) { return; }
  let row = params.rowOffset + r;
  let p = pos[row] * params.invTau;
  var m = p;
  var s = 1.0;
  let base = r * params.K;
  for (var j = 0u; j < params.K; j++) {
    let v = logits[base + j] * params.invTau;
    if (v > m) {
      s = s * exp(m - v) + 1.0;
      m = v;
    } else {
      s += exp(v - m);
    }
  }
  let l = m + log(s);
  lse[row] = l;
  loss[row] = l - p;
}
