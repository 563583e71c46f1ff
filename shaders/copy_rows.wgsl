// Copies a block of `rows` rows of `rowLen` elements between two row-strided layouts:
// dst[r * dstStride + dstOffset + j] = src[r * srcStride + srcOffset + j]. Concatenation writes
// each input into its column range of the output; slicing (and concat's backward) reads one out.
//! WG = 256
//! T = f32
struct Params { rows: u32, rowLen: u32, srcStride: u32, srcOffset: u32, dstStride: u32, dstOffset: u32, _p0: u32, _p1: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<$T>;
@group(0) @binding(2) var<storage, read_write> dst: array<$T>;

@compute @workgroup_size($WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * $WGu;
  if (i >= params.rows * params.rowLen) { return; }
  let r = i / params.rowLen;
  let j = i % params.rowLen;
  dst[r * params.dstStride + params.dstOffset + j] = src[r * params.srcStride + params.srcOffset + j];
}
