// Magnitude pruning. Elements are ranked by a u32 key: the float32 bits of |w| (which order like
// the magnitudes), with every NaN mapped to one key just above +Inf. So NaN ranks as the largest
// magnitude and is never pruned before a number; all NaNs tie with each other.
// Exact k-th smallest: a 2-pass radix select (histogram of the top 16 key bits, then of the low
// 16 bits inside the chosen bucket) gives the threshold key T and how many elements sit below it;
// the selection pass then takes everything below T plus the first `ties` elements equal to T, in
// index order, writing the pruned values, the mask, or both. Histograms accumulate so the host can
// feed a big tensor window by window.

const NAN_KEY: u32 = 0x7f800001;

// @ts-ignore: decorator
@inline function key(bits: u32): u32 {
  return min<u32>(bits & 0x7fffffff, NAN_KEY);
}

// @ts-ignore: decorator
@inline function keys(v: v128): v128 {
  return i32x4.min_u(v128.and(v, i32x4.splat(0x7fffffff)), i32x4.splat(NAN_KEY));
}

// @ts-ignore: decorator
@inline function bump(hist: usize, bin: u32): void {
  const p = hist + (<usize>bin << 2);
  store<u32>(p, load<u32>(p) + 1);
}

/** hist[key >>> 16] += 1 for each of the n float32 at src (hist: u32[32768], keys < 2^31). */
export function prune_hist_hi(src: usize, n: i32, hist: usize): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    for (; i + 4 <= n; i += 4) {
      const b = i32x4.shr_u(keys(v128.load(src + (<usize>i << 2))), 16);
      bump(hist, i32x4.extract_lane(b, 0));
      bump(hist, i32x4.extract_lane(b, 1));
      bump(hist, i32x4.extract_lane(b, 2));
      bump(hist, i32x4.extract_lane(b, 3));
    }
  }
  for (; i < n; i++) bump(hist, key(load<u32>(src + (<usize>i << 2))) >>> 16);
}

/** hist[key & 0xffff] += 1 for the elements whose key >>> 16 == hi (hist: u32[65536]). */
export function prune_hist_lo(src: usize, n: i32, hist: usize, hi: u32): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    // key >>> 16 == hi  <=>  min(bits & 0x7fff0000, 0x7f800000) == hi << 16 (NaNs clamp to 0x7f80).
    const vhi = i32x4.splat(hi << 16);
    const top = i32x4.splat(0x7fff0000);
    const nan = i32x4.splat(0x7f800000);
    for (; i + 16 <= n; i += 16) {
      const p = src + (<usize>i << 2);
      const h0 = i32x4.eq(i32x4.min_u(v128.and(v128.load(p), top), nan), vhi);
      const h1 = i32x4.eq(i32x4.min_u(v128.and(v128.load(p, 16), top), nan), vhi);
      const h2 = i32x4.eq(i32x4.min_u(v128.and(v128.load(p, 32), top), nan), vhi);
      const h3 = i32x4.eq(i32x4.min_u(v128.and(v128.load(p, 48), top), nan), vhi);
      // Most blocks have no element in the chosen bucket: skip them without a lane walk.
      if (!v128.any_true(v128.or(v128.or(h0, h1), v128.or(h2, h3)))) continue;
      for (let j = i; j < i + 16; j++) hist_lo_one(src, j, hist, hi);
    }
  }
  for (; i < n; i++) hist_lo_one(src, i, hist, hi);
}

// @ts-ignore: decorator
@inline function hist_lo_one(src: usize, i: i32, hist: usize, hi: u32): void {
  const k = key(load<u32>(src + (<usize>i << 2)));
  if (k >>> 16 == hi) bump(hist, k & 0xffff);
}

/**
 * Selection pass once the threshold key `thr` is known: element i is selected (pruned) when
 * key < thr, or key == thr while `ties` remain (consumed in index order). Selected elements get
 * +0.0 in dst[i] and 1 in mask[i], the others their own value and 0. dst == 0 means no values
 * are written, mask == 0 no mask (the host never allocates at address 0); dst may equal src.
 * Returns the ties left, to pass to the next window.
 */
export function prune_select_f32(src: usize, n: i32, thr: u32, ties: i32, dst: usize, mask: usize): i32 {
  if (dst != 0 && mask != 0) return select_run(src, n, thr, ties, dst, mask, true, true);
  if (dst != 0) return select_run(src, n, thr, ties, dst, mask, true, false);
  if (mask != 0) return select_run(src, n, thr, ties, dst, mask, false, true);
  return ties;
}

// @ts-ignore: decorator
@inline function select_run(src: usize, n: i32, thr: u32, ties: i32, dst: usize, mask: usize, values: bool, masks: bool): i32 {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    const vthr = i32x4.splat(thr);
    const abs = i32x4.splat(0x7fffffff);
    for (; i + 16 <= n; i += 16) {
      const p = src + (<usize>i << 2);
      const v0 = v128.load(p);
      const v1 = v128.load(p, 16);
      const v2 = v128.load(p, 32);
      const v3 = v128.load(p, 48);
      // A tie inside the block needs the ordered count: leave the block to the scalar step.
      if (ties > 0) {
        const tie = v128.or(
          v128.or(i32x4.eq(keys(v0), vthr), i32x4.eq(keys(v1), vthr)),
          v128.or(i32x4.eq(keys(v2), vthr), i32x4.eq(keys(v3), vthr)),
        );
        if (v128.any_true(tie)) {
          for (let j = i; j < i + 16; j++) ties = select_one(src, j, thr, ties, dst, mask, values, masks);
          continue;
        }
      }
      // key < thr <=> |bits| < thr, since thr <= NAN_KEY; both sides are below 2^31, so the
      // signed compare is exact (and is one instruction where unsigned is not).
      const m0 = i32x4.gt_s(vthr, v128.and(v0, abs));
      const m1 = i32x4.gt_s(vthr, v128.and(v1, abs));
      const m2 = i32x4.gt_s(vthr, v128.and(v2, abs));
      const m3 = i32x4.gt_s(vthr, v128.and(v3, abs));
      if (values) {
        const q = dst + (<usize>i << 2);
        v128.store(q, v128.andnot(v0, m0));
        v128.store(q, v128.andnot(v1, m1), 16);
        v128.store(q, v128.andnot(v2, m2), 32);
        v128.store(q, v128.andnot(v3, m3), 48);
      }
      if (masks) {
        // Lanes are 0 or -1: the signed narrows keep them, one AND makes the bytes 0/1.
        const b = i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(m0, m1), i16x8.narrow_i32x4_s(m2, m3));
        v128.store(mask + <usize>i, v128.and(b, i8x16.splat(1)));
      }
    }
  }
  for (; i < n; i++) ties = select_one(src, i, thr, ties, dst, mask, values, masks);
  return ties;
}

// Branch-free apart from the (rare) tie: random keys make "key < thr" unpredictable.
// @ts-ignore: decorator
@inline function select_one(src: usize, i: i32, thr: u32, ties: i32, dst: usize, mask: usize, values: bool, masks: bool): i32 {
  const bits = load<u32>(src + (<usize>i << 2));
  const k = key(bits);
  let m = <u32>(k < thr);
  if (k == thr && ties > 0) { m = 1; ties--; }
  if (values) store<u32>(dst + (<usize>i << 2), select<u32>(0, bits, m != 0));
  if (masks) store<u8>(mask + <usize>i, <u8>m);
  return ties;
}

/**
 * dst[i] = mask[i] != 0 ? +0.0 : src[i] (dst may equal src). Returns the number of masked
 * elements, so callers can check how many were zeroed.
 */
export function prune_mask_apply_f32(src: usize, mask: usize, n: i32, dst: usize): i32 {
  let count = 0;
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    for (; i + 16 <= n; i += 16) {
      const m = i8x16.ne(v128.load(mask + <usize>i), i8x16.splat(0));
      count += <i32>popcnt<u32>(<u32>i8x16.bitmask(m));
      const lo = i16x8.extend_low_i8x16_s(m);
      const hi = i16x8.extend_high_i8x16_s(m);
      const p = <usize>i << 2;
      v128.store(dst + p, v128.andnot(v128.load(src + p), i32x4.extend_low_i16x8_s(lo)));
      v128.store(dst + p, v128.andnot(v128.load(src + p, 16), i32x4.extend_high_i16x8_s(lo)), 16);
      v128.store(dst + p, v128.andnot(v128.load(src + p, 32), i32x4.extend_low_i16x8_s(hi)), 32);
      v128.store(dst + p, v128.andnot(v128.load(src + p, 48), i32x4.extend_high_i16x8_s(hi)), 48);
    }
  }
  for (; i < n; i++) {
    const p = <usize>i << 2;
    const m = load<u8>(mask + <usize>i) != 0;
    store<u32>(dst + p, select<u32>(0, load<u32>(src + p), m));
    count += <i32>m;
  }
  return count;
}

/** Store four 0/1 bytes from an all-ones/all-zeros i32x4 lane mask. */
// @ts-ignore: decorator
@inline function store_mask4(p: usize, lanes: v128): void {
  const one = v128.and(lanes, i32x4.splat(1));
  const b16 = i16x8.narrow_i32x4_u(one, one);
  v128.store32_lane(p, i8x16.narrow_i16x8_u(b16, b16), 0);
}

/**
 * N:M mask for a tensor viewed as [outer, len, inner] with groups of M consecutive elements
 * along `len` (len % M == 0, checked by the host). In each group the `keep` largest keys stay
 * (mask 0) and the other M - keep get mask 1. Equal keys: the lower index ranks higher (is kept).
 * Rank by pairwise counting: O(M) per element, fine for the usual M of 4..16.
 */
export function prune_nm_mask_f32(src: usize, outer: i32, len: i32, inner: i32, keep: i32, m: i32, mask: usize): void {
  const groups = <usize>outer * <usize>(len / m);
  const stride = <usize>inner;
  if (ASC_FEATURE_SIMD) {
    if (inner == 1 && m == 4) {
      nm4_contiguous(src, groups, keep, mask);
      return;
    }
  }
  for (let g: usize = 0; g < groups; g++) {
    const base = g * <usize>m * stride;
    let i: usize = 0;
    if (ASC_FEATURE_SIMD) {
      // Four neighbouring positions along `inner` are four independent groups: rank them as lanes.
      for (; i + 4 <= stride; i += 4) {
        for (let j = 0; j < m; j++) {
          const kj = keys(v128.load(src + ((base + <usize>j * stride + i) << 2)));
          let rank = i32x4.splat(0);
          for (let t = 0; t < m; t++) {
            if (t == j) continue;
            const kt = keys(v128.load(src + ((base + <usize>t * stride + i) << 2)));
            let above = i32x4.gt_u(kt, kj);
            if (t < j) above = v128.or(above, i32x4.eq(kt, kj));
            rank = i32x4.sub(rank, above); // lanes of `above` are -1 or 0
          }
          store_mask4(mask + base + <usize>j * stride + i, i32x4.ge_s(rank, i32x4.splat(keep)));
        }
      }
    }
    for (; i < stride; i++) nm_group(src, mask, base + i, stride, keep, m);
  }
}

function nm_group(src: usize, mask: usize, base: usize, stride: usize, keep: i32, m: i32): void {
  for (let j = 0; j < m; j++) {
    const kj = key(load<u32>(src + ((base + <usize>j * stride) << 2)));
    let rank = 0;
    for (let t = 0; t < m; t++) {
      const kt = key(load<u32>(src + ((base + <usize>t * stride) << 2)));
      if (kt > kj || (kt == kj && t < j)) rank++;
    }
    store<u8>(mask + base + <usize>j * stride, rank >= keep ? 1 : 0);
  }
}

// 2:4-style fast path (SIMD build only): each v128 is one whole group. Lane j is compared with
// lane (j + r) % 4 for r = 1..3; that lane has the lower index exactly when j + r >= 4.
// @ts-ignore: decorator
@inline function nm4_contiguous(src: usize, groups: usize, keep: i32, mask: usize): void {
  for (let g: usize = 0; g < groups; g++) {
    const k = keys(v128.load(src + (g << 4)));
    const r1 = v128.shuffle<i32>(k, k, 1, 2, 3, 0);
    const r2 = v128.shuffle<i32>(k, k, 2, 3, 0, 1);
    const r3 = v128.shuffle<i32>(k, k, 3, 0, 1, 2);
    const a1 = v128.or(i32x4.gt_u(r1, k), v128.and(i32x4.eq(r1, k), i32x4(0, 0, 0, -1)));
    const a2 = v128.or(i32x4.gt_u(r2, k), v128.and(i32x4.eq(r2, k), i32x4(0, 0, -1, -1)));
    const a3 = v128.or(i32x4.gt_u(r3, k), v128.and(i32x4.eq(r3, k), i32x4(0, -1, -1, -1)));
    const rank = i32x4.neg(i32x4.add(i32x4.add(a1, a2), a3));
    store_mask4(mask + (g << 2), i32x4.ge_s(rank, i32x4.splat(keep)));
  }
}
