/**
 * Small builders for ONNX messages that passes, benches and tests construct by hand: a tensor-typed
 * ValueInfo and a raw_data TensorProto. The generated `create(...)` calls are verbose enough that
 * each caller used to carry its own copy.
 */
import { create } from '@bufbuild/protobuf';
import {
  TensorProtoSchema,
  TensorShapeProtoSchema,
  TensorShapeProto_DimensionSchema,
  TypeProtoSchema,
  TypeProto_TensorSchema,
  ValueInfoProtoSchema,
  type TensorProto,
  type ValueInfoProto,
} from 'onnx-buf';

/** ValueInfo of a tensor: numeric dims are dim_value, strings are dim_param (symbolic). elemType 1 = float. */
export function tensorValueInfo(name: string, dims: readonly (number | string)[], elemType = 1): ValueInfoProto {
  return create(ValueInfoProtoSchema, {
    name,
    type: create(TypeProtoSchema, {
      value: {
        case: 'tensorType',
        value: create(TypeProto_TensorSchema, {
          elemType,
          shape: create(TensorShapeProtoSchema, {
            dim: dims.map((d) => create(TensorShapeProto_DimensionSchema, { value: typeof d === 'number' ? { case: 'dimValue', value: BigInt(d) } : { case: 'dimParam', value: d } })),
          }),
        }),
      },
    }),
  });
}

/** A float32 TensorProto holding a copy of `data` in raw_data. */
export function float32TensorProto(name: string, dims: readonly number[], data: Float32Array): TensorProto {
  const raw = new Uint8Array(data.byteLength);
  raw.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return create(TensorProtoSchema, { name, dims: dims.map((d) => BigInt(d)), dataType: 1, rawData: raw });
}
