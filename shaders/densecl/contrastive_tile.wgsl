// The contrastive loss against a queue, tiled like a GEMM so that no R x K logits buffer exists.
// A workgroup owns a block of 64 rows of q and one split of the queue's columns, and streams that
// split through workgroup memory 64 columns at a time: each tile's logits q_r . queue_j come
// from 16-wide chunks of D staged in workgroup memory (vec4 loads, padded rows so neighbouring
// invocations hit different banks), each invocation computing a 4 x 4 register tile (rows
// ty + 16i, columns tx + 16c).
// Forward (BACKWARD = false): each invocation keeps an online (max, sum of exp) per own row over
// its own columns; at the end the 16 invocations of a row are merged in a fixed order and the
// split's pair is written to part[split * R + r].xy (contrastive_tile_merge.wgsl adds the
// positive and merges the splits).
// Backward (BACKWARD = true): with the forward's lse, P = exp(logit - lse) of each tile goes to
// workgroup memory and the invocation accumulates sum_j P[r, j] * queue[j, :] for its 4 rows
// and 2 vec4s of D (d4 = tx and tx + 16) in registers; the split's unscaled partial dq goes to
// part[(split * R + r) * D4 + d4] (contrastive_tile_dq.wgsl sums the splits in order).
// Needs D % 4 == 0 and D <= 128. Rows past R and columns past K are clamped on load and masked
// afterwards. No atomics: results are the same run to run. Register tiles are named variables,
// not dynamically indexed arrays, which a compiler that does not unroll would put in memory.
//! BACKWARD = false
struct Params { R: u32, K: u32, D4: u32, tilesPerSplit: u32, invTau: f32, _p0: u32, _p1: u32, _p2: u32, }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> queue: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> part: array<vec4<f32>>;

const BR = 64u;
const BK = 64u;
// A staged row: 4 vec4s of D and one of padding.
const STRIDE = 5u;
const B_AT = 320u;
const SENTINEL = -3.0e38;

// Staged q chunk at [0, 320), queue chunk at [320, 640); reused for P [16 ty][64 columns] of
// vec4s over the 4 rows (backward) and for the per-row merge (forward).
var<workgroup> sm: array<vec4<f32>, 1024>;

// One row's running (max, sum of exp) updated with 4 logits, of which `valid` count.
fn online(ms: vec2<f32>, v: vec4<f32>, valid: vec4<bool>) -> vec2<f32> {
  let w = select(vec4<f32>(SENTINEL), v, valid);
  let mn = max(ms.x, max(max(w.x, w.y), max(w.z, w.w)));
  let e = select(vec4<f32>(0.0), exp(v - mn), valid);
  return vec2<f32>(mn, ms.y * exp(ms.x - mn) + (e.x + e.y + e.z + e.w));
}

fn logits4(a: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(dot(a, b0), dot(a, b1), dot(a, b2), dot(a, b3));
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let tx = tid % 16u;
  let ty = tid / 16u;
  let R = params.R;
  let K = params.K;
  let D4 = params.D4;
  let invTau = params.invTau;
  let row0 = wid.x * BR;
  let split = wid.y;
  let tBegin = split * params.tilesPerSplit;
  let tEnd = min((K + BK - 1u) / BK, tBegin + params.tilesPerSplit);
  // What this invocation stages per chunk: vec4 ldD of row ldRow of q and of the queue tile.
  let ldRow = tid / 4u;
  let ldD = tid % 4u;
  let qBase = min(row0 + ldRow, R - 1u) * D4;

  // Forward: (max, sum) of rows ty + 16i. Backward: lse of those rows, dq accumulators
  // acc<i><v> for row ty + 16i and d4 = tx + 16v.
  var ms0 = vec2<f32>(SENTINEL, 0.0);
  var ms1 = ms0;
  var ms2 = ms0;
  var ms3 = ms0;
  var lseRow = vec4<f32>(0.0);
  if ($BACKWARD) {
    lseRow = vec4<f32>(lse[min(row0 + ty, R - 1u)], lse[min(row0 + ty + 16u, R - 1u)],
                       lse[min(row0 + ty + 32u, R - 1u)], lse[min(row0 + ty + 48u, R - 1u)]);
  }
  var acc00 = vec4<f32>(0.0);
  var acc01 = acc00;
  var acc10 = acc00;
  var acc11 = acc00;
  var acc20 = acc00;
  var acc21 = acc00;
  var acc30 = acc00;
  var acc31 = acc00;

  for (var t = tBegin; t < tEnd; t++) {
    let col0 = t * BK;
    let kBase = min(col0 + ldRow, K - 1u) * D4;
    // Logits of rows ty + 16i (l<i>) and columns tx + 16c (component c).
    var l0 = vec4<f32>(0.0);
    var l1 = l0;
    var l2 = l0;
    var l3 = l0;
    // The next chunk's loads are issued before this chunk's arithmetic, to overlap their latency.
    var a = vec4<f32>(0.0);
    var b = vec4<f32>(0.0);
    if (ldD < D4) {
      a = q[qBase + ldD];
      b = queue[kBase + ldD];
    }
    for (var d0 = 0u; d0 < D4; d0 += 4u) {
      workgroupBarrier();
      sm[ldRow * STRIDE + ldD] = a;
      sm[B_AT + ldRow * STRIDE + ldD] = b;
      workgroupBarrier();
      let next = d0 + 4u + ldD;
      a = vec4<f32>(0.0);
      b = vec4<f32>(0.0);
      if (next < D4) {
        a = q[qBase + next];
        b = queue[kBase + next];
      }
      for (var k = 0u; k < 4u; k++) {
        let b0 = sm[B_AT + tx * STRIDE + k];
        let b1 = sm[B_AT + (tx + 16u) * STRIDE + k];
        let b2 = sm[B_AT + (tx + 32u) * STRIDE + k];
        let b3 = sm[B_AT + (tx + 48u) * STRIDE + k];
        l0 += logits4(sm[ty * STRIDE + k], b0, b1, b2, b3);
        l1 += logits4(sm[(ty + 16u) * STRIDE + k], b0, b1, b2, b3);
        l2 += logits4(sm[(ty + 32u) * STRIDE + k], b0, b1, b2, b3);
        l3 += logits4(sm[(ty + 48u) * STRIDE + k], b0, b1, b2, b3);
      }
    }
    let valid = vec4<bool>(col0 + tx < K, col0 + tx + 16u < K, col0 + tx + 32u < K, col0 + tx + 48u < K);
    if (!$BACKWARD) {
      ms0 = online(ms0, l0 * invTau, valid);
      ms1 = online(ms1, l1 * invTau, valid);
      ms2 = online(ms2, l2 * invTau, valid);
      ms3 = online(ms3, l3 * invTau, valid);
    } else {
      workgroupBarrier();
      // P of column tx + 16c for the 4 rows, one vec4 per (ty, column): neighbouring
      // invocations store to neighbouring vec4s, and a row's readers share one address.
      let zero = vec4<f32>(0.0);
      let pAt = ty * BK + tx;
      sm[pAt] = select(zero, exp(vec4<f32>(l0.x, l1.x, l2.x, l3.x) * invTau - lseRow), valid.x);
      sm[pAt + 16u] = select(zero, exp(vec4<f32>(l0.y, l1.y, l2.y, l3.y) * invTau - lseRow), valid.y);
      sm[pAt + 32u] = select(zero, exp(vec4<f32>(l0.z, l1.z, l2.z, l3.z) * invTau - lseRow), valid.z);
      sm[pAt + 48u] = select(zero, exp(vec4<f32>(l0.w, l1.w, l2.w, l3.w) * invTau - lseRow), valid.w);
      workgroupBarrier();
      let cols = min(BK, K - col0);
      let d1 = tx + 16u;
      for (var j = 0u; j < cols; j++) {
        let p = sm[ty * BK + j];
        let base = (col0 + j) * D4;
        if (tx < D4) {
          let kv = queue[base + tx];
          acc00 = fma(vec4<f32>(p.x), kv, acc00);
          acc10 = fma(vec4<f32>(p.y), kv, acc10);
          acc20 = fma(vec4<f32>(p.z), kv, acc20);
          acc30 = fma(vec4<f32>(p.w), kv, acc30);
        }
        if (d1 < D4) {
          let kv = queue[base + d1];
          acc01 = fma(vec4<f32>(p.x), kv, acc01);
          acc11 = fma(vec4<f32>(p.y), kv, acc11);
          acc21 = fma(vec4<f32>(p.z), kv, acc21);
          acc31 = fma(vec4<f32>(p.w), kv, acc31);
        }
      }
    }
  }

  if (!$BACKWARD) {
    // Merge the 16 invocations of each row in a fixed order: maxima at [0, 256), sums at
    // [256, 512), row r's 16 values in vec4s 4r .. 4r + 3.
    workgroupBarrier();
    let at = ty * 16u + tx;
    sm[at / 4u][at % 4u] = ms0.x;
    sm[256u + at / 4u][at % 4u] = ms0.y;
    sm[64u + at / 4u][at % 4u] = ms1.x;
    sm[320u + at / 4u][at % 4u] = ms1.y;
    sm[128u + at / 4u][at % 4u] = ms2.x;
    sm[384u + at / 4u][at % 4u] = ms2.y;
    sm[192u + at / 4u][at % 4u] = ms3.x;
    sm[448u + at / 4u][at % 4u] = ms3.y;
    workgroupBarrier();
    let r = row0 + tid;
    if (tid < BR && r < R) {
      var mx = SENTINEL;
      for (var x = 0u; x < 4u; x++) {
        let v = sm[tid * 4u + x];
        mx = max(mx, max(max(v.x, v.y), max(v.z, v.w)));
      }
      var sum = 0.0;
      for (var x = 0u; x < 4u; x++) {
        let e = sm[256u + tid * 4u + x] * exp(sm[tid * 4u + x] - mx);
        sum += e.x + e.y + e.z + e.w;
      }
      part[split * R + r] = vec4<f32>(mx, sum, 0.0, 0.0);
    }
  } else {
    let out = split * R;
    let d1 = tx + 16u;
    if (row0 + ty < R) { store(out + row0 + ty, tx, d1, acc00, acc01); }
    if (row0 + ty + 16u < R) { store(out + row0 + ty + 16u, tx, d1, acc10, acc11); }
    if (row0 + ty + 32u < R) { store(out + row0 + ty + 32u, tx, d1, acc20, acc21); }
    if (row0 + ty + 48u < R) { store(out + row0 + ty + 48u, tx, d1, acc30, acc31); }
  }
}

fn store(row: u32, d0: u32, d1: u32, v0: vec4<f32>, v1: vec4<f32>) {
  let D4 = params.D4;
  if (d0 < D4) { part[row * D4 + d0] = v0; }
  if (d1 < D4) { part[row * D4 + d1] = v1; }
}
