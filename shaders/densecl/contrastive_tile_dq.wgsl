// Second pass of the tiled contrastive backward: dq[r, :] = scale * sum over splits (in split
// order) of contrastive_tile.wgsl's partial sum_j P[r, j] queue[j, :], and the positive's
// gradient dpos[r] = (exp(pos/tau - lse) - 1) * scale, with scale = g / (R * tau) and g the
// upstream gradient of the mean loss (read on the GPU).
//! WG = 64
struct Params { R: u32, D4: u32, splits: u32, invTau: f32, invRows: f32, _p0: u32, _p1: u32, _p2: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> pos: array<f32>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read> part: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> dq: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> dpos: array<f32>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * $WGu;
  let R = params.R;
  let D4 = params.D4;
  if (idx >= R * D4) { return; }
  let r = idx / D4;
  let scale = g[0] * params.invRows * params.invTau;
  var acc = vec4<f32>(0.0);
  for (var s = 0u; s < params.splits; s++) { acc += part[s * R * D4 + idx]; }
  dq[idx] = acc * scale;
  if (idx % D4 == 0u) { dpos[r] = (exp(pos[r] * params.invTau - lse[r]) - 1.0) * scale; }
}
