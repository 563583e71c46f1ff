// Batch norm's output over one block (lib/bn_blocks.wgsl): y = x * scale + shift with the
// statistics st = (mean, invstd, scale, shift), plus the shortcut with RESIDUAL, then a ReLU
// with RELU. The including shader declares x, res and y (arrays of $T).
fn apply_block(b: Block, st: vec4<f32>) {
  for (var r = b.start; r < b.end; r++) {
    var v = x[r] * $T(st.z) + $T(st.w);
    if ($RESIDUAL) { v += res[r]; }
    if ($RELU) { v = max(v, $T(0.0)); }
    y[r] = v;
  }
}
