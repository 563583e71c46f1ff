// Batched C[b] = op(A[b]) * op(B[b]), tiled for GPUs. A workgroup of WX x WY invocations owns a
// BM x BN block of C (BM = WY*TM, BN = WX*TN) and streams K through workgroup memory in slices
// of BK: both operand tiles are kept k-major ([k][m] and [k][n], as vec4), so the inner loop
// reads one vec4 of A and one of B per 4x4 sub-block and does 16 FMAs per pair of reads.
// Invocation (tx, ty) owns the vec4 columns tx + j*WX and vec4 rows ty + i*WY of the block:
// neighbouring invocations read neighbouring vec4s of the tiles (no bank conflicts, A's vec4s
// broadcast along x) and the register tile is TM x TN.
// Two workgroup buffers: while slice t is multiplied from one, slice t+1 (already fetched into
// registers before the multiply, so its global latency hides behind it) is stored into the
// other; one barrier per slice.
// Global loads: vec4 along each operand's contiguous dimension, consecutive invocations on
// consecutive vec4s (coalesced). Where that dimension is k (A not transposed, B transposed),
// the four values are scattered into four k rows of the tile; those scalar stores of
// neighbouring invocations land 4*BM (or 4*BN) words apart, a 2-4-way bank conflict, paid once
// per slice against BK reads per invocation (not measured on a GPU).
// VEC_A / VEC_B: the operand is bound as vec4 (its contiguous dimension and batch stride are
// multiples of 4); otherwise it is read one float at a time (any shape). CHECKED = false drops
// every bound check (M % BM == 0, N % BN == 0, K % BK == 0).
// T: the operands' component type, f32 or f16 (f16 storage: values become f32 as they are read,
// the tiles and the accumulation stay f32). UNSCALE: C is multiplied by 1/s of a gradient
// operand that scaledHalf cast as f16(g * s) (ops/grad-scale.ts; a power of two, so exact),
// read from the extra binding `amax`.
//! T = f32
//! UNSCALE = false
//! TRANS_A = false
//! TRANS_B = false
//! CHECKED = true
//! VEC_A = true
//! VEC_B = true
//! ELEM_A = vec4<f32>
//! ELEM_B = vec4<f32>
//! WX = 16
//! WY = 16
//! TM = 4
//! TN = 4
//! BK = 16
//#include "lib/gemm_params.wgsl"
@group(0) @binding(1) var<storage, read> A: array<$ELEM_A>;
@group(0) @binding(2) var<storage, read> B: array<$ELEM_B>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
//#include "lib/out_scale.wgsl"

const WX: u32 = $WX;
const WY: u32 = $WY;
const THREADS: u32 = WX * WY;
const RM: u32 = $TM / 4u;
const CN: u32 = $TN / 4u;
const BM4: u32 = WY * RM;
const BN4: u32 = WX * CN;
const BK: u32 = $BK;
// vec4s of each operand's tile, and how many each invocation loads.
const TILE_A: u32 = BK * BM4;
const TILE_B: u32 = BK * BN4;
const LOADS_A: u32 = (TILE_A + THREADS - 1u) / THREADS;
const LOADS_B: u32 = (TILE_B + THREADS - 1u) / THREADS;

var<workgroup> As: array<vec4<f32>, 2u * TILE_A>;
var<workgroup> Bs: array<vec4<f32>, 2u * TILE_B>;

// Four consecutive elements from element e on; only the first `valid` are read (the rest are 0).
// vec4<T>(x) is x for a vec4 and a splat for a scalar, so both bindings compile; vec4<f32> of
// that converts f16.
fn readA4(e: u32, valid: u32) -> vec4<f32> {
  if ($VEC_A) {
    if ($CHECKED && valid == 0u) { return vec4<f32>(0.0); }
    return vec4<f32>(vec4<$T>(A[e / 4u]));
  }
  var v = vec4<f32>(0.0);
  for (var i = 0u; i < 4u; i++) {
    if (!$CHECKED || i < valid) { v[i] = vec4<f32>(vec4<$T>(A[e + i])).x; }
  }
  return v;
}

fn readB4(e: u32, valid: u32) -> vec4<f32> {
  if ($VEC_B) {
    if ($CHECKED && valid == 0u) { return vec4<f32>(0.0); }
    return vec4<f32>(vec4<$T>(B[e / 4u]));
  }
  var v = vec4<f32>(0.0);
  for (var i = 0u; i < 4u; i++) {
    if (!$CHECKED || i < valid) { v[i] = vec4<f32>(vec4<$T>(B[e + i])).x; }
  }
  return v;
}

// How many of 4 elements from (outer, inner) lie inside an outerN x innerN matrix.
fn validCount(outer: u32, inner: u32, outerN: u32, innerN: u32) -> u32 {
  return select(0u, min(4u, innerN - inner), outer < outerN && inner < innerN);
}

// The v-th vec4 of A's tile at rows m0.., k0..: A stored [K, M] (TRANS_A) is read along m,
// A stored [M, K] along k.
fn fetchA(v: u32, base: u32, m0: u32, k0: u32) -> vec4<f32> {
  let M = params.M;
  let K = params.K;
  if ($TRANS_A) {
    let k = k0 + v / BM4;
    let m = m0 + 4u * (v % BM4);
    return readA4(base + k * M + m, validCount(k, m, K, M));
  }
  let m = m0 + v / (BK / 4u);
  let k = k0 + 4u * (v % (BK / 4u));
  return readA4(base + m * K + k, validCount(m, k, M, K));
}

fn fetchB(v: u32, base: u32, n0: u32, k0: u32) -> vec4<f32> {
  let N = params.N;
  let K = params.K;
  if ($TRANS_B) {
    let n = n0 + v / (BK / 4u);
    let k = k0 + 4u * (v % (BK / 4u));
    return readB4(base + n * K + k, validCount(n, k, N, K));
  }
  let k = k0 + v / BN4;
  let n = n0 + 4u * (v % BN4);
  return readB4(base + k * N + n, validCount(k, n, K, N));
}

// Where fetchA's v-th vec4 goes in the tile [k][m/4] (buffer `buf`): as it is when it runs
// along m, else as one float in each of four k rows.
fn storeA(v: u32, buf: u32, x: vec4<f32>) {
  let o = buf * TILE_A;
  if ($TRANS_A) {
    As[o + v] = x;
    return;
  }
  let m = v / (BK / 4u);
  let k = 4u * (v % (BK / 4u));
  for (var i = 0u; i < 4u; i++) { As[o + (k + i) * BM4 + m / 4u][m % 4u] = x[i]; }
}

fn storeB(v: u32, buf: u32, x: vec4<f32>) {
  let o = buf * TILE_B;
  if (!$TRANS_B) {
    Bs[o + v] = x;
    return;
  }
  let n = v / (BK / 4u);
  let k = 4u * (v % (BK / 4u));
  for (var i = 0u; i < 4u; i++) { Bs[o + (k + i) * BN4 + n / 4u][n % 4u] = x[i]; }
}

@compute @workgroup_size($WX, $WY, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lix: u32,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let m0 = params.rowStart + wid.y * (4u * BM4);
  let n0 = wid.x * (4u * BN4);
  let baseA = wid.z * params.strideA;
  let baseB = wid.z * params.strideB;
  let slices = (params.K + BK - 1u) / BK;

  var nextA: array<vec4<f32>, LOADS_A>;
  var nextB: array<vec4<f32>, LOADS_B>;
  // Slice 0 goes straight to buffer 0.
  if (slices > 0u) {
    for (var l = 0u; l < LOADS_A; l++) {
      let v = lix + l * THREADS;
      if (v < TILE_A) { storeA(v, 0u, fetchA(v, baseA, m0, 0u)); }
    }
    for (var l = 0u; l < LOADS_B; l++) {
      let v = lix + l * THREADS;
      if (v < TILE_B) { storeB(v, 0u, fetchB(v, baseB, n0, 0u)); }
    }
  }
  workgroupBarrier();

  var acc: array<vec4<f32>, RM * 4u * CN>;
  for (var t = 0u; t < slices; t++) {
    let more = t + 1u < slices;
    if (more) {
      for (var l = 0u; l < LOADS_A; l++) {
        let v = lix + l * THREADS;
        if (v < TILE_A) { nextA[l] = fetchA(v, baseA, m0, (t + 1u) * BK); }
      }
      for (var l = 0u; l < LOADS_B; l++) {
        let v = lix + l * THREADS;
        if (v < TILE_B) { nextB[l] = fetchB(v, baseB, n0, (t + 1u) * BK); }
      }
    }
    let oa = (t % 2u) * TILE_A;
    let ob = (t % 2u) * TILE_B;
    for (var k = 0u; k < BK; k++) {
      var a: array<vec4<f32>, RM>;
      for (var i = 0u; i < RM; i++) { a[i] = As[oa + k * BM4 + lid.y + i * WY]; }
      for (var j = 0u; j < CN; j++) {
        let b = Bs[ob + k * BN4 + lid.x + j * WX];
        for (var i = 0u; i < RM; i++) {
          for (var r = 0u; r < 4u; r++) {
            let s = (4u * i + r) * CN + j;
            acc[s] = fma(vec4<f32>(a[i][r]), b, acc[s]);
          }
        }
      }
    }
    if (more) {
      let buf = (t + 1u) % 2u;
      for (var l = 0u; l < LOADS_A; l++) {
        let v = lix + l * THREADS;
        if (v < TILE_A) { storeA(v, buf, nextA[l]); }
      }
      for (var l = 0u; l < LOADS_B; l++) {
        let v = lix + l * THREADS;
        if (v < TILE_B) { storeB(v, buf, nextB[l]); }
      }
    }
    workgroupBarrier();
  }

  let M = params.M;
  let N = params.N;
  let baseC = wid.z * params.strideC;
  let scale = outScale();
  for (var i = 0u; i < RM; i++) {
    for (var r = 0u; r < 4u; r++) {
      let row = m0 + 4u * (lid.y + i * WY) + r;
      if ($CHECKED && row >= M) { continue; }
      for (var j = 0u; j < CN; j++) {
        let col = n0 + 4u * (lid.x + j * WX);
        let x = acc[(4u * i + r) * CN + j] * scale;
        for (var c = 0u; c < 4u; c++) {
          if (!$CHECKED || col + c < N) { C[baseC + row * N + col + c] = x[c]; }
        }
      }
    }
  }
}
