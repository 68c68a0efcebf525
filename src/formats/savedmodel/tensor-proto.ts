/**
 * TensorProto (Const node values, signature defaults) → Tensor, following TF's rules: numeric data in
 * `tensor_content` (raw little-endian) or in the typed `*_val` field, where fewer values than
 * elements means "repeat the last one" (an empty field means zeros). That splat rule lets a few
 * bytes declare a huge tensor, so the expanded size is capped before anything is allocated.
 */
import { byteLength, type DType } from '../../core/dtype.js';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { numel, type Tensor } from '../../core/tensor.js';
import type { GraphDef } from './gen/tensorflow/graph_pb.js';
import type { TensorProto } from './gen/tensorflow/types_pb.js';
import type { LazyTensor, WeightSet } from '../weights.js';
import { dtypeFromTf, shapeDims, tfDtypeLabel } from './tf-types.js';

export interface TensorProtoOptions {
  name?: string;
  path?: string;
  format?: string;
  /** Cap on the decoded size (default 1 GiB): splatted tensors are tiny on disk but not in memory. */
  maxBytes?: number;
}

export const DEFAULT_MAX_TENSOR_BYTES = 2 ** 30;

function ctxOf(o: TensorProtoOptions) {
  return { format: o.format ?? 'savedmodel', ...(o.path !== undefined ? { path: o.path } : {}), ...(o.name !== undefined ? { tensor: o.name } : {}) };
}

/** dtype, shape and decoded byte size of a TensorProto, without decoding its values. */
export function tensorProtoInfo(t: TensorProto, o: TensorProtoOptions = {}): { dtype: DType; shape: number[]; count: number; bytes: number } {
  const ctx = ctxOf(o);
  const dtype = dtypeFromTf(t.dtype);
  if (!dtype) throw new ModelsmithError(ErrorCodes.DTYPE, `TensorProto dtype ${tfDtypeLabel(t.dtype)} is not supported`, ctx);
  const shape = shapeDims(t.tensorShape);
  // TF's loader refuses negative dims in saved tensors too (ValidateSavedTensors).
  if (shape === null || shape.some((d) => !(d >= 0))) throw new ModelsmithError(ErrorCodes.MALFORMED, `TensorProto shape [${shape?.join(',') ?? '?'}] is not fully defined`, ctx);
  const count = numel(shape, ctx);
  const bytes = dtype === 'string' ? t.stringVal.reduce((a, s) => a + s.length, 0) : byteLength(dtype, count);
  // A splatted string tensor costs a reference per element even when its bytes are shared.
  const heap = dtype === 'string' ? bytes + 8 * count : bytes;
  if (heap > (o.maxBytes ?? DEFAULT_MAX_TENSOR_BYTES)) {
    throw new ModelsmithError(ErrorCodes.LIMIT, `TensorProto ${dtype}[${shape.join(',')}] would take ${bytes} bytes`, ctx);
  }
  return { dtype, shape, count, bytes };
}

/** Repeat-last expansion of a typed field into `count` elements written by `put`. */
function splat<T>(values: ArrayLike<T>, count: number, zero: T, put: (i: number, v: T) => void, ctx: ReturnType<typeof ctxOf>): void {
  if (values.length > count) throw new ModelsmithError(ErrorCodes.TENSOR_SIZE, `TensorProto has ${values.length} values for ${count} elements`, ctx);
  const last = values.length > 0 ? values[values.length - 1]! : zero;
  for (let i = 0; i < count; i++) put(i, i < values.length ? values[i]! : last);
}

export function tensorFromProto(t: TensorProto, o: TensorProtoOptions = {}): Tensor {
  const ctx = ctxOf(o);
  const { dtype, shape, count, bytes } = tensorProtoInfo(t, o);
  const name = o.name ?? '';
  if (dtype === 'string') {
    const strings: Uint8Array[] = [];
    splat(t.stringVal, count, new Uint8Array(0), (_i, v) => strings.push(v), ctx);
    return { name, dtype, shape, data: new Uint8Array(0), strings };
  }
  if (t.tensorContent.length > 0) {
    if (t.tensorContent.length !== bytes) {
      throw new ModelsmithError(ErrorCodes.TENSOR_SIZE, `${dtype}[${shape.join(',')}] needs ${bytes} bytes, tensor_content has ${t.tensorContent.length}`, ctx);
    }
    return { name, dtype, shape, data: t.tensorContent };
  }
  const data = new Uint8Array(bytes);
  const dv = new DataView(data.buffer);
  switch (dtype) {
    case 'float32': splat(t.floatVal, count, 0, (i, v) => dv.setFloat32(4 * i, v, true), ctx); break;
    case 'float64': splat(t.doubleVal, count, 0, (i, v) => dv.setFloat64(8 * i, v, true), ctx); break;
    case 'int32': splat(t.intVal, count, 0, (i, v) => dv.setInt32(4 * i, v, true), ctx); break;
    case 'int16': case 'uint16': splat(t.intVal, count, 0, (i, v) => dv.setUint16(2 * i, v & 0xffff, true), ctx); break;
    case 'int8': case 'uint8': splat(t.intVal, count, 0, (i, v) => dv.setUint8(i, v & 0xff), ctx); break;
    case 'float16': case 'bfloat16': splat(t.halfVal, count, 0, (i, v) => dv.setUint16(2 * i, v & 0xffff, true), ctx); break;
    case 'int64': splat(t.int64Val, count, 0n, (i, v) => dv.setBigInt64(8 * i, v, true), ctx); break;
    case 'uint64': splat(t.uint64Val, count, 0n, (i, v) => dv.setBigUint64(8 * i, v, true), ctx); break;
    case 'uint32': splat(t.uint32Val, count, 0, (i, v) => dv.setUint32(4 * i, v, true), ctx); break;
    case 'bool': splat(t.boolVal, count, false, (i, v) => dv.setUint8(i, v ? 1 : 0), ctx); break;
    case 'float8e4m3fn': case 'float8e5m2': splat(t.float8Val, count, 0, (i, v) => dv.setUint8(i, v), ctx); break;
    case 'complex64': splatPairs(t.scomplexVal, count, (i, re, im) => { dv.setFloat32(8 * i, re, true); dv.setFloat32(8 * i + 4, im, true); }, ctx); break;
    case 'complex128': splatPairs(t.dcomplexVal, count, (i, re, im) => { dv.setFloat64(16 * i, re, true); dv.setFloat64(16 * i + 8, im, true); }, ctx); break;
    default:
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `typed values of ${dtype} TensorProtos are not supported`, ctx);
  }
  return { name, dtype, shape, data };
}

function splatPairs(values: number[], count: number, put: (i: number, re: number, im: number) => void, ctx: ReturnType<typeof ctxOf>): void {
  if (values.length % 2 !== 0) throw new ModelsmithError(ErrorCodes.MALFORMED, 'complex values come in (real, imaginary) pairs', ctx);
  const pairs = Array.from({ length: values.length / 2 }, (_, k) => [values[2 * k]!, values[2 * k + 1]!] as const);
  splat(pairs, count, [0, 0] as const, (i, [re, im]) => put(i, re, im), ctx);
}

/**
 * The weights of a frozen GraphDef: every top-level Const node, as lazy tensors decoded on load().
 * Consts whose dtype modelsmith lacks (or string consts) are listed in diagnostics and skipped.
 */
export function graphConstants(graph: GraphDef, o: { path?: string; maxBytes?: number } = {}): WeightSet {
  const tensors: LazyTensor[] = [];
  const diagnostics: WeightSet['diagnostics'] = [];
  for (const n of graph.node) {
    if (n.op !== 'Const') continue;
    const v = n.attr['value']?.value;
    if (v?.case !== 'tensor') {
      // TF refuses these at import time ("Const node without value").
      throw new ModelsmithError(ErrorCodes.MALFORMED, 'Const node has no tensor value', { format: 'tf-graphdef', ...(o.path !== undefined ? { path: o.path } : {}), op: n.name });
    }
    const proto = v.value;
    const opts = { name: n.name, format: 'tf-graphdef', ...o };
    let info;
    try {
      info = tensorProtoInfo(proto, opts);
    } catch (e) {
      if (e instanceof ModelsmithError && e.code === ErrorCodes.DTYPE) {
        diagnostics.push({ level: 'warning', code: 'TF_CONST_DTYPE', message: e.message, tensor: n.name });
        continue;
      }
      throw e;
    }
    if (info.dtype === 'string') continue;
    tensors.push({ name: n.name, dtype: info.dtype, shape: info.shape, byteLength: info.bytes, load: async () => tensorFromProto(proto, opts).data });
  }
  return { format: 'tf-graphdef', ...(o.path !== undefined ? { path: o.path } : {}), tensors, diagnostics };
}
