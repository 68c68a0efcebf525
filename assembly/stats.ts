// Reductions: min / max / absmax, NaN-aware (NaN values are skipped; an all-NaN or empty input
// returns NaN so the host can tell "no finite data").

export function minmax_f32(src: usize, n: i32, out: usize): void {
  let lo = f32.POSITIVE_INFINITY;
  let hi = f32.NEGATIVE_INFINITY;
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    let vlo = f32x4.splat(f32.POSITIVE_INFINITY);
    let vhi = f32x4.splat(f32.NEGATIVE_INFINITY);
    for (; i + 4 <= n; i += 4) {
      const v = v128.load(src + (<usize>i << 2));
      // pmin/pmax return the first operand when the second is NaN, so NaN lanes never win.
      vlo = f32x4.pmin(vlo, v) ;
      vhi = f32x4.pmax(vhi, v);
    }
    lo = min(min(f32x4.extract_lane(vlo, 0), f32x4.extract_lane(vlo, 1)), min(f32x4.extract_lane(vlo, 2), f32x4.extract_lane(vlo, 3)));
    hi = max(max(f32x4.extract_lane(vhi, 0), f32x4.extract_lane(vhi, 1)), max(f32x4.extract_lane(vhi, 2), f32x4.extract_lane(vhi, 3)));
  }
  for (; i < n; i++) {
    const x = load<f32>(src + (<usize>i << 2));
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  store<f32>(out, lo);
  store<f32>(out + 4, hi);
}
