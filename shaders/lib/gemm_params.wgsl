// The uniform parameters of every matmul kernel (engine/ops/matmul.ts fills them): C[b] is
// M x N, op(A[b]) M x K, op(B[b]) K x N; batch item b starts stride* elements after b - 1;
// rowStart is the first row of C this dispatch covers (dispatches are split at 65535 groups).
struct Params {
  M: u32, N: u32, K: u32, rowStart: u32,
  strideA: u32, strideB: u32, strideC: u32, _p0: u32,
}
@group(0) @binding(0) var<uniform> params: Params;
