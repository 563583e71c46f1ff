// The cut of batch norm's elementwise passes (apply, input gradient): each (sample, channel)
// plane of hw elements is `blocks` blocks of ITEMS consecutive elements, one invocation each, so
// the index arithmetic (integer divisions, slow on CPU drivers) is paid once per block. The plain
// passes number all `total` blocks, planes ordered (group, sample in group (per), channel (C));
// the merging passes (a workgroup per slice of a (group, channel)) number the blocks of one
// (group, channel) and use the rest of Params for the merge of chunk partials (chunks of
// `chunk` elements per plane) and what follows it.
struct Params {
  C: u32, per: u32, hw: u32, blocks: u32,
  total: u32, G: u32, chunks: u32, chunk: u32,
  momentum: f32, eps: f32, count: f32, train: u32,
}
@group(0) @binding(0) var<uniform> params: Params;

// Block t's elements [start, end) and the index of its (group, channel) coefficients.
struct Block { start: u32, end: u32, coef: u32, }

fn plane_block(plane: u32, i: u32, coef: u32) -> Block {
  let r0 = i * $ITEMSu;
  let base = plane * params.hw;
  return Block(base + r0, base + min(r0 + $ITEMSu, params.hw), coef);
}

/** Block t of all the planes. */
fn block_at(t: u32) -> Block {
  let plane = t / params.blocks;
  let c = plane % params.C;
  let g = plane / (params.C * params.per);
  return plane_block(plane, t - plane * params.blocks, g * params.C + c);
}

/** Block i of group g of channel c (i < per * blocks). */
fn channel_block(g: u32, c: u32, i: u32) -> Block {
  let s = i / params.blocks;
  return plane_block((g * params.per + s) * params.C + c, i - s * params.blocks, g * params.C + c);
}
