// Batch norm's input gradient over one block (lib/bn_blocks.wgsl): dx = a * dz + b * (x - mean) + d
// with k = (a, b, mean, d) and dz of lib/bn_grad_dz.wgsl; with RESIDUAL dz is also the gradient
// of the forward's shortcut, written to dres. The including shader declares x, dx and dres (arrays of $T).
fn grad_input_block(b: Block, k: vec4<f32>) {
  for (var r = b.start; r < b.end; r++) {
    let dz = grad_dz(r);
    if ($RESIDUAL) { dres[r] = dz; }
    dx[r] = $T(k.x) * dz + $T(k.y) * (x[r] - $T(k.z)) + $T(k.w);
  }
}
