// One fused SGD step over a whole flat parameter buffer, PyTorch's rule:
//   d = gradScale * g + weightDecay * p;  buf = momentum * buf + d;  p -= lr * buf
// (buf starts at zero, which equals PyTorch's buf = d on the first step). gradScale turns a
// sum of gradients over data-parallel ranks into their average.
//! WG = 256
struct Params { n: u32, lr: f32, momentum: f32, weightDecay: f32, gradScale: f32, _p0: u32, _p1: u32, _p2: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> p: array<f32>;
@group(0) @binding(3) var<storage, read_write> buf: array<f32>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * $WGu;
  if (i >= params.n) { return; }
  let w = p[i];
  let d = params.gradScale * g[i] + params.weightDecay * w;
  let b = params.momentum * buf[i] + d;
  buf[i] = b;
  p[i] = w - params.lr * b;
}
