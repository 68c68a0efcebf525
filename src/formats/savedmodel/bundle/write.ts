/**
 * Tensor-bundle checkpoint writer: one data shard with the tensors back to back in the order given
 * (as TF's SaveV2 appends them), then the index with keys in bytewise order, the header entry ""
 * first. Tensors are loaded one at a time, so memory stays bounded by the largest tensor.
 */
import { create, toBinary } from '@bufbuild/protobuf';
import { byteLength, dtypeInfo } from '../../../core/dtype.js';
import { ErrorCodes, ModelsmithError } from '../../../core/errors.js';
import { numel } from '../../../core/tensor.js';
import type { ByteSink } from '../../../io/source.js';
import type { LazyTensor } from '../../weights.js';
import { BundleEntryProtoSchema, BundleHeaderProtoSchema } from '../gen/tensorflow/tensor_bundle_pb.js';
import { TensorShapeProtoSchema, TensorShapeProto_DimSchema, VersionDefSchema } from '../gen/tensorflow/types_pb.js';
import { compareBytes, FORMAT } from './bytes.js';
import { crc32c, maskCrc } from './crc32c.js';
import { BUNDLE_VERSION, STRING_ENCODING } from './read.js';
import { TableWriter } from './sstable-write.js';
import { decodeStringTensor, encodeStringTensor } from './strings.js';

const utf8 = new TextEncoder();

/** A string tensor in the bundle layout, ready for `writeTensorBundle`. */
export function bundleStringTensor(name: string, shape: number[], strings: Uint8Array[]): LazyTensor {
  if (numel(shape, { tensor: name }) !== strings.length) {
    throw new ModelsmithError(ErrorCodes.TENSOR_SIZE, `shape [${shape.join(',')}] needs ${numel(shape)} strings, got ${strings.length}`, { format: FORMAT, tensor: name });
  }
  const { bytes } = encodeStringTensor(strings);
  return { name, dtype: 'string', shape, byteLength: bytes.length, load: async () => bytes, extra: { encoding: STRING_ENCODING, count: strings.length } };
}

export async function writeTensorBundle(tensors: LazyTensor[], indexSink: ByteSink, dataSink: ByteSink): Promise<{ indexBytes: number; dataBytes: number }> {
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === '') throw new ModelsmithError(ErrorCodes.MALFORMED, 'the empty tensor name is reserved for the bundle header', { format: FORMAT });
    if (seen.has(t.name)) throw new ModelsmithError(ErrorCodes.MALFORMED, 'duplicate checkpoint key', { format: FORMAT, tensor: t.name });
    seen.add(t.name);
  }
  const entries: Array<{ key: Uint8Array; value: Uint8Array }> = [];
  let offset = 0;
  for (const t of tensors) {
    const ctx = { format: FORMAT, tensor: t.name };
    const tf = dtypeInfo(t.dtype).tf;
    if (tf === undefined) throw new ModelsmithError(ErrorCodes.DTYPE, `TensorFlow has no dtype for ${t.dtype}`, ctx);
    const count = numel(t.shape, ctx);
    const bytes = await t.load();
    let masked: number;
    if (t.dtype === 'string') {
      if (t.extra?.['encoding'] !== STRING_ENCODING) {
        throw new ModelsmithError(ErrorCodes.UNSUPPORTED, 'string tensors must be in the bundle layout (see bundleStringTensor)', ctx);
      }
      // Re-validate: the bytes may come from another (possibly damaged) bundle.
      masked = maskCrc(decodeStringTensor(bytes, count, { base: 0 }, t.name).entryCrc);
    } else {
      const want = byteLength(t.dtype, count);
      if (bytes.byteLength !== want) {
        throw new ModelsmithError(ErrorCodes.TENSOR_SIZE, `${t.dtype}[${t.shape.join(',')}] needs ${want} bytes, load() gave ${bytes.byteLength}`, ctx);
      }
      masked = maskCrc(crc32c(bytes));
    }
    await dataSink.write(bytes);
    const entry = create(BundleEntryProtoSchema, {
      dtype: tf,
      shape: create(TensorShapeProtoSchema, { dim: t.shape.map((d) => create(TensorShapeProto_DimSchema, { size: BigInt(d) })) }),
      offset: BigInt(offset),
      size: BigInt(bytes.byteLength),
      crc32c: masked,
    });
    offset += bytes.byteLength;
    entries.push({ key: utf8.encode(t.name), value: toBinary(BundleEntryProtoSchema, entry) });
  }
  entries.sort((a, b) => compareBytes(a.key, b.key));
  const header = create(BundleHeaderProtoSchema, { numShards: 1, version: create(VersionDefSchema, { producer: BUNDLE_VERSION }) });
  const table = new TableWriter(indexSink);
  await table.add(new Uint8Array(0), toBinary(BundleHeaderProtoSchema, header));
  for (const e of entries) await table.add(e.key, e.value);
  const indexBytes = await table.finish();
  return { indexBytes, dataBytes: offset };
}
