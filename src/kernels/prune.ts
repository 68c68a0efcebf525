/**
 * Magnitude and N:M pruning on the WASM kernels (assembly/prune.ts); plain-TS twins and the
 * ranking rules (NaN = largest magnitude, tie-breaks, pruned values become +0) are in
 * ./reference/prune.ts. Masks use 1 = prune.
 */
import type { Kernels } from './loader.js';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import { type KernelOptions, cacheWindowElements, forEachWindow, resolveKernels, windowElements, withArena } from './window.js';
import { HI_BINS, LO_BINS, checkK, checkSameLength, histSelect, nmGeometry } from './reference/prune.js';

// `magnitudeMask` and `applyMask` stream through cache-sized windows (window.ts). `magnitudePrune`
// does not cap: three cached passes that each copy the data in again measured no faster than one
// window copied in once.

function f32Bytes(w: Float32Array, start: number, count: number): Uint8Array {
  return new Uint8Array(w.buffer, w.byteOffset + start * 4, count * 4);
}

/**
 * One pass over a tensor of float32: calls `fn(ptr, start, count)` for consecutive windows covering
 * the whole tensor, with the window's elements at arena address `ptr`. A tensor already in the arena
 * is one window; a JS array is copied in window by window.
 */
type Pass = (fn: (ptr: number, start: number, count: number) => void) => void;

/** Threshold key T and how many elements equal to T are taken (the lowest-index ones). */
interface Threshold { thr: number; ties: number }

/** Exact threshold for the k-th smallest key (1 <= k <= elements fed): two histogram passes. */
function histThreshold(K: Kernels, k: number, hist: number, pass: Pass): Threshold {
  K.u32(hist, HI_BINS).fill(0);
  pass((p, _s, count) => K.raw.prune_hist_hi(p, count, hist));
  const hi = histSelect(K.u32(hist, HI_BINS), k);
  K.u32(hist, LO_BINS).fill(0);
  pass((p, _s, count) => K.raw.prune_hist_lo(p, count, hist, hi.bin));
  const lo = histSelect(K.u32(hist, LO_BINS), k - hi.below);
  return { thr: ((hi.bin << 16) | lo.bin) >>> 0, ties: k - hi.below - lo.below };
}

/**
 * Exact magnitude selection of k elements (1 <= k <= n) of the n fed by `pass`: finds the
 * threshold key T and how many elements equal to T are taken (in index order), then a last pass
 * hands each window to `select(ptr, start, count, thr, ties)`, which returns the ties left for
 * the next window.
 */
function magnitudeSelect(K: Kernels, k: number, pass: Pass,
  select: (ptr: number, start: number, count: number, thr: number, ties: number) => number): void {
  withArena(K, () => {
    const hist = K.alloc(LO_BINS * 4);
    const t = histThreshold(K, k, hist, pass);
    let ties = t.ties;
    pass((p, start, count) => { ties = select(p, start, count, t.thr, ties); });
  });
}

/** Where `magnitudePruneArena` writes: arena addresses (the default is in place, no mask). */
export interface ArenaPruneOutput {
  /** n float32 for the pruned values: the input itself (the default) or memory not overlapping it. */
  dst?: number;
  /** n bytes for the mask (1 = pruned), not overlapping the values; omitted: no mask. */
  mask?: number;
}

/**
 * In-arena magnitude prune of the `n` float32 at arena address `ptr`: the `k` smallest magnitudes
 * become +0 (exactly k; equal magnitudes at the threshold are taken in index order) in `out.dst`
 * (default: in place), and the mask goes to `out.mask` if given. Three passes over the data (two
 * histograms, then one that writes values and mask together); arena scratch (256 KiB) is taken
 * above the current mark and released before returning.
 */
export function magnitudePruneArena(K: Kernels, ptr: number, n: number, k: number, out: ArenaPruneOutput = {}): void {
  checkK(n, k);
  const dst = out.dst ?? ptr;
  const mask = out.mask ?? 0;
  if (k === 0) {
    if (dst !== ptr) new Uint8Array(K.memory.buffer).copyWithin(dst, ptr, ptr + n * 4);
    if (mask) K.u8(mask, n).fill(0);
    return;
  }
  magnitudeSelect(K, k, (fn) => fn(ptr, 0, n),
    (p, _s, count, thr, ties) => K.raw.prune_select_f32(p, count, thr, ties, dst, mask) as number);
}

/**
 * A `Pass` over `w` through an arena buffer of `per` elements at `buf`. With one window the data
 * is copied in once and every pass reuses it (so only the last pass may write over its input).
 */
function streamPass(K: Kernels, w: Float32Array, buf: number, per: number): Pass {
  if (per >= w.length) {
    K.f32(buf, w.length).set(w);
    return (fn) => fn(buf, 0, w.length);
  }
  return (fn) => forEachWindow(w.length, per, (start, count) => {
    K.f32(buf, count).set(w.subarray(start, start + count));
    fn(buf, start, count);
  });
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
  const per = Math.min(cacheWindowElements(5, 16, opts), n);
  withArena(K, () => {
    const src = K.alloc(per * 4);
    const maskPtr = K.alloc(per);
    magnitudeSelect(K, k, streamPass(K, w, src, per), (p, start, count, thr, ties) => {
      const left = K.raw.prune_select_f32(p, count, thr, ties, 0, maskPtr) as number;
      mask.set(K.u8(maskPtr, count), start);
      return left;
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
  const per = Math.min(cacheWindowElements(5, 16, opts), Math.max(w.length, 1));
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

export interface PruneOptions extends KernelOptions {
  /**
   * Where to write the result (same length as `w`) instead of a new array; may be `w` itself
   * (prune in place) but must not otherwise overlap it. Saves allocating the output, which for
   * big tensors costs about as much as the pruning itself (fresh pages).
   */
  out?: Float32Array;
}

/**
 * `w` with its k smallest-magnitude elements set to +0 (same selection as `magnitudeMask`), in a
 * new array or `opts.out`. The values are written by the selection pass itself, in place in the
 * arena: no mask is built. A tensor within the window budget is copied in once for all passes.
 */
export function magnitudePrune(w: Float32Array, k: number, opts?: PruneOptions): Float32Array {
  checkK(w.length, k);
  const n = w.length;
  if (opts?.out && opts.out.length !== n) {
    throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `output has ${opts.out.length} elements, tensor has ${n}`);
  }
  const out = opts?.out ?? new Float32Array(n);
  if (k === 0 || n === 0) {
    if (out !== w) out.set(w);
    return out;
  }
  const K = resolveKernels(opts);
  const per = Math.min(windowElements(4, 16, opts), n);
  withArena(K, () => {
    const buf = K.alloc(per * 4);
    if (per === n) {
      K.f32(buf, n).set(w);
      magnitudePruneArena(K, buf, n, k);
      out.set(K.f32(buf, n));
      return;
    }
    magnitudeSelect(K, k, streamPass(K, w, buf, per), (p, start, count, thr, ties) => {
      const left = K.raw.prune_select_f32(p, count, thr, ties, p, 0) as number;
      out.set(K.f32(p, count), start);
      return left;
    });
  });
  return out;
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
