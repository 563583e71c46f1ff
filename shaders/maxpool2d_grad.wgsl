// Max pooling backward without atomics: every input element gathers, in a fixed order, the
// gradients of the windows that contain it and whose recorded maximum it is. Inputs are taken
// in blocks of SH x SW that share their candidate windows: the block of rows
// [b * SH - ph, (b + 1) * SH - ph) lies in windows b - NH + 1 .. b only (NH = ceil(KH / SH)),
// and likewise for columns, so one invocation (3-D grid) loads the NH x NW candidates once and
// writes the SH x SW gradients of its block.
//! KH = 3
//! KW = 3
//! SH = 2
//! SW = 2
//! NH = 2
//! NW = 2
struct Params { H: i32, W: i32, OH: i32, OW: i32, ph: i32, pw: i32, planeBase: u32, _p0: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let bw = i32(gid.x);
  let bh = i32(gid.y);
  let h0 = bh * $SH - params.ph;
  let w0 = bw * $SW - params.pw;
  if (w0 >= params.W || h0 >= params.H) { return; }
  let plane = gid.z + params.planeBase;
  let base = plane * u32(params.OH * params.OW);
  // Candidate windows in ascending (oh, ow) order; `at` is -1 where there is none.
  var at: array<i32, $NH * $NW>;
  var g: array<f32, $NH * $NW>;
  for (var j = 0; j < $NH; j++) {
    let oh = bh - ($NH - 1) + j;
    for (var k = 0; k < $NW; k++) {
      let ow = bw - ($NW - 1) + k;
      let ok = oh >= 0 && oh < params.OH && ow >= 0 && ow < params.OW;
      let o = base + u32(select(0, oh * params.OW + ow, ok));
      at[j * $NW + k] = select(-1, idx[o], ok);
      g[j * $NW + k] = dy[o];
    }
  }
  let outBase = plane * u32(params.H * params.W);
  for (var r = 0; r < $SH; r++) {
    let ih = h0 + r;
    for (var c = 0; c < $SW; c++) {
      let iw = w0 + c;
      if (ih >= 0 && ih < params.H && iw >= 0 && iw < params.W) {
        let me = ih * params.W + iw;
        var acc = 0.0;
        for (var q = 0; q < $NH * $NW; q++) { acc += select(0.0, g[q], at[q] == me); }
        dx[outBase + u32(me)] = acc;
      }
    }
  }
}
