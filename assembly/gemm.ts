// Single-precision GEMM: C = alpha * op(A) * op(B) + beta * C, all row-major.
// op(A) is M×K (A stored K×M when transA), op(B) is K×N (B stored N×K when transB).
// `work` is host-provided scratch of gemm_work_bytes(m, n, k) bytes (packing buffers): kernels
// never allocate, the host owns linear memory.
// (Placeholder naive loop so the ABI exists; the blocked SIMD version replaces the body.)

export function gemm_work_bytes(m: i32, n: i32, k: i32): usize {
  return 0;
}

export function gemm_f32(
  a: usize, b: usize, c: usize,
  m: i32, n: i32, k: i32,
  transA: i32, transB: i32,
  alpha: f32, beta: f32,
  work: usize,
): void {
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s: f32 = 0;
      for (let p = 0; p < k; p++) {
        const av = load<f32>(a + ((transA ? <usize>p * <usize>m + <usize>i : <usize>i * <usize>k + <usize>p) << 2));
        const bv = load<f32>(b + ((transB ? <usize>j * <usize>k + <usize>p : <usize>p * <usize>n + <usize>j) << 2));
        s += av * bv;
      }
      const cp = c + ((<usize>i * <usize>n + <usize>j) << 2);
      store<f32>(cp, beta == 0 ? alpha * s : alpha * s + beta * load<f32>(cp));
    }
  }
}
