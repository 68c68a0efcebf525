// Single-precision GEMM: C = alpha * op(A) * op(B) + beta * C, all row-major.
// op(A) is M×K (A stored K×M when transA), op(B) is K×N (B stored N×K when transB).
// `work` is host-provided scratch of gemm_work_bytes(m, n, k) bytes (packing buffers): kernels
// never allocate, the host owns linear memory.
//
// Goto/BLIS structure: B is packed per (NC columns × KC depth) block into NR-wide micro-panels,
// A per (MC rows × KC depth) block into MR-tall micro-panels, and an MR×NR register-blocked
// micro-kernel walks them. Packing is where transA/transB are absorbed (the micro-kernel only ever
// sees contiguous k-major panels) and where edges are zero-padded, so the hot loop has no
// bounds checks. Sizes: a B micro-panel (KC·NR·4 = 8 KiB) stays in L1 while the A block
// (MC·KC·4 = 128 KiB) stays in L2. B micro-panels are packed on first use (the first A block of
// each depth block), so for the common m ≤ MC shapes (conv im2col, small batches) each panel is
// consumed straight from L1 right after packing instead of round-tripping through L3.
//
// 4×8 tile, one depth step per iteration: 8 v128 accumulators + 2 B vectors + A + broadcast +
// product temp. Measured in V8 (Node 20, x64): a 6×8 tile spills 4 accumulators to the stack
// (V8 keeps xmm15 as scratch and hoists every broadcast), and unrolling the depth loop makes
// TurboFan hoist the next step's loads and spill too; 4×8 unroll-1 compiles spill-free and was
// fastest. Wasm SIMD in Node 20 has no FMA, so each step is f32x4.mul + f32x4.add.
// Vector products (m = 1 or n = 1) skip packing: see dotRows / axpyRows.

// @ts-ignore: decorator
@inline const MR: i32 = 4;
// @ts-ignore: decorator
@inline const NR: i32 = 8;
// @ts-ignore: decorator
@inline const KC: i32 = 256;
// @ts-ignore: decorator
@inline const MC: i32 = 128;
// @ts-ignore: decorator
@inline const NC: i32 = 2048;
// Edge tiles are computed into this scratch tile and then merged into C (MR·NR floats, padded).
// @ts-ignore: decorator
@inline const TILE_BYTES: usize = 256;

function roundUp(x: i32, r: i32): i32 {
  return ((x + r - 1) / r) * r;
}

/** Scratch bytes gemm_f32 needs for these dimensions (0 when there is nothing to multiply). */
export function gemm_work_bytes(m: i32, n: i32, k: i32): usize {
  if (m <= 0 || n <= 0 || k <= 0) return 0;
  // Clamp before rounding so dimensions near 2^31 cannot overflow (NC, MC are tile multiples).
  const kc = <usize>min(k, KC);
  const nc = <usize>roundUp(min(n, NC), NR);
  const mc = <usize>roundUp(min(m, MC), MR);
  return TILE_BYTES + (kc * nc + mc * kc) * 4;
}

export function gemm_f32(
  a: usize, b: usize, c: usize,
  m: i32, n: i32, k: i32,
  transA: i32, transB: i32,
  alpha: f32, beta: f32,
  work: usize,
): void {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    scaleC(c, <usize>m * <usize>n, beta);
    return;
  }
  // Vector products: packing would cost as much as the product and a 4×8 tile would be 3/4 or
  // 7/8 padding. A 1×K or K×1 operand has the same memory layout transposed or not, so only the
  // matrix operand's transpose decides between a dot per output and a row-sum of scaled rows.
  if (m == 1) {
    if (transB) dotRows(b, n, k, a, c, alpha, beta);
    else axpyRows(b, k, n, a, c, alpha, beta);
    return;
  }
  if (n == 1) {
    if (transA) axpyRows(a, k, m, b, c, alpha, beta);
    else dotRows(a, m, k, b, c, alpha, beta);
    return;
  }
  const kcMax = min(k, KC);
  const tile = work;
  const bpack = work + TILE_BYTES;
  const apack = bpack + <usize>kcMax * <usize>roundUp(min(n, NC), NR) * 4;
  const ldc = <usize>n << 2;
  for (let jc = 0; jc < n; jc += NC) {
    const nc = min(NC, n - jc);
    for (let pc = 0; pc < k; pc += KC) {
      const kc = min(KC, k - pc);
      // Only the first depth block applies beta; later blocks accumulate into what it wrote.
      const betaEff: f32 = pc == 0 ? beta : 1;
      for (let ic = 0; ic < m; ic += MC) {
        const mc = min(MC, m - ic);
        packA(a, m, k, transA, ic, pc, mc, kc, apack);
        for (let jr = 0; jr < nc; jr += NR) {
          const nr = min(NR, nc - jr);
          const bp = bpack + <usize>jr * <usize>kc * 4;
          if (ic == 0) packBPanel(b, n, k, transB, pc, jc + jr, kc, nr, bp);
          for (let ir = 0; ir < mc; ir += MR) {
            const mr = min(MR, mc - ir);
            const ap = apack + <usize>ir * <usize>kc * 4;
            const cp = c + (<usize>(ic + ir) * <usize>n + <usize>(jc + jr)) * 4;
            if (mr == MR && nr == NR) {
              micro(ap, bp, kc, cp, ldc, alpha, betaEff);
            } else {
              micro(ap, bp, kc, tile, <usize>NR * 4, 1, 0);
              mergeTile(tile, cp, ldc, mr, nr, alpha, betaEff);
            }
          }
        }
      }
    }
  }
}

// k = 0: op(A)·op(B) is all zeros. beta = 0 must not read C (it may hold NaN garbage).
function scaleC(c: usize, count: usize, beta: f32): void {
  if (beta == 1) return;
  for (let i: usize = 0; i < count; i++) {
    const p = c + (i << 2);
    store<f32>(p, beta == 0 ? 0 : beta * load<f32>(p));
  }
}

// c[r] = alpha · dot(x[r, 0..len), v) + beta · c[r] for `rows` contiguous rows of x.
function dotRows(x: usize, rows: i32, len: i32, v: usize, c: usize, alpha: f32, beta: f32): void {
  for (let r = 0; r < rows; r++) {
    const row = x + <usize>r * <usize>len * 4;
    let s: f32 = 0;
    let p = 0;
    if (ASC_FEATURE_SIMD) {
      let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
      for (; p + 16 <= len; p += 16) {
        const xp = row + (<usize>p << 2);
        const vp = v + (<usize>p << 2);
        s0 = f32x4.add(s0, f32x4.mul(v128.load(xp), v128.load(vp)));
        s1 = f32x4.add(s1, f32x4.mul(v128.load(xp, 16), v128.load(vp, 16)));
        s2 = f32x4.add(s2, f32x4.mul(v128.load(xp, 32), v128.load(vp, 32)));
        s3 = f32x4.add(s3, f32x4.mul(v128.load(xp, 48), v128.load(vp, 48)));
      }
      const t = f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3));
      s = f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1) + f32x4.extract_lane(t, 2) + f32x4.extract_lane(t, 3);
    }
    for (; p < len; p++) s += load<f32>(row + (<usize>p << 2)) * load<f32>(v + (<usize>p << 2));
    storeScalar(c + (<usize>r << 2), s, alpha, beta);
  }
}

// c[0..width) = alpha · Σ_p v[p] · x[p, 0..width) + beta · c over `rows` rows of x (pitch width).
// Column strips keep their sums in registers across all rows, so C is written once.
function axpyRows(x: usize, rows: i32, width: i32, v: usize, c: usize, alpha: f32, beta: f32): void {
  const pitch = <usize>width << 2;
  let j = 0;
  if (ASC_FEATURE_SIMD) {
    const va = f32x4.splat(alpha);
    for (; j + 16 <= width; j += 16) {
      let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
      let xp = x + (<usize>j << 2);
      for (let p = 0; p < rows; p++) {
        const vv = v128.load32_splat(v + (<usize>p << 2));
        s0 = f32x4.add(s0, f32x4.mul(vv, v128.load(xp)));
        s1 = f32x4.add(s1, f32x4.mul(vv, v128.load(xp, 16)));
        s2 = f32x4.add(s2, f32x4.mul(vv, v128.load(xp, 32)));
        s3 = f32x4.add(s3, f32x4.mul(vv, v128.load(xp, 48)));
        xp += pitch;
      }
      const cp = c + (<usize>j << 2);
      storeRow(cp, s0, s1, va, beta);
      storeRow(cp + 32, s2, s3, va, beta);
    }
    for (; j + 4 <= width; j += 4) {
      let s0 = f32x4.splat(0);
      let xp = x + (<usize>j << 2);
      for (let p = 0; p < rows; p++) {
        s0 = f32x4.add(s0, f32x4.mul(v128.load32_splat(v + (<usize>p << 2)), v128.load(xp)));
        xp += pitch;
      }
      const cp = c + (<usize>j << 2);
      let y = f32x4.mul(s0, va);
      if (beta != 0) y = f32x4.add(y, f32x4.mul(v128.load(cp), f32x4.splat(beta)));
      v128.store(cp, y);
    }
  }
  for (; j < width; j++) {
    let s: f32 = 0;
    let xp = x + (<usize>j << 2);
    for (let p = 0; p < rows; p++) {
      s += load<f32>(v + (<usize>p << 2)) * load<f32>(xp);
      xp += pitch;
    }
    storeScalar(c + (<usize>j << 2), s, alpha, beta);
  }
}

// A block rows [ic, ic+mc) × depth [pc, pc+kc) → panels of MR rows, each k-major (MR floats per
// depth step), rows past mc zero-filled.
function packA(a: usize, m: i32, k: i32, transA: i32, ic: i32, pc: i32, mc: i32, kc: i32, dst: usize): void {
  for (let ir = 0; ir < mc; ir += MR) {
    const mr = min(MR, mc - ir);
    const panel = dst + <usize>ir * <usize>kc * 4;
    if (transA) {
      // Stored K×M: one depth step's MR values are contiguous.
      for (let p = 0; p < kc; p++) {
        const src = a + (<usize>(pc + p) * <usize>m + <usize>(ic + ir)) * 4;
        const d = panel + <usize>p * <usize>MR * 4;
        if (mr == MR) {
          store<u64>(d, load<u64>(src));
          store<u64>(d, load<u64>(src, 8), 8);
        } else {
          for (let i = 0; i < MR; i++) store<f32>(d + (<usize>i << 2), i < mr ? load<f32>(src + (<usize>i << 2)) : 0);
        }
      }
    } else {
      for (let i = 0; i < MR; i++) {
        const d = panel + (<usize>i << 2);
        if (i < mr) {
          const src = a + (<usize>(ic + ir + i) * <usize>k + <usize>pc) * 4;
          for (let p = 0; p < kc; p++) store<f32>(d + <usize>p * <usize>MR * 4, load<f32>(src + (<usize>p << 2)));
        } else {
          for (let p = 0; p < kc; p++) store<f32>(d + <usize>p * <usize>MR * 4, 0);
        }
      }
    }
  }
}

// One B micro-panel: depth [pc, pc+kc) × columns [j0, j0+nr) → k-major, NR floats per depth
// step, columns past nr zero-filled.
function packBPanel(b: usize, n: i32, k: i32, transB: i32, pc: i32, j0: i32, kc: i32, nr: i32, panel: usize): void {
  if (transB) {
    // Stored N×K: walk each column's contiguous depth run and scatter it into the panel.
    for (let j = 0; j < NR; j++) {
      const d = panel + (<usize>j << 2);
      if (j < nr) {
        const src = b + (<usize>(j0 + j) * <usize>k + <usize>pc) * 4;
        for (let p = 0; p < kc; p++) store<f32>(d + <usize>p * <usize>NR * 4, load<f32>(src + (<usize>p << 2)));
      } else {
        for (let p = 0; p < kc; p++) store<f32>(d + <usize>p * <usize>NR * 4, 0);
      }
    }
    return;
  }
  let src = b + (<usize>pc * <usize>n + <usize>j0) * 4;
  const ldb = <usize>n << 2;
  for (let p = 0; p < kc; p++) {
    const d = panel + <usize>p * <usize>NR * 4;
    if (nr == NR) {
      if (ASC_FEATURE_SIMD) {
        v128.store(d, v128.load(src));
        v128.store(d, v128.load(src, 16), 16);
      } else {
        store<u64>(d, load<u64>(src));
        store<u64>(d, load<u64>(src, 8), 8);
        store<u64>(d, load<u64>(src, 16), 16);
        store<u64>(d, load<u64>(src, 24), 24);
      }
    } else {
      for (let j = 0; j < NR; j++) store<f32>(d + (<usize>j << 2), j < nr ? load<f32>(src + (<usize>j << 2)) : 0);
    }
    src += ldb;
  }
}

// Partial edge tile: C[0..mr, 0..nr) = alpha·tile + beta·C.
function mergeTile(tile: usize, c: usize, ldc: usize, mr: i32, nr: i32, alpha: f32, beta: f32): void {
  for (let i = 0; i < mr; i++) {
    const row = c + <usize>i * ldc;
    const t = tile + <usize>i * <usize>NR * 4;
    for (let j = 0; j < nr; j++) {
      const p = row + (<usize>j << 2);
      const v = alpha * load<f32>(t + (<usize>j << 2));
      store<f32>(p, beta == 0 ? v : v + beta * load<f32>(p));
    }
  }
}

// MR×NR tile of C (row pitch ldc bytes) = alpha · Apanel·Bpanel + beta · C over kc depth steps.
// @ts-ignore: decorator
@inline function micro(ap: usize, bp: usize, kc: i32, c: usize, ldc: usize, alpha: f32, beta: f32): void {
  if (ASC_FEATURE_SIMD) microSimd(ap, bp, kc, c, ldc, alpha, beta);
  else microScalar(ap, bp, kc, c, ldc, alpha, beta);
}

function microSimd(ap: usize, bp: usize, kc: i32, c: usize, ldc: usize, alpha: f32, beta: f32): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  const end = bp + (<usize>kc << 5);
  while (bp < end) {
    const b0 = v128.load(bp);
    const b1 = v128.load(bp, 16);
    // One load of the 4 A values and lane broadcasts: fewer address computations than 4 splat loads.
    const a = v128.load(ap);
    let av = i32x4.shuffle(a, a, 0, 0, 0, 0);
    c00 = f32x4.add(c00, f32x4.mul(av, b0));
    c01 = f32x4.add(c01, f32x4.mul(av, b1));
    av = i32x4.shuffle(a, a, 1, 1, 1, 1);
    c10 = f32x4.add(c10, f32x4.mul(av, b0));
    c11 = f32x4.add(c11, f32x4.mul(av, b1));
    av = i32x4.shuffle(a, a, 2, 2, 2, 2);
    c20 = f32x4.add(c20, f32x4.mul(av, b0));
    c21 = f32x4.add(c21, f32x4.mul(av, b1));
    av = i32x4.shuffle(a, a, 3, 3, 3, 3);
    c30 = f32x4.add(c30, f32x4.mul(av, b0));
    c31 = f32x4.add(c31, f32x4.mul(av, b1));
    ap += 16;
    bp += 32;
  }
  const va = f32x4.splat(alpha);
  storeRow(c, c00, c01, va, beta);
  storeRow(c + ldc, c10, c11, va, beta);
  storeRow(c + 2 * ldc, c20, c21, va, beta);
  storeRow(c + 3 * ldc, c30, c31, va, beta);
}

// @ts-ignore: decorator
@inline function storeRow(p: usize, x0: v128, x1: v128, va: v128, beta: f32): void {
  let y0 = f32x4.mul(x0, va);
  let y1 = f32x4.mul(x1, va);
  if (beta != 0) {
    // beta = 0 never reads C: it may be uninitialised (NaN) memory.
    const vb = f32x4.splat(beta);
    y0 = f32x4.add(y0, f32x4.mul(v128.load(p), vb));
    y1 = f32x4.add(y1, f32x4.mul(v128.load(p, 16), vb));
  }
  v128.store(p, y0);
  v128.store(p, y1, 16);
}

// Scalar build: one row of the tile at a time, 8 accumulators in locals.
function microScalar(ap: usize, bp: usize, kc: i32, c: usize, ldc: usize, alpha: f32, beta: f32): void {
  for (let i = 0; i < MR; i++) {
    let s0: f32 = 0, s1: f32 = 0, s2: f32 = 0, s3: f32 = 0, s4: f32 = 0, s5: f32 = 0, s6: f32 = 0, s7: f32 = 0;
    let pa = ap + (<usize>i << 2);
    let pb = bp;
    for (let p = 0; p < kc; p++) {
      const av = load<f32>(pa);
      s0 += av * load<f32>(pb);
      s1 += av * load<f32>(pb, 4);
      s2 += av * load<f32>(pb, 8);
      s3 += av * load<f32>(pb, 12);
      s4 += av * load<f32>(pb, 16);
      s5 += av * load<f32>(pb, 20);
      s6 += av * load<f32>(pb, 24);
      s7 += av * load<f32>(pb, 28);
      pa += <usize>MR * 4;
      pb += <usize>NR * 4;
    }
    const row = c + <usize>i * ldc;
    storeScalar(row, s0, alpha, beta);
    storeScalar(row + 4, s1, alpha, beta);
    storeScalar(row + 8, s2, alpha, beta);
    storeScalar(row + 12, s3, alpha, beta);
    storeScalar(row + 16, s4, alpha, beta);
    storeScalar(row + 20, s5, alpha, beta);
    storeScalar(row + 24, s6, alpha, beta);
    storeScalar(row + 28, s7, alpha, beta);
  }
}

// @ts-ignore: decorator
@inline function storeScalar(p: usize, s: f32, alpha: f32, beta: f32): void {
  store<f32>(p, beta == 0 ? alpha * s : alpha * s + beta * load<f32>(p));
}
