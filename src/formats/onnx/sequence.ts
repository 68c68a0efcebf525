/**
 * ONNX SequenceProto (onnx-data.proto), the file form of a sequence value in the ONNX node tests'
 * test_data_set folders. onnx-buf carries only onnx.proto, so the few fields needed are read off the
 * wire here: elem_type (2) and tensor_values (3); a sequence of anything but tensors is refused.
 */
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { numel, type Tensor } from '../../core/tensor.js';
import { decodeTensorProto, tensorFromProtoSync } from './tensor.js';

const ELEM_TENSOR = 1;

/** The tensors of a serialized SequenceProto, in order. */
export function decodeSequenceProto(bytes: Uint8Array, path = '<memory>'): Tensor[] {
  const ctx = { format: 'onnx', path };
  const out: Tensor[] = [];
  let elemType = 0;
  try {
    const r = new BinaryReader(bytes);
    while (r.pos < r.len) {
      const at = r.pos;
      const [field, wire] = r.tag();
      if (field === 2 && wire === WireType.Varint) elemType = r.int32();
      else if (field === 3 && wire === WireType.LengthDelimited) {
        const b = r.bytes();
        out.push(tensorFromProtoSync(decodeTensorProto(b, path), { path }));
      } else if (field >= 4 && field <= 7) {
        throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `sequence of non-tensor values (field ${field})`, { ...ctx, offset: at });
      } else r.skip(wire);
    }
  } catch (e) {
    if (e instanceof ModelsmithError) throw e;
    throw new ModelsmithError(ErrorCodes.MALFORMED, `not a valid SequenceProto: ${(e as Error).message}`, { ...ctx, cause: e });
  }
  if (elemType !== ELEM_TENSOR && !(elemType === 0 && out.length === 0)) {
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `sequence elem_type ${elemType} (only tensor sequences)`, ctx);
  }
  return out;
}

/**
 * A sequence as one tensor stacked on a new axis 0 — the form converted TF graphs take sequences in.
 * All elements must share dtype and shape; an empty sequence needs `dtype` and has unknown element
 * shape, so it is refused.
 */
export function stackSequence(name: string, items: Tensor[]): Tensor {
  const ctx = { format: 'onnx', tensor: name };
  const first = items[0];
  if (!first) throw new ModelsmithError(ErrorCodes.UNSUPPORTED, 'an empty sequence has no stacked form (its element shape is unknown)', ctx);
  const same = items.every((t) => t.dtype === first.dtype && t.shape.length === first.shape.length && t.shape.every((d, i) => d === first.shape[i]));
  if (!same) throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `sequence elements differ in dtype or shape (${items.map((t) => `${t.dtype}[${t.shape.join(',')}]`).join(', ')}); only equal ones stack`, ctx);
  numel(first.shape, ctx);
  const data = new Uint8Array(items.reduce((n, t) => n + t.data.byteLength, 0));
  let o = 0;
  for (const t of items) {
    data.set(t.data, o);
    o += t.data.byteLength;
  }
  return { name, dtype: first.dtype, shape: [items.length, ...first.shape], data };
}
