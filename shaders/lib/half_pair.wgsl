// Elements 2i and 2i + 1 of x (f32, params.n of them) times `scale` as one vec2<f16>, so that
// every f16 store is a whole 4-byte word; the pad after an odd count is 0.
fn halfPair(i: u32, scale: f32) -> vec2<f16> {
  let e = 2u * i;
  let second = select(0.0, x[e + 1u], e + 1u < params.n);
  return vec2<f16>(vec2<f32>(x[e], second) * scale);
}
