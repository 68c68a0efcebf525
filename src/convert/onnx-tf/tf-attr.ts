/**
 * AttrValue and Const-tensor builders for the converter. The SavedModel builders cover the attrs the
 * writer needs; compute ops also need ints, floats, bools and int lists, which live here so the
 * shared builder module stays the writer's.
 */
import { create } from '@bufbuild/protobuf';
import type { DType } from '../../core/dtype.js';
import type { Tensor } from '../../core/tensor.js';
import { attr, shapeProto, tfDtype } from '../../formats/savedmodel/build.js';
import { AttrValueSchema, AttrValue_ListValueSchema, type AttrValue } from '../../formats/savedmodel/gen/tensorflow/graph_pb.js';
import { TensorProtoSchema, type DataType, type TensorProto } from '../../formats/savedmodel/gen/tensorflow/types_pb.js';
import { carrierOf } from './carriers.js';

export const a = {
  ...attr,
  i: (v: number): AttrValue => create(AttrValueSchema, { value: { case: 'i', value: BigInt(v) } }),
  f: (v: number): AttrValue => create(AttrValueSchema, { value: { case: 'f', value: v } }),
  b: (v: boolean): AttrValue => create(AttrValueSchema, { value: { case: 'b', value: v } }),
  ints: (vs: readonly number[]): AttrValue =>
    create(AttrValueSchema, { value: { case: 'list', value: create(AttrValue_ListValueSchema, { i: vs.map((v) => BigInt(v)) }) } }),
  /** A dtype attr; 8/4/2-bit types name their carrier (carriers.ts), which is what the graph holds. */
  dt: (d: DType): AttrValue => attr.type(tfDtype(carrierOf(d) ?? d)),
};

/**
 * A Const value. One-element tensors go in the typed field (TF writes them that way and OpenCV's
 * importer trips over scalar tensor_content); everything else is raw tensor_content.
 */
export function tensorProtoOf(t: Tensor): TensorProto {
  const dtype = tfDtype(t.dtype, { tensor: t.name }) as DataType;
  const p = create(TensorProtoSchema, { dtype, tensorShape: shapeProto(t.shape) });
  const n = t.shape.reduce((x, y) => x * y, 1);
  const dv = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  if (n === 1) {
    switch (t.dtype) {
      case 'float32': p.floatVal = [dv.getFloat32(0, true)]; return p;
      case 'int32': p.intVal = [dv.getInt32(0, true)]; return p;
      case 'int64': p.int64Val = [dv.getBigInt64(0, true)]; return p;
      case 'bool': p.boolVal = [dv.getUint8(0) !== 0]; return p;
      default: break;
    }
  }
  p.tensorContent = new Uint8Array(t.data);
  return p;
}
