// The gradient dz at element r that batch norm's backward passes work with: dy, plus dy2 with
// DY2 (the output was used twice), masked by y > 0 with RELU (a ReLU fused into the forward).
// The including shader declares dy, dy2 and y, arrays of $T, and the RELU and DY2 defaults.
fn grad_dz(r: u32) -> $T {
  var dz = dy[r];
  if ($DY2) { dz += dy2[r]; }
  if ($RELU) { dz = select($T(0.0), dz, y[r] > $T(0.0)); }
  return dz;
}
