// The source row window of the per-lane and subgroup convolution kernels (conv2d/gemm*.wgsl,
// conv2d/wgrad*.wgsl): WIN values of one source row, every WSTEP-th column from col0, loaded once
// and shared by all tap columns. With PAD, positions outside the h x w plane read as zero.
// $WIN_SRC names the storage array the window reads.
//! WIN = 10
//! WSTEP = 1
//! PAD = true
//! WIN_SRC = S
alias Win = array<f32, $WIN>;

// plane: the first row of the source plane (image x channel) in rows; row may lie outside [0, h).
fn loadWindow(win: ptr<function, Win>, plane: i32, row: i32, col0: i32, h: i32, w: i32) {
  let rowBase = (plane + row) * w + col0;
  for (var i = 0u; i < $WINu; i++) {
    let at = rowBase + i32(i * $WSTEPu);
    if ($PAD) {
      let col = col0 + i32(i * $WSTEPu);
      let ok = row >= 0 && row < h && col >= 0 && col < w;
      (*win)[i] = select(0.0, $WIN_SRC[u32(max(at, 0))], ok);
    } else {
      (*win)[i] = $WIN_SRC[u32(at)];
    }
  }
}
