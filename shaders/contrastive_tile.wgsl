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
// and DV vec4s of D (d4 = tx + 16v) in registers; the split's unscaled partial dq goes to
// part[(split * R + r) * D4 + d4] (contrastive_tile_dq.wgsl sums the splits in order).
// Needs D % 4 == 0 and D4 = D / 4 <= 16 * DV. Rows past R and columns past K are clamped on
// load and masked afterwards. No atomics: results are the same run to run.
//! BACKWARD = false
//! DV = 2
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
const DV = $DVu;

// Staged q chunk at [0, 320), queue chunk at [320, 640); reused for P [64 columns][64 rows]
// (backward) and for the per-row merge (forward).
var<workgroup> sm: array<vec4<f32>, 1024>;

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

  var m: array<f32, 4>;
  var s: array<f32, 4>;
  var lseRow: array<f32, 4>;
  var acc: array<vec4<f32>, 4 * DV>;
  for (var i = 0u; i < 4u; i++) {
    m[i] = SENTINEL;
    if ($BACKWARD) { lseRow[i] = lse[min(row0 + ty + 16u * i, R - 1u)]; }
  }

  for (var t = tBegin; t < tEnd; t++) {
    let col0 = t * BK;
    let kBase = min(col0 + ldRow, K - 1u) * D4;
    // Explicitly zeroed: lavapipe kept the previous tile's values in a bare declaration.
    var dots = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    for (var d0 = 0u; d0 < D4; d0 += 4u) {
      let d = d0 + ldD;
      var a = vec4<f32>(0.0);
      var b = vec4<f32>(0.0);
      if (d < D4) {
        a = q[qBase + d];
        b = queue[kBase + d];
      }
      workgroupBarrier();
      sm[ldRow * STRIDE + ldD] = a;
      sm[B_AT + ldRow * STRIDE + ldD] = b;
      workgroupBarrier();
      for (var k = 0u; k < 4u; k++) {
        let b0 = sm[B_AT + tx * STRIDE + k];
        let b1 = sm[B_AT + (tx + 16u) * STRIDE + k];
        let b2 = sm[B_AT + (tx + 32u) * STRIDE + k];
        let b3 = sm[B_AT + (tx + 48u) * STRIDE + k];
        for (var i = 0u; i < 4u; i++) {
          let av = sm[(ty + 16u * i) * STRIDE + k];
          dots[i] += vec4<f32>(dot(av, b0), dot(av, b1), dot(av, b2), dot(av, b3));
        }
      }
    }
    let valid = vec4<bool>(col0 + tx < K, col0 + tx + 16u < K, col0 + tx + 32u < K, col0 + tx + 48u < K);
    if (!$BACKWARD) {
      for (var i = 0u; i < 4u; i++) {
        let v = dots[i] * invTau;
        let w = select(vec4<f32>(SENTINEL), v, valid);
        let mn = max(m[i], max(max(w.x, w.y), max(w.z, w.w)));
        let e = select(vec4<f32>(0.0), exp(v - mn), valid);
        s[i] = s[i] * exp(m[i] - mn) + (e.x + e.y + e.z + e.w);
        m[i] = mn;
      }
    } else {
      workgroupBarrier();
      // P of column tx + 16c, rows ty + 16i, as one vec4 per (column, ty).
      for (var c = 0u; c < 4u; c++) {
        var p = vec4<f32>(0.0);
        if (valid[c]) {
          for (var i = 0u; i < 4u; i++) { p[i] = exp(dots[i][c] * invTau - lseRow[i]); }
        }
        sm[(tx + 16u * c) * 16u + ty] = p;
      }
      workgroupBarrier();
      let cols = min(BK, K - col0);
      for (var j = 0u; j < cols; j++) {
        let p = sm[j * 16u + ty];
        let base = (col0 + j) * D4;
        for (var v = 0u; v < DV; v++) {
          let d = tx + 16u * v;
          if (d < D4) {
            let kv = queue[base + d];
            for (var i = 0u; i < 4u; i++) { acc[i * DV + v] = fma(vec4<f32>(p[i]), kv, acc[i * DV + v]); }
          }
        }
      }
    }
  }

  if (!$BACKWARD) {
    // Merge the 16 invocations of each row in a fixed order.
    workgroupBarrier();
    for (var i = 0u; i < 4u; i++) {
      let at = (ty + 16u * i) * 16u + tx;
      sm[at / 4u][at % 4u] = m[i];
      sm[256u + at / 4u][at % 4u] = s[i];
    }
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
    for (var i = 0u; i < 4u; i++) {
      let r = row0 + ty + 16u * i;
      if (r < R) {
        for (var v = 0u; v < DV; v++) {
          let d = tx + 16u * v;
          if (d < D4) { part[(split * R + r) * D4 + d] = acc[i * DV + v]; }
        }
      }
    }
  }
}
