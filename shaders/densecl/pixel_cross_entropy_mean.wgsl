// The reduced pixel loss from sums = [loss sum, counted pixels]: the mean over counted pixels (0
// when every pixel is ignored), or the sum.
struct Params { mean: u32, _p0: u32, _p1: u32, _p2: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> sums: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(1)
fn main() {
  if (params.mean == 1u) {
    out[0] = sums[0] / max(sums[1], 1.0);
  } else {
    out[0] = sums[0];
  }
}
