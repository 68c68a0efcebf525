/**
 * Value construction and conversion between the engine's `Value` and the readers' `Tensor`
 * (little-endian bytes). Conversions copy: engine values are owned, aligned typed arrays.
 */
import type { Tensor } from '../core/tensor.js';
import { numel, typedView } from '../core/tensor.js';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import type { EData, EDType, FValue, Value } from './types.js';

/** A float32 value; `data` defaults to zeros. */
export function fvalue(dims: readonly number[], data?: Float32Array): FValue {
  const n = numel(dims);
  if (data && data.length !== n) {
    throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `value [${dims.join(',')}] needs ${n} elements, got ${data.length}`);
  }
  return { dtype: 'float32', dims: [...dims], data: data ?? new Float32Array(n) };
}

/** An int64 value from plain numbers (shapes, axes, indices). */
export function ivalue(dims: readonly number[], values: readonly number[]): Value {
  return { dtype: 'int64', dims: [...dims], data: BigInt64Array.from(values, (v) => BigInt(v)) };
}

/** Elements of an integer value as numbers (int64 beyond ±2^53 is refused: no shape is that big). */
export function intsOf(v: Value, what = 'value'): number[] {
  const out: number[] = [];
  for (const x of v.data as Iterable<number | bigint>) {
    const n = Number(x);
    if (!Number.isSafeInteger(n)) throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `${what}: ${String(x)} is not a safe integer`);
    out.push(n);
  }
  return out;
}

const FROM_TENSOR: Partial<Record<string, EDType>> = { float32: 'float32', int64: 'int64', int32: 'int32', bool: 'bool' };

/** A reader tensor as an engine value (copied). float64/float16 and other types are refused: the engine computes in float32. */
export function toValue(t: Tensor): Value {
  const dtype = FROM_TENSOR[t.dtype];
  if (!dtype) throw new ModelsmithError(ErrorCodes.DTYPE, `the execution engine does not compute with ${t.dtype}`, { tensor: t.name });
  const view = typedView(t);
  const data =
    dtype === 'float32' ? Float32Array.from(view as Float32Array)
    : dtype === 'int64' ? BigInt64Array.from(view as BigInt64Array)
    : dtype === 'int32' ? Int32Array.from(view as Int32Array)
    : Uint8Array.from(view as Uint8Array);
  return { dtype, dims: [...t.shape], data };
}

/** An engine value as a reader tensor (bytes copied, so later in-place updates do not leak into it). */
export function toTensor(v: Value, name: string): Tensor {
  const src = new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength);
  return { name, dtype: v.dtype, shape: [...v.dims], data: Uint8Array.from(src) };
}

/** A zero-filled array for `n` elements of `dtype` (bool is one byte per element, as ONNX stores it). */
export function allocData(dtype: EDType, n: number): EData {
  switch (dtype) {
    case 'float32': return new Float32Array(n);
    case 'int64': return new BigInt64Array(n);
    case 'int32': return new Int32Array(n);
    case 'bool': return new Uint8Array(n);
  }
}

/** A value of any engine dtype with fresh zeroed data. */
export function zeroValue(dtype: EDType, dims: readonly number[]): Value {
  return { dtype, dims: [...dims], data: allocData(dtype, numel(dims)) };
}

/** The same data under other dims (no copy: engine values are never mutated by ops, so sharing is safe). */
export function reshapeValue<V extends Value>(v: V, dims: readonly number[]): V {
  return { ...v, dims: [...dims] };
}

/** `node.opType node.name`, the `op` context every engine error carries. */
export function opLabel(node: { opType: string; name: string }): string {
  return node.name ? `${node.opType} ${node.name}` : node.opType;
}

/**
 * Input `i` of a node as float32, or E_KERNEL_ARG naming the op (a graph feeding int64 into Relu is
 * malformed for the engine, not something to coerce silently).
 */
export function floatInput(inputs: readonly (Value | undefined)[], i: number, node: { opType: string; name: string }): FValue {
  const v = inputs[i];
  if (!v) throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `input ${i} is missing`, { op: opLabel(node) });
  if (v.dtype !== 'float32') throw new ModelsmithError(ErrorCodes.DTYPE, `input ${i} is ${v.dtype}, the op computes in float32`, { op: opLabel(node) });
  return v as FValue;
}

/** Input `i`, present, of any dtype. */
export function anyInput(inputs: readonly (Value | undefined)[], i: number, node: { opType: string; name: string }): Value {
  const v = inputs[i];
  if (!v) throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `input ${i} is missing`, { op: opLabel(node) });
  return v;
}

/** Element `i` of any engine value as a JS number (int64 beyond 2^53 loses precision, which no shape or index reaches). */
export function numAt(data: EData, i: number): number {
  return Number(data[i]);
}
