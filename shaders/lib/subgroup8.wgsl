// What the 8-wide subgroup kernels share (lavapipe on AVX2: a workgroup of 8 invocations is one
// subgroup): the invocation's lane, which main sets first from @builtin(subgroup_invocation_id),
// and share8, which hands every lane the 8 lanes' values of v (the broadcast lane must be a
// constant, hence the list). The including kernel starts with `enable subgroups;`.
var<private> lane8: u32;

fn share8(v: vec4<f32>) -> array<vec4<f32>, 8> {
  return array<vec4<f32>, 8>(
    subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u),
    subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u), subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u));
}
