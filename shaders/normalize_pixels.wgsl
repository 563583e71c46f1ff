// Images as bytes (0..255, four per u32 word, little-endian) to normalised f32 values:
// y = (byte / 255 - mean[c]) / std[c], c = (i / plane) % channels. Uploading bytes instead of
// floats cuts a step's input transfer by 4x; this kernel does the normalisation on the GPU.
//! WG = 256
struct Params { words: u32, n: u32, plane: u32, channels: u32, mean: vec4<f32>, inv_std: vec4<f32>, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let w = gid.x + gid.y * nwg.x * $WGu;
  if (w >= params.words) { return; }
  let word = x[w];
  for (var j = 0u; j < 4u; j++) {
    let i = 4u * w + j;
    if (i >= params.n) { return; }
    let c = (i / params.plane) % params.channels;
    let byte = f32((word >> (8u * j)) & 0xffu);
    y[i] = (byte / 255.0 - params.mean[c]) * params.inv_std[c];
  }
}
