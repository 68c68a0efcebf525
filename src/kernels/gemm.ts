/**
 * GEMM on the WASM kernels (assembly/gemm.ts): C = alpha·op(A)·op(B) + beta·C, float32, row-major.
 * Two levels: `gemmAt` works on pointers already in linear memory (the execution engine keeps
 * im2col buffers there and chains kernels without copies); `gemm` copies typed arrays in and out.
 */
import type { Kernels } from './loader.js';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';

export interface GemmOptions {
  /** A is stored K×M (use its transpose). */
  transA?: boolean;
  /** B is stored N×K (use its transpose). */
  transB?: boolean;
  alpha?: number;
  /** 0 (default) overwrites C; otherwise C is read and scaled. */
  beta?: number;
}

function checkDims(m: number, n: number, k: number): void {
  for (const d of [m, n, k]) {
    if (!Number.isSafeInteger(d) || d < 0 || d > 0x7fffffff) {
      throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `gemm: bad dimension ${d} (m=${m}, n=${n}, k=${k})`);
    }
  }
}

// A pointer range outside linear memory would trap inside the kernel (a RuntimeError, not ours).
function checkRange(K: Kernels, what: string, ptr: number, elements: number): void {
  const end = ptr + elements * 4;
  if (!Number.isSafeInteger(ptr) || ptr < 0 || end > K.capacity) {
    throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `gemm: ${what} [${ptr}, ${end}) lies outside kernel memory (${K.capacity} bytes)`);
  }
}

/** GEMM on pointers into `K`'s linear memory. Scratch for packing is taken from the arena and released. */
export function gemmAt(K: Kernels, a: number, b: number, c: number, m: number, n: number, k: number, opts: GemmOptions = {}): void {
  checkDims(m, n, k);
  if (m === 0 || n === 0) return;
  checkRange(K, 'A', a, m * k);
  checkRange(K, 'B', b, k * n);
  checkRange(K, 'C', c, m * n);
  const mark = K.mark();
  try {
    const work = K.alloc(Number(K.raw.gemm_work_bytes(m, n, k)));
    K.raw.gemm_f32(a, b, c, m, n, k, opts.transA ? 1 : 0, opts.transB ? 1 : 0, opts.alpha ?? 1, opts.beta ?? 0, work);
  } finally {
    K.reset(mark);
  }
}

/** GEMM on typed arrays: copies A and B (and C when beta ≠ 0) into the arena, runs, copies C out. */
export function gemm(K: Kernels, a: Float32Array, b: Float32Array, c: Float32Array, m: number, n: number, k: number, opts: GemmOptions = {}): void {
  checkDims(m, n, k);
  if (a.length < m * k || b.length < k * n || c.length < m * n) {
    throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `gemm: arrays too short for m=${m}, n=${n}, k=${k} (A ${a.length}, B ${b.length}, C ${c.length})`);
  }
  const mark = K.mark();
  try {
    const pa = K.alloc(m * k * 4);
    const pb = K.alloc(k * n * 4);
    const pc = K.alloc(m * n * 4);
    K.f32(pa, m * k).set(a.subarray(0, m * k));
    K.f32(pb, k * n).set(b.subarray(0, k * n));
    if ((opts.beta ?? 0) !== 0) K.f32(pc, m * n).set(c.subarray(0, m * n));
    gemmAt(K, pa, pb, pc, m, n, k, opts);
    c.set(K.f32(pc, m * n));
  } finally {
    K.reset(mark);
  }
}
