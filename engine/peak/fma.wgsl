// FMA-bound kernel for the machine's peak FLOP/s: 8 independent vec4 FMA chains per invocation
// (enough independent work to hide FMA latency), no memory traffic but one store at the end so
// the compiler cannot drop the loop. FLOPs = invocations * iters * 8 chains * 4 lanes * 2.
//! WG = 64
struct Params { iters: u32, seed: f32, _p0: u32, _p1: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * $WGu;
  let x = f32(i) * params.seed;
  var a0 = vec4<f32>(x, x + 1.0, x + 2.0, x + 3.0);
  var a1 = a0 + 0.1;
  var a2 = a0 + 0.2;
  var a3 = a0 + 0.3;
  var a4 = a0 + 0.4;
  var a5 = a0 + 0.5;
  var a6 = a0 + 0.6;
  var a7 = a0 + 0.7;
  let m = vec4<f32>(0.999);
  let c = vec4<f32>(0.001);
  for (var k = 0u; k < params.iters; k++) {
    a0 = fma(a0, m, c);
    a1 = fma(a1, m, c);
    a2 = fma(a2, m, c);
    a3 = fma(a3, m, c);
    a4 = fma(a4, m, c);
    a5 = fma(a5, m, c);
    a6 = fma(a6, m, c);
    a7 = fma(a7, m, c);
  }
  out[i] = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
}
