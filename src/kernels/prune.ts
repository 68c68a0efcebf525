/**
 * Magnitude and N:M pruning on the WASM kernels (assembly/prune.ts); plain-TS twins and the
 * ranking rules (NaN = largest magnitude, tie-breaks, pruned values become +0) are in
 * ./reference/prune.ts. Masks use 1 = prune.
 */
import { type KernelOptions, forEachWindow, resolveKernels, windowElements, withArena } from './window.js';
import { HI_BINS, LO_BINS, checkK, checkSameLength, histSelect, nmGeometry } from './reference/prune.js';

function f32Bytes(w: Float32Array, start: number, count: number): Uint8Array {
  return new Uint8Array(w.buffer, w.byteOffset + start * 4, count * 4);
}

/**
 * Mask (1 = prune) of exactly k elements of smallest |w|; equal magnitudes at the threshold are
 * taken in index order. Three passes (two histograms, then the mask), each streamed in windows.
 */
export function magnitudeMask(w: Float32Array, k: number, opts?: KernelOptions): Uint8Array {
  checkK(w.length, k);
  const mask = new Uint8Array(w.length);
  if (k === 0) return mask;
  const K = resolveKernels(opts);
  const n = w.length;
  const per = Math.min(windowElements(5, 16, opts), n);
  // With one window the data is copied in once and reused by all three passes.
  const single = per === n;
  withArena(K, () => {
    const hist = K.alloc(LO_BINS * 4);
    const src = K.alloc(per * 4);
    const maskPtr = K.alloc(per);
    const pass = (copy: boolean, fn: (start: number, count: number) => void): void =>
      forEachWindow(n, per, (start, count) => {
        if (copy) K.u8(src, count * 4).set(f32Bytes(w, start, count));
        fn(start, count);
      });
    K.u32(hist, LO_BINS).fill(0);
    pass(true, (_s, count) => K.raw.prune_hist_hi(src, count, hist));
    const hi = histSelect(K.u32(hist, HI_BINS), k);
    K.u32(hist, LO_BINS).fill(0);
    pass(!single, (_s, count) => K.raw.prune_hist_lo(src, count, hist, hi.bin));
    const lo = histSelect(K.u32(hist, LO_BINS), k - hi.below);
    const thr = ((hi.bin << 16) | lo.bin) >>> 0;
    let ties = k - hi.below - lo.below;
    pass(!single, (start, count) => {
      ties = K.raw.prune_mask_f32(src, count, thr, ties, maskPtr);
      mask.set(K.u8(maskPtr, count), start);
    });
  });
  return mask;
}

/** Zero (as +0) the elements whose mask byte is non-zero; returns the new values and that count. */
export function applyMask(w: Float32Array, mask: Uint8Array, opts?: KernelOptions): { values: Float32Array; count: number } {
  checkSameLength(w.length, mask.length);
  const K = resolveKernels(opts);
  const values = new Float32Array(w.length);
  let count = 0;
  const per = Math.min(windowElements(5, 16, opts), Math.max(w.length, 1));
  withArena(K, () => {
    const src = K.alloc(per * 4);
    const m = K.alloc(per);
    forEachWindow(w.length, per, (start, len) => {
      K.u8(src, len * 4).set(f32Bytes(w, start, len));
      K.u8(m, len).set(mask.subarray(start, start + len));
      count += K.raw.prune_mask_apply_f32(src, m, len, src) as number; // in place
      f32Bytes(values, start, len).set(K.u8(src, len * 4));
    });
  });
  return { values, count };
}

/** `w` with its k smallest-magnitude elements set to +0. */
export function magnitudePrune(w: Float32Array, k: number, opts?: KernelOptions): Float32Array {
  return applyMask(w, magnitudeMask(w, k, opts), opts).values;
}

/**
 * N:M mask (1 = prune) for `w` of the given shape: in each group of M consecutive elements along
 * `axis` (whose length must be a multiple of M) the N largest |w| stay; equal |w| keep the lower index.
 */
export function nmMask(w: Float32Array, shape: readonly number[], axis: number, n: number, m: number, opts?: KernelOptions): Uint8Array {
  const { inner } = nmGeometry(w.length, shape, axis, n, m);
  const mask = new Uint8Array(w.length);
  if (w.length === 0) return mask;
  const K = resolveKernels(opts);
  // The groups of one "slab" (M steps along the axis by all of `inner`) are contiguous and
  // independent of other slabs, so windows hold whole slabs: [slabs, M, inner] for the kernel.
  const slab = m * inner;
  const per = Math.min(windowElements(5, slab, opts), w.length);
  withArena(K, () => {
    const src = K.alloc(per * 4);
    const mp = K.alloc(per);
    forEachWindow(w.length, per, (start, count) => {
      K.u8(src, count * 4).set(f32Bytes(w, start, count));
      K.raw.prune_nm_mask_f32(src, count / slab, m, inner, n, m, mp);
      mask.set(K.u8(mp, count), start);
    });
  });
  return mask;
}

/** `w` with N:M pruning applied (see `nmMask`). */
export function nmPrune(w: Float32Array, shape: readonly number[], axis: number, n: number, m: number, opts?: KernelOptions): Float32Array {
  return applyMask(w, nmMask(w, shape, axis, n, m, opts), opts).values;
}
