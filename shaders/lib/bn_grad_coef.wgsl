// What batch norm's backward makes of a (group, channel)'s sums s = sum(dz) and
// sx = sum(dz * (x - mean)): the coefficients of dx = a * dz + b * (x - mean) + d and the group's
// share of the weight and bias gradients. With batch statistics over m = count values:
//   dx = gamma * invstd * (dz - mean(dz) - xhat * mean(dz * xhat)),  xhat = (x - mean) * invstd;
// with running statistics (eval, train = 0) they are constants and dx = gamma * invstd * dz.
// The including shader declares weight, dweight, dbias (array<f32>), stats
// (array<vec4<f32>>, the forward's (mean, invstd, ...)), ACCUMULATE and params with C, count and train.
struct GroupGrad { coef: vec4<f32>, dw: f32, db: f32, }

fn grad_coef(c: u32, g: u32, sums: vec2<f32>) -> GroupGrad {
  let st = stats[g * params.C + c];
  let invstd = st.y;
  let sxhat = sums.y * invstd;
  let a = weight[c] * invstd;
  var k = vec4<f32>(a, 0.0, st.x, 0.0);
  if (params.train != 0u) {
    k = vec4<f32>(a, -a * invstd * sxhat / params.count, st.x, -a * sums.x / params.count);
  }
  return GroupGrad(k, sxhat, sums.x);
}

/** Writes channel c's weight and bias gradients (summed over groups), added to what dweight / dbias hold with ACCUMULATE (the parameters' .grad). */
fn write_param_grads(c: u32, dw: f32, db: f32) {
  if ($ACCUMULATE) {
    dweight[c] = dweight[c] + dw;
    dbias[c] = dbias[c] + db;
  } else {
    dweight[c] = dw;
    dbias[c] = db;
  }
}
