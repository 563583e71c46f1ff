// Backward of the bilinear resize without atomics: one invocation per INPUT element gathers
// dx[ih, iw] = sum over the output rows oh that read row ih (weight a) and output columns ow that
// read column iw (weight b) of a * b * dy[oh, ow], in a fixed order (deterministic).
// The host inverts the forward taps into lists per input row and column, in one table:
// words [0, IH] are row offsets, [IH + 1, IH + IW + 1] column offsets (absolute word positions),
// then the lists, each entry [o, bits(weight)].
struct Params { IH: u32, IW: u32, OH: u32, OW: u32, planeBase: u32, _p0: u32, _p1: u32, _p2: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> lists: array<u32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let iw = gid.x;
  let ih = gid.y;
  if (iw >= params.IW || ih >= params.IH) { return; }
  let plane = gid.z + params.planeBase;
  let colAt = params.IH + 1u + iw;
  let c0 = lists[colAt];
  let c1 = lists[colAt + 1u];
  let base = plane * params.OH * params.OW;
  var acc = 0.0;
  for (var r = lists[ih]; r < lists[ih + 1u]; r += 2u) {
    let row = base + lists[r] * params.OW;
    var rowAcc = 0.0;
    for (var c = c0; c < c1; c += 2u) {
      rowAcc += bitcast<f32>(lists[c + 1u]) * dy[row + lists[c]];
    }
    acc += bitcast<f32>(lists[r + 1u]) * rowAcc;
  }
  dx[(plane * params.IH + ih) * params.IW + iw] = acc;
}
