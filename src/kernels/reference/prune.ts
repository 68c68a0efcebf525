/**
 * Plain-TypeScript twins of the prune kernels (assembly/prune.ts), plus the argument checks and
 * the histogram threshold search that the WASM wrapper shares.
 *
 * Ranking: key = float32 bits of |w|, every NaN mapped to one key just above +Inf. So NaN counts
 * as the largest magnitude (pruned last), -0 and +0 tie, and pruned elements become +0.
 * Ties: magnitude pruning zeroes equal keys at the threshold in index order (lowest index first),
 * so exactly k elements are zeroed; N:M keeps, among equal keys, the lowest index.
 */
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';

export const NAN_KEY = 0x7f800001;
/** Bins for the top 16 key bits (keys are < 2^31) and for the low 16 bits. */
export const HI_BINS = 1 << 15;
export const LO_BINS = 1 << 16;

export function pruneKey(bits: number): number {
  return Math.min(bits & 0x7fffffff, NAN_KEY);
}

function bitsOf(w: Float32Array): Uint32Array {
  return new Uint32Array(w.buffer, w.byteOffset, w.length);
}

export function checkK(n: number, k: number): void {
  if (!Number.isInteger(k) || k < 0 || k > n) {
    throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `prune count k=${k} must be an integer in [0, ${n}]`);
  }
}

/** First bin where the running count reaches k (1 <= k <= total), and the count below it. */
export function histSelect(hist: Uint32Array, k: number): { bin: number; below: number } {
  let below = 0;
  for (let b = 0; b < hist.length; b++) {
    const c = hist[b]!;
    if (below + c >= k) return { bin: b, below };
    below += c;
  }
  throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `histogram holds fewer than ${k} elements`);
}

/** Mask (1 = prune) selecting exactly k elements of smallest |w|. */
export function magnitudeMaskRef(w: Float32Array, k: number): Uint8Array {
  checkK(w.length, k);
  const mask = new Uint8Array(w.length);
  if (k === 0) return mask;
  const bits = bitsOf(w);
  const hiHist = new Uint32Array(HI_BINS);
  for (let i = 0; i < bits.length; i++) hiHist[pruneKey(bits[i]!) >>> 16]!++;
  const hi = histSelect(hiHist, k);
  const loHist = new Uint32Array(LO_BINS);
  for (let i = 0; i < bits.length; i++) {
    const key = pruneKey(bits[i]!);
    if (key >>> 16 === hi.bin) loHist[key & 0xffff]!++;
  }
  const lo = histSelect(loHist, k - hi.below);
  const thr = ((hi.bin << 16) | lo.bin) >>> 0;
  let ties = k - hi.below - lo.below;
  for (let i = 0; i < bits.length; i++) {
    const key = pruneKey(bits[i]!);
    if (key < thr) mask[i] = 1;
    else if (key === thr && ties > 0) { mask[i] = 1; ties--; }
  }
  return mask;
}

/** Zero (as +0) the elements whose mask byte is non-zero; returns the values and that count. */
export function applyMaskRef(w: Float32Array, mask: Uint8Array): { values: Float32Array; count: number } {
  checkSameLength(w.length, mask.length);
  const values = new Float32Array(w);
  let count = 0;
  for (let i = 0; i < w.length; i++) {
    if (mask[i] !== 0) { values[i] = 0; count++; }
  }
  return { values, count };
}

export function magnitudePruneRef(w: Float32Array, k: number): Float32Array {
  return applyMaskRef(w, magnitudeMaskRef(w, k)).values;
}

export function checkSameLength(n: number, maskLength: number): void {
  if (n !== maskLength) {
    throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `mask has ${maskLength} elements, tensor has ${n}`);
  }
}

/** Tensor viewed as [outer, len, inner] around `axis`, after validating the N:M request. */
export interface NmGeometry { outer: number; len: number; inner: number }

export function nmGeometry(length: number, shape: readonly number[], axis: number, n: number, m: number): NmGeometry {
  const bad = (msg: string): ModelsmithError => new ModelsmithError(ErrorCodes.KERNEL_ARG, `N:M ${n}:${m}: ${msg}`);
  if (!Number.isInteger(m) || m < 1 || !Number.isInteger(n) || n < 0 || n > m) throw bad('need integers 0 <= N <= M, M >= 1');
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw bad(`bad shape [${shape.join(', ')}]`);
  const ax = axis < 0 ? axis + shape.length : axis;
  if (!Number.isInteger(ax) || ax < 0 || ax >= shape.length) throw bad(`axis ${axis} out of range for rank ${shape.length}`);
  const size = shape.reduce((a, d) => a * d, 1);
  if (size !== length) throw bad(`shape [${shape.join(', ')}] holds ${size} elements, tensor has ${length}`);
  const len = shape[ax]!;
  if (len % m !== 0) throw bad(`axis ${axis} has length ${len}, not a multiple of M=${m}`);
  let outer = 1;
  for (let i = 0; i < ax; i++) outer *= shape[i]!;
  return { outer, len, inner: len === 0 || outer === 0 ? 0 : size / (outer * len) };
}

/** N:M mask (1 = prune): in each group of M along `axis`, all but the N largest |w| are pruned. */
export function nmMaskRef(w: Float32Array, shape: readonly number[], axis: number, n: number, m: number): Uint8Array {
  const { outer, len, inner } = nmGeometry(w.length, shape, axis, n, m);
  const bits = bitsOf(w);
  const mask = new Uint8Array(w.length);
  const keys = new Array<number>(m);
  for (let o = 0; o < outer; o++) {
    for (let g = 0; g < len; g += m) {
      for (let i = 0; i < inner; i++) {
        const base = (o * len + g) * inner + i;
        for (let j = 0; j < m; j++) keys[j] = pruneKey(bits[base + j * inner]!);
        // Sort the group's positions by (key descending, index ascending); the first N stay.
        const order = keys.map((_, j) => j).sort((a, b) => keys[b]! - keys[a]! || a - b);
        for (let r = n; r < m; r++) mask[base + order[r]! * inner] = 1;
      }
    }
  }
  return mask;
}

export function nmPruneRef(w: Float32Array, shape: readonly number[], axis: number, n: number, m: number): Float32Array {
  return applyMaskRef(w, nmMaskRef(w, shape, axis, n, m)).values;
}
