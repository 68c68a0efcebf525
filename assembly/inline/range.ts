// NaN-skipping running min/max shared by the stats and 4-bit kernels (not exported from the module:
// index.ts does not re-export this file). Module globals hold the extremes because a wasm
// function returns one value.
//
// Determinism: NaN lanes are replaced by the neutral element and the folds use f32.min / f32.max
// (which order -0 below +0), so the result, including the sign of a zero, is the same whatever the
// lane order: SIMD, scalar and the TypeScript reference (Math.min/Math.max) agree bit for bit.

let gLo: f32 = 0;
let gHi: f32 = 0;

@inline export function setRange(lo: f32, hi: f32): void {
  gLo = lo;
  gHi = hi;
}

@inline export function rangeLo(): f32 {
  return gLo;
}

@inline export function rangeHi(): f32 {
  return gHi;
}

// Fold `n` floats at `src` into gLo/gHi.
export function foldRun(src: usize, n: i32): void {
  let lo = gLo;
  let hi = gHi;
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    if (n >= 8) {
      const pinf = f32x4.splat(f32.POSITIVE_INFINITY);
      const ninf = f32x4.splat(f32.NEGATIVE_INFINITY);
      let vlo = f32x4.splat(lo);
      let vhi = f32x4.splat(hi);
      for (; i + 4 <= n; i += 4) {
        const v = v128.load(src + (<usize>i << 2));
        const ok = f32x4.eq(v, v); // false in NaN lanes
        vlo = f32x4.min(vlo, v128.bitselect(v, pinf, ok));
        vhi = f32x4.max(vhi, v128.bitselect(v, ninf, ok));
      }
      lo = min(min(f32x4.extract_lane(vlo, 0), f32x4.extract_lane(vlo, 1)), min(f32x4.extract_lane(vlo, 2), f32x4.extract_lane(vlo, 3)));
      hi = max(max(f32x4.extract_lane(vhi, 0), f32x4.extract_lane(vhi, 1)), max(f32x4.extract_lane(vhi, 2), f32x4.extract_lane(vhi, 3)));
    }
  }
  for (; i < n; i++) {
    const x = load<f32>(src + (<usize>i << 2));
    if (x == x) {
      lo = min(lo, x);
      hi = max(hi, x);
    }
  }
  gLo = lo;
  gHi = hi;
}
