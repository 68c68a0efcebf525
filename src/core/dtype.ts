/**
 * The one dtype table. Every format's type codes map through here; nothing else in the code base
 * keeps its own list. Sub-byte types (int4, uint4, float4, int2, uint2) have `bits` < 8 and are
 * stored packed, first element in the lowest bits (ONNX order).
 */
export type DType =
  | 'float32' | 'uint8' | 'int8' | 'uint16' | 'int16' | 'int32' | 'int64' | 'string' | 'bool'
  | 'float16' | 'float64' | 'uint32' | 'uint64' | 'complex64' | 'complex128' | 'bfloat16'
  | 'float8e4m3fn' | 'float8e4m3fnuz' | 'float8e5m2' | 'float8e5m2fnuz'
  | 'uint4' | 'int4' | 'float4e2m1' | 'float8e8m0' | 'uint2' | 'int2';

export interface DTypeInfo {
  name: DType;
  /** Bits per element; 0 for string (variable length). */
  bits: number;
  onnx: number;
  /** torch.dtype attribute name (`torch.float32` → "float32"), undefined where torch has none. */
  torch?: string;
  /** Legacy torch Storage class for dtypes that have one. */
  torchStorage?: string;
  safetensors?: string;
  /** tensorflow DataType enum number. */
  tf?: number;
  /** Caffe stores float (data) or double (double_data) only. */
  caffe?: 'data' | 'double_data';
  isFloat: boolean;
  isSigned: boolean;
}

const T = (
  name: DType, bits: number, onnx: number, isFloat: boolean, isSigned: boolean,
  extra: Partial<Pick<DTypeInfo, 'torch' | 'torchStorage' | 'safetensors' | 'tf' | 'caffe'>> = {},
): DTypeInfo => ({ name, bits, onnx, isFloat, isSigned, ...extra });

export const DTYPES: readonly DTypeInfo[] = [
  T('float32', 32, 1, true, true, { torch: 'float32', torchStorage: 'FloatStorage', safetensors: 'F32', tf: 1, caffe: 'data' }),
  T('uint8', 8, 2, false, false, { torch: 'uint8', torchStorage: 'ByteStorage', safetensors: 'U8', tf: 4 }),
  T('int8', 8, 3, false, true, { torch: 'int8', torchStorage: 'CharStorage', safetensors: 'I8', tf: 6 }),
  T('uint16', 16, 4, false, false, { torch: 'uint16', safetensors: 'U16', tf: 17 }),
  T('int16', 16, 5, false, true, { torch: 'int16', torchStorage: 'ShortStorage', safetensors: 'I16', tf: 5 }),
  T('int32', 32, 6, false, true, { torch: 'int32', torchStorage: 'IntStorage', safetensors: 'I32', tf: 3 }),
  T('int64', 64, 7, false, true, { torch: 'int64', torchStorage: 'LongStorage', safetensors: 'I64', tf: 9 }),
  T('string', 0, 8, false, false, { tf: 7 }),
  T('bool', 8, 9, false, false, { torch: 'bool', torchStorage: 'BoolStorage', safetensors: 'BOOL', tf: 10 }),
  T('float16', 16, 10, true, true, { torch: 'float16', torchStorage: 'HalfStorage', safetensors: 'F16', tf: 19 }),
  T('float64', 64, 11, true, true, { torch: 'float64', torchStorage: 'DoubleStorage', safetensors: 'F64', tf: 2, caffe: 'double_data' }),
  T('uint32', 32, 12, false, false, { torch: 'uint32', safetensors: 'U32', tf: 22 }),
  T('uint64', 64, 13, false, false, { torch: 'uint64', safetensors: 'U64', tf: 23 }),
  T('complex64', 64, 14, true, true, { torch: 'complex64', torchStorage: 'ComplexFloatStorage', safetensors: 'C64', tf: 8 }),
  T('complex128', 128, 15, true, true, { torch: 'complex128', torchStorage: 'ComplexDoubleStorage', tf: 18 }),
  T('bfloat16', 16, 16, true, true, { torch: 'bfloat16', torchStorage: 'BFloat16Storage', safetensors: 'BF16', tf: 14 }),
  T('float8e4m3fn', 8, 17, true, true, { torch: 'float8_e4m3fn', safetensors: 'F8_E4M3', tf: 25 }),
  T('float8e4m3fnuz', 8, 18, true, true, { torch: 'float8_e4m3fnuz', safetensors: 'F8_E4M3FNUZ' }),
  T('float8e5m2', 8, 19, true, true, { torch: 'float8_e5m2', safetensors: 'F8_E5M2', tf: 24 }),
  T('float8e5m2fnuz', 8, 20, true, true, { torch: 'float8_e5m2fnuz', safetensors: 'F8_E5M2FNUZ' }),
  T('uint4', 4, 21, false, false, { tf: 30 }),
  T('int4', 4, 22, false, true, { tf: 29 }),
  T('float4e2m1', 4, 23, true, true, { safetensors: 'F4' }),
  T('float8e8m0', 8, 24, true, false, { torch: 'float8_e8m0fnu', safetensors: 'F8_E8M0' }),
  T('uint2', 2, 25, false, false),
  T('int2', 2, 26, false, true),
];

const byName = new Map<DType, DTypeInfo>(DTYPES.map((d) => [d.name, d]));
const byOnnx = new Map<number, DTypeInfo>(DTYPES.map((d) => [d.onnx, d]));

export function dtypeInfo(name: DType): DTypeInfo {
  const d = byName.get(name);
  if (!d) throw new Error(`unknown dtype ${String(name)}`); // programming error: DType is a closed union
  return d;
}

/** ONNX TensorProto.DataType → dtype, or undefined for 0/UNDEFINED and codes this table does not know. */
export function dtypeFromOnnx(code: number): DTypeInfo | undefined {
  return byOnnx.get(code);
}

export function dtypeFromKey<K extends 'torch' | 'safetensors' | 'tf' | 'torchStorage'>(key: K, value: DTypeInfo[K]): DTypeInfo | undefined {
  return DTYPES.find((d) => d[key] === value);
}

/**
 * Bytes needed for `count` elements. Sub-byte types round up to whole bytes (ONNX packs them
 * contiguously, so a 3-element int4 tensor takes 2 bytes). Returns -1 for strings.
 */
export function byteLength(dtype: DType, count: number): number {
  const bits = dtypeInfo(dtype).bits;
  if (bits === 0) return -1;
  if (bits >= 8) return count * (bits / 8);
  return Math.ceil((count * bits) / 8);
}
