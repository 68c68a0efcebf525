/**
 * Dtype casts on the WASM kernels (assembly/cast.ts); plain-TS twins live in ./reference/cast.ts.
 * Rounding is IEEE round-to-nearest-even and matches numpy `astype(np.float16)` / torch
 * `.to(torch.bfloat16)` / `Math.fround` bit for bit, except for NaN payloads: every NaN these
 * casts produce is quiet, with the input's sign and the top payload bits that fit (numpy keeps
 * signalling NaNs signalling; torch writes one fixed NaN pattern).
 * Inputs of any size are streamed through the arena in windows (see ./window.ts).
 */
import type { Kernels } from './loader.js';
import { type KernelOptions, cacheWindowElements, forEachWindow, resolveKernels, withArena } from './window.js';
import { rangeError } from './reference/cast.js';

type Typed = Uint16Array | Int32Array | Float32Array | Float64Array | BigInt64Array;

export interface F16CastOptions extends KernelOptions {
  /** Finite values beyond ±65504 become ±65504 instead of ±Inf (Inf and NaN are unchanged). */
  clampFinite?: boolean;
}

function bytes(a: Typed, start: number, count: number): Uint8Array {
  const es = a.BYTES_PER_ELEMENT;
  return new Uint8Array(a.buffer, a.byteOffset + start * es, count * es);
}

/**
 * Copy `src` through the arena window by window, calling `run(inPtr, count, outPtr)` on each;
 * a checking kernel returns -1, or the window-relative index of a failing element (then we stop).
 * Bytes are copied (never element values), so NaN payloads survive the trip.
 */
function stream<O extends Typed>(k: Kernels, src: Typed, out: O, opts: KernelOptions | undefined,
  run: (inPtr: number, count: number, outPtr: number) => unknown): { out: O; bad: number } {
  const inEs = src.BYTES_PER_ELEMENT;
  const outEs = out.BYTES_PER_ELEMENT;
  // Multiple of 8 elements so every window but the last runs entirely in the vector loop.
  const per = Math.min(cacheWindowElements(inEs + outEs, 8, opts), Math.max(src.length, 1));
  let bad = -1;
  withArena(k, () => {
    const inPtr = k.alloc(per * inEs);
    const outPtr = k.alloc(per * outEs);
    forEachWindow(src.length, per, (start, count) => {
      if (bad >= 0) return;
      k.u8(inPtr, count * inEs).set(bytes(src, start, count));
      const r = run(inPtr, count, outPtr);
      if (typeof r === 'number' && r >= 0) { bad = start + r; return; }
      bytes(out, start, count).set(k.u8(outPtr, count * outEs));
    });
  });
  return { out, bad };
}

export function castF32ToF16(src: Float32Array, opts?: F16CastOptions): Uint16Array {
  const k = resolveKernels(opts);
  const clamp = opts?.clampFinite ? 1 : 0;
  return stream(k, src, new Uint16Array(src.length), opts, (p, n, q) => k.raw.cast_f32_f16(p, n, q, clamp)).out;
}

export function castF16ToF32(src: Uint16Array, opts?: KernelOptions): Float32Array {
  const k = resolveKernels(opts);
  return stream(k, src, new Float32Array(src.length), opts, (p, n, q) => k.raw.cast_f16_f32(p, n, q)).out;
}

export function castF32ToBf16(src: Float32Array, opts?: KernelOptions): Uint16Array {
  const k = resolveKernels(opts);
  return stream(k, src, new Uint16Array(src.length), opts, (p, n, q) => k.raw.cast_f32_bf16(p, n, q)).out;
}

export function castBf16ToF32(src: Uint16Array, opts?: KernelOptions): Float32Array {
  const k = resolveKernels(opts);
  return stream(k, src, new Float32Array(src.length), opts, (p, n, q) => k.raw.cast_bf16_f32(p, n, q)).out;
}

export function castF64ToF32(src: Float64Array, opts?: KernelOptions): Float32Array {
  const k = resolveKernels(opts);
  return stream(k, src, new Float32Array(src.length), opts, (p, n, q) => k.raw.cast_f64_f32(p, n, q)).out;
}

/** int64 -> int32; throws ModelsmithError E_RANGE_CHECK naming the first out-of-range element. */
export function castI64ToI32(src: BigInt64Array, opts?: KernelOptions): Int32Array {
  const k = resolveKernels(opts);
  const { out, bad } = stream(k, src, new Int32Array(src.length), opts, (p, n, q) => k.raw.cast_i64_i32(p, n, q));
  if (bad >= 0) throw rangeError(bad, src[bad]!);
  return out;
}

export function castI32ToI64(src: Int32Array, opts?: KernelOptions): BigInt64Array {
  const k = resolveKernels(opts);
  return stream(k, src, new BigInt64Array(src.length), opts, (p, n, q) => k.raw.cast_i32_i64(p, n, q)).out;
}
