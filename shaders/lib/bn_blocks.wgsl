// The cut of batchnorm_apply and batchnorm_grad_input: each (sample, channel) plane of hw
// elements is `blocks` blocks of ITEMS consecutive elements, one invocation each, so the index
// arithmetic (integer divisions, slow on CPU drivers) is paid once per block; `total` blocks in
// all, planes ordered (group, sample in group (per), channel (C)).
struct Params { C: u32, per: u32, hw: u32, blocks: u32, total: u32, _p0: u32, _p1: u32, _p2: u32, }
@group(0) @binding(0) var<uniform> params: Params;

// Block t's elements [start, end) and the index of its (group, channel) coefficients.
struct Block { start: u32, end: u32, coef: u32, }

fn block_at(t: u32) -> Block {
  let plane = t / params.blocks;
  let c = plane % params.C;
  let g = plane / (params.C * params.per);
  let r0 = (t - plane * params.blocks) * $ITEMSu;
  let base = plane * params.hw;
  return Block(base + r0, base + min(r0 + $ITEMSu, params.hw), g * params.C + c);
}
