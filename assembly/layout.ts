// Layout permutations. Every supported permutation (2-D transpose, NCHW<->NHWC, OIHW<->HWIO) is
// a batch of strided 2-D transposes over elements of 1, 2, 4 or 8 bytes:
//   dst[b*dstBatch + c*dstStride + r] = src[b*srcBatch + r*srcStride + c]   (strides in elements)
// The host maps each layout onto these parameters. Tiles keep both the reads and the writes of a
// block within a few cache lines; float32-sized elements use a 4x4 shuffle transpose in SIMD.

const TILE = 32;

/** Returns 0, or -1 when `es` is not 1, 2, 4 or 8 (nothing is written then). */
export function layout_transpose(
  src: usize, dst: usize, es: i32,
  batch: i32, srcBatch: i32, dstBatch: i32,
  rows: i32, cols: i32, srcStride: i32, dstStride: i32,
): i32 {
  for (let b = 0; b < batch; b++) {
    const s = src + <usize>b * <usize>srcBatch * <usize>es;
    const d = dst + <usize>b * <usize>dstBatch * <usize>es;
    if (es == 1) transpose_t<u8>(s, d, rows, cols, srcStride, dstStride);
    else if (es == 2) transpose_t<u16>(s, d, rows, cols, srcStride, dstStride);
    else if (es == 4) transpose_t<u32>(s, d, rows, cols, srcStride, dstStride);
    else if (es == 8) transpose_t<u64>(s, d, rows, cols, srcStride, dstStride);
    else return -1;
  }
  return 0;
}

function transpose_t<T>(src: usize, dst: usize, rows: i32, cols: i32, srcStride: i32, dstStride: i32): void {
  const ss = <usize>srcStride;
  const ds = <usize>dstStride;
  const es = <usize>sizeof<T>();
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = min(r0 + TILE, rows);
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const c1 = min(c0 + TILE, cols);
      let r = r0;
      if (ASC_FEATURE_SIMD) {
        if (sizeof<T>() == 4) {
          for (; r + 4 <= r1; r += 4) {
            let c = c0;
            for (; c + 4 <= c1; c += 4) {
              transpose4x4(src + (<usize>r * ss + <usize>c) * 4, ss * 4, dst + (<usize>c * ds + <usize>r) * 4, ds * 4);
            }
            for (; c < c1; c++) {
              for (let rr = r; rr < r + 4; rr++) {
                store<T>(dst + (<usize>c * ds + <usize>rr) * es, load<T>(src + (<usize>rr * ss + <usize>c) * es));
              }
            }
          }
        }
      }
      for (; r < r1; r++) {
        for (let c = c0; c < c1; c++) {
          store<T>(dst + (<usize>c * ds + <usize>r) * es, load<T>(src + (<usize>r * ss + <usize>c) * es));
        }
      }
    }
  }
}

// Rows a, b, c, d -> columns, in two rounds of interleaving shuffles.
// @ts-ignore: decorator
@inline function transpose4x4(src: usize, srcPitch: usize, dst: usize, dstPitch: usize): void {
  const a = v128.load(src);
  const b = v128.load(src + srcPitch);
  const c = v128.load(src + 2 * srcPitch);
  const d = v128.load(src + 3 * srcPitch);
  const ab01 = v128.shuffle<i32>(a, b, 0, 4, 1, 5);
  const ab23 = v128.shuffle<i32>(a, b, 2, 6, 3, 7);
  const cd01 = v128.shuffle<i32>(c, d, 0, 4, 1, 5);
  const cd23 = v128.shuffle<i32>(c, d, 2, 6, 3, 7);
  v128.store(dst, v128.shuffle<i32>(ab01, cd01, 0, 1, 4, 5));
  v128.store(dst + dstPitch, v128.shuffle<i32>(ab01, cd01, 2, 3, 6, 7));
  v128.store(dst + 2 * dstPitch, v128.shuffle<i32>(ab23, cd23, 0, 1, 4, 5));
  v128.store(dst + 3 * dstPitch, v128.shuffle<i32>(ab23, cd23, 2, 3, 6, 7));
}
