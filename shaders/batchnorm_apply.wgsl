// Batch norm, pass 3: y = x * scale + shift with the (group, channel) coefficients, plus an
// optional residual (a ResNet block's shortcut), then an optional ReLU. Each invocation handles ITEMS consecutive elements of type T of one plane, so
// the index arithmetic (integer divisions, slow on CPU drivers) is paid once per ITEMS.
//! T = f32
//! ITEMS = 16
//! RELU = false
//! RESIDUAL = false
//! WG = 256
struct Params { C: u32, per: u32, hw: u32, blocks: u32, total: u32, _p0: u32, _p1: u32, _p2: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<$T>;
@group(0) @binding(2) var<storage, read> stats: array<vec4<f32>>;
// The shortcut added before the ReLU; any buffer of x's size when RESIDUAL is false.
@group(0) @binding(3) var<storage, read> res: array<$T>;
@group(0) @binding(4) var<storage, read_write> y: array<$T>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * $WGu;
  if (t >= params.total) { return; }
  let plane = t / params.blocks;
  let c = plane % params.C;
  let g = plane / (params.C * params.per);
  let st = stats[g * params.C + c];
  let r0 = (t - plane * params.blocks) * $ITEMSu;
  let r1 = min(r0 + $ITEMSu, params.hw);
  let base = plane * params.hw;
  for (var r = base + r0; r < base + r1; r++) {
    var v = x[r] * $T(st.z) + $T(st.w);
    if ($RESIDUAL) { v += res[r]; }
    if ($RELU) { v = max(v, $T(0.0)); }
    y[r] = v;
  }
}
