// Second pass of the tiled contrastive forward: per row, the positive logit pos/tau and the
// splits' (max, sum of exp) pairs from contrastive_tile.wgsl merged in split order into
// lse[r] = log(exp(pos/tau) + sum_j exp(l_j)) and loss[r] = lse[r] - pos/tau.
//! WG = 64
struct Params { R: u32, splits: u32, invTau: f32, _p0: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> pos: array<f32>;
@group(0) @binding(2) var<storage, read> part: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> loss: array<f32>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = gid.x + gid.y * nwg.x * $WGu;
  let R = params.R;
  if (r >= R) { return; }
  let p = pos[r] * params.invTau;
  var mx = p;
  for (var s = 0u; s < params.splits; s++) { mx = max(mx, part[s * R + r].x); }
  // A NaN anywhere reaches the sum through exp, whatever max made of it.
  var sum = exp(p - mx);
  for (var s = 0u; s < params.splits; s++) {
    let v = part[s * R + r];
    sum += v.y * exp(v.x - mx);
  }
  let l = mx + log(sum);
  lse[r] = l;
  loss[r] = l - p;
}
