/**
 * Builders for the GraphDef pieces the SavedModel writer emits (and tests use): attrs, shapes,
 * Const tensors, nodes. Only the fields TF requires are set; proto3 leaves the rest implicit.
 */
import { create } from '@bufbuild/protobuf';
import { dtypeInfo, type DType } from '../../core/dtype.js';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { AttrValueSchema, AttrValue_ListValueSchema, NodeDefSchema, type AttrValue, type NodeDef } from './gen/tensorflow/graph_pb.js';
import { TensorInfoSchema, type TensorInfo } from './gen/tensorflow/meta_graph_pb.js';
import { TensorProtoSchema, TensorShapeProtoSchema, TensorShapeProto_DimSchema, type DataType, type TensorProto, type TensorShapeProto } from './gen/tensorflow/types_pb.js';

const utf8 = new TextEncoder();

/** TF DataType of one of our dtypes, or E_DTYPE. */
export function tfDtype(dtype: DType, ctx: { tensor?: string } = {}): DataType {
  const tf = dtypeInfo(dtype).tf;
  if (tf === undefined) throw new ModelsmithError(ErrorCodes.DTYPE, `TensorFlow has no dtype for ${dtype}`, { format: 'savedmodel', ...ctx });
  return tf as DataType;
}

/** Shape proto; null = unknown rank, -1 = unknown dim. */
export function shapeProto(dims: readonly number[] | null): TensorShapeProto {
  if (dims === null) return create(TensorShapeProtoSchema, { unknownRank: true });
  return create(TensorShapeProtoSchema, { dim: dims.map((d) => create(TensorShapeProto_DimSchema, { size: BigInt(d) })) });
}

export const attr = {
  type: (t: DataType): AttrValue => create(AttrValueSchema, { value: { case: 'type', value: t } }),
  shape: (dims: readonly number[] | null): AttrValue => create(AttrValueSchema, { value: { case: 'shape', value: shapeProto(dims) } }),
  s: (s: string): AttrValue => create(AttrValueSchema, { value: { case: 's', value: utf8.encode(s) } }),
  tensor: (t: TensorProto): AttrValue => create(AttrValueSchema, { value: { case: 'tensor', value: t } }),
  types: (ts: DataType[]): AttrValue => create(AttrValueSchema, { value: { case: 'list', value: create(AttrValue_ListValueSchema, { type: ts }) } }),
};

export function node(name: string, op: string, inputs: string[], attrs: Record<string, AttrValue> = {}): NodeDef {
  return create(NodeDefSchema, { name, op, input: inputs, attr: attrs });
}

/** A DT_STRING tensor (strings are never stored in tensor_content). */
export function stringTensor(values: string[], dims: number[] = [values.length]): TensorProto {
  return create(TensorProtoSchema, { dtype: 7 as DataType, tensorShape: shapeProto(dims), stringVal: values.map((v) => utf8.encode(v)) });
}

export function int32Tensor(values: number[], dims: number[] = [values.length]): TensorProto {
  return create(TensorProtoSchema, { dtype: 3 as DataType, tensorShape: shapeProto(dims), intVal: values });
}

/** A scalar zero of `dtype`, via the typed field TF reads for it. */
export function zeroScalar(dtype: DType, ctx: { tensor?: string } = {}): TensorProto {
  const t = create(TensorProtoSchema, { dtype: tfDtype(dtype, ctx), tensorShape: shapeProto([]) });
  switch (dtype) {
    case 'float32': t.floatVal = [0]; break;
    case 'float64': t.doubleVal = [0]; break;
    case 'int64': t.int64Val = [0n]; break;
    case 'uint32': t.uint32Val = [0]; break;
    case 'uint64': t.uint64Val = [0n]; break;
    case 'bool': t.boolVal = [false]; break;
    case 'float16': case 'bfloat16': t.halfVal = [0]; break;
    case 'int32': case 'int16': case 'int8': case 'uint8': case 'uint16': t.intVal = [0]; break;
    case 'complex64': t.scomplexVal = [0, 0]; break;
    case 'complex128': t.dcomplexVal = [0, 0]; break;
    default:
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `cannot build a ${dtype} variable initializer`, { format: 'savedmodel', ...ctx });
  }
  return t;
}

export function tensorInfo(name: string, dtype: DType, dims: readonly number[] | null): TensorInfo {
  return create(TensorInfoSchema, { encoding: { case: 'name', value: name }, dtype: tfDtype(dtype), tensorShape: shapeProto(dims) });
}
