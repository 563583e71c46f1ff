// (count, mean, M2) of x[r0..r1) in one read, summing d = x - K and d^2 about a shift K taken
// from the first element (the mean of its LANES values for vec4), so M2 = sum d^2 - (sum d)^2 / n
// cancels only as much as the chunk's own spread allows. The including shader declares
// x: array<$T> and hsum (the sum of a $T's lanes).
fn chunk_moments(r0: u32, r1: u32) -> vec3<f32> {
  let k = hsum(x[r0]) / f32($LANESu);
  let K = $T(k);
  var s = $T(0.0);
  var q = $T(0.0);
  for (var r = r0; r < r1; r++) {
    let d = x[r] - K;
    s += d;
    q += d * d;
  }
  let count = f32((r1 - r0) * $LANESu);
  let s1 = hsum(s);
  return vec3<f32>(count, k + s1 / count, max(hsum(q) - s1 * s1 / count, 0.0));
}
