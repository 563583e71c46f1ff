// Where element idx of a re-laid conv weight comes from in W [O, C, KHW] (flat index), or -1
// for zero padding. m (padded to MP) runs fastest; tapMajor: [khw, cin (padded to CINP), m], else
// [cin, khw, m]; trans: cin = o, m = c (the input gradient's operand), else cin = c, m = o.
fn relayoutSource(idx: u32, O: u32, C: u32, KHW: u32, MP: u32, CINP: u32, tapMajor: bool, trans: bool) -> i32 {
  let m = idx % MP;
  let rest = idx / MP;
  var k = rest % KHW;
  var cin = rest / KHW;
  if (tapMajor) {
    cin = rest % CINP;
    k = rest / CINP;
  }
  var o = m;
  var c = cin;
  if (trans) {
    o = cin;
    c = m;
  }
  if (o >= O || c >= C) { return -1; }
  return i32((o * C + c) * KHW + k);
}
