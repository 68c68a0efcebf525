/**
 * Shared pieces of the weight-container passes (compress/weights/*): a pass over a WeightSet maps
 * each LazyTensor to zero or more new LazyTensors whose `load()` does the work on demand. Nothing is
 * computed up front, so a writer streaming the result holds one tensor at a time, whatever the file size.
 *
 * Which tensors are weights: floating tensors (float32/float16/bfloat16/float64) with at least two
 * dimensions, unless `includeOneDim` (biases and norm parameters are 1-D and cheap, and quantizing or
 * pruning them costs accuracy for nothing) — the same default as the ONNX passes.
 */
import { dtypeInfo, type DType } from '../../core/dtype.js';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { numel } from '../../core/tensor.js';
import { castBf16ToF32, castF16ToF32, castF32ToBf16, castF32ToF16, castF64ToF32 } from '../../kernels/cast.js';
import type { LazyTensor, WeightSet } from '../../formats/weights.js';

export interface SelectOptions {
  /** Also process 1-D tensors (default false). */
  includeOneDim?: boolean;
  /** Names to leave alone: exact names, or globs where `*` matches any run of characters. */
  exclude?: string[];
}

export const FLOAT_DTYPES: ReadonlySet<DType> = new Set<DType>(['float32', 'float16', 'bfloat16', 'float64']);

/** Why a tensor is not processed, or undefined when it is. */
export function skipReason(t: LazyTensor, opts: SelectOptions, excluded: (name: string) => boolean): string | undefined {
  if (!FLOAT_DTYPES.has(t.dtype)) return `${t.dtype} is not a floating type`;
  if (excluded(t.name)) return 'excluded by name';
  if (t.shape.length < 2 && !opts.includeOneDim) return `${t.shape.length}-D (pass includeOneDim / --include-1d to include)`;
  if (numel(t.shape, { tensor: t.name }) === 0) return 'empty';
  return undefined;
}

/** A predicate for exclusion lists of exact names and `*` globs. */
export function nameMatcher(patterns: readonly string[] = []): (name: string) => boolean {
  const exact = new Set(patterns.filter((p) => !p.includes('*')));
  const globs = patterns.filter((p) => p.includes('*')).map((p) => new RegExp('^' + p.split('*').map(escapeRe).join('.*') + '$', 's'));
  return (name) => exact.has(name) || globs.some((g) => g.test(name));
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Bytes of a floating tensor as float32 (widening float16/bfloat16, narrowing float64 with a range check). */
export function toFloat32(dtype: DType, bytes: Uint8Array, name: string): Float32Array {
  // new Uint8Array(bytes) copies to offset 0; a Node Buffer's slice() would stay an unaligned view.
  const aligned = (es: number) => (bytes.byteOffset % es === 0 ? bytes : new Uint8Array(bytes));
  switch (dtype) {
    case 'float32': {
      const b = aligned(4);
      return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    }
    case 'float16': {
      const b = aligned(2);
      return castF16ToF32(new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2));
    }
    case 'bfloat16': {
      const b = aligned(2);
      return castBf16ToF32(new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2));
    }
    case 'float64': {
      const b = aligned(8);
      return castF64ToF32(new Float64Array(b.buffer, b.byteOffset, b.byteLength / 8));
    }
    default:
      throw new ModelsmithError(ErrorCodes.DTYPE, `${dtype} is not a floating type`, { tensor: name });
  }
}

/** float32 values stored back in a floating dtype (float16 clamped to its finite range, as the ONNX cast pass does). */
export function fromFloat32(x: Float32Array, dtype: DType, name: string): Uint8Array {
  switch (dtype) {
    case 'float32':
      return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    case 'float16': {
      const h = castF32ToF16(x, { clampFinite: true });
      return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
    }
    case 'bfloat16': {
      const h = castF32ToBf16(x);
      return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
    }
    case 'float64': {
      const d = Float64Array.from(x);
      return new Uint8Array(d.buffer);
    }
    default:
      throw new ModelsmithError(ErrorCodes.DTYPE, `cannot store float values as ${dtype}`, { tensor: name });
  }
}

/** A LazyTensor with new facts and a new loader, keeping nothing of the source but what is passed. */
export function derived(name: string, dtype: DType, shape: number[], load: () => Promise<Uint8Array>, extra?: Record<string, unknown>): LazyTensor {
  const n = numel(shape, { tensor: name });
  const bits = dtypeInfo(dtype).bits;
  return { name, dtype, shape, byteLength: Math.ceil((n * bits) / 8), load, ...(extra ? { extra } : {}) };
}

/**
 * Memoises the last result of an expensive per-tensor computation whose output is split over several
 * LazyTensors (quantized data + scales + zero points). Writers load those one after another, but not
 * necessarily adjacently (safetensors orders by dtype), so on a miss the work is redone rather than
 * kept: memory stays bounded by one tensor's result.
 */
export function lastResultCache<T>(): (key: string, compute: () => Promise<T>) => Promise<T> {
  let lastKey: string | undefined;
  let last: Promise<T> | undefined;
  return (key, compute) => {
    if (key !== lastKey || !last) {
      lastKey = key;
      last = compute();
    }
    return last;
  };
}

/** Refuse two tensors with the same name in a pass's output (e.g. `w.scale` already existing). */
export function checkUniqueNames(tensors: readonly LazyTensor[], pass: string): void {
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name)) {
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `${pass} would create two tensors named '${t.name}' (the input already holds that name)`, { tensor: t.name });
    }
    seen.add(t.name);
  }
}

export interface WeightPassTensor {
  name: string;
  dtype: DType;
  shape: number[];
  bytesBefore: number;
  bytesAfter: number;
}

export interface WeightPassReport {
  processed: WeightPassTensor[];
  skipped: { name: string; reason: string }[];
  bytesBefore: number;
  bytesAfter: number;
  ratio: number;
}

export function finishReport(set: WeightSet, out: readonly LazyTensor[], processed: WeightPassTensor[], skipped: { name: string; reason: string }[]): WeightPassReport {
  const bytesBefore = set.tensors.reduce((s, t) => s + t.byteLength, 0);
  const bytesAfter = out.reduce((s, t) => s + t.byteLength, 0);
  return { processed, skipped, bytesBefore, bytesAfter, ratio: bytesBefore > 0 ? bytesAfter / bytesBefore : 1 };
}
