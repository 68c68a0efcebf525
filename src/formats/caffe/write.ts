/**
 * .caffemodel writer. Blob payloads are written as packed records straight from their bytes (a view
 * into the source file for decoded nets, or the number arrays of nets built in memory), with our own
 * framing: `toBinary` only ever sees the small rest of each message. This keeps writing a large net
 * from turning every weight into a JS number and back.
 *
 * Record order differs from `toBinary` (blobs come after a layer's other fields), which protobuf
 * allows; readers, Caffe included, see the same message.
 */
import { toBinary } from '@bufbuild/protobuf';
import type { ByteSink } from '../../io/source.js';
import { lengthDelimitedHeader } from '../onnx/wire.js';
import { blobBytes, blobInfo } from './blob.js';
import { BlobProtoSchema, LayerParameterSchema, NetParameterSchema, type BlobProto, type LayerParameter, type NetParameter } from './gen/caffe_pb.js';
import { withMaterializedBlobs } from './lazy-blobs.js';

const NET_LAYER_FIELD = 100;
const LAYER_BLOBS_FIELD = 7;
const BLOB_DATA_FIELD = 5;
const BLOB_DOUBLE_FIELD = 8;

/** Run `f` with some array fields of `msg` temporarily emptied (synchronously, then restored). */
function without<M extends object, K extends keyof M, T>(msg: M, keys: K[], f: () => T): T {
  const saved = keys.map((k) => msg[k]);
  for (const k of keys) (msg as Record<K, unknown>)[k] = [];
  try {
    return f();
  } finally {
    keys.forEach((k, i) => ((msg as Record<K, unknown>)[k] = saved[i]));
  }
}

function blobChunks(b: BlobProto): Uint8Array[] {
  const rest = without(b, ['data', 'doubleData'], () => toBinary(BlobProtoSchema, b));
  const info = blobInfo(b);
  if (info.count === 0) return [rest];
  const payload = blobBytes(b);
  return [rest, lengthDelimitedHeader(info.dtype === 'float64' ? BLOB_DOUBLE_FIELD : BLOB_DATA_FIELD, payload.byteLength), payload];
}

function layerChunks(layer: LayerParameter): Uint8Array[] {
  const out: Uint8Array[] = [without(layer, ['blobs'], () => toBinary(LayerParameterSchema, layer))];
  for (const b of layer.blobs) {
    const chunks = blobChunks(b);
    out.push(lengthDelimitedHeader(LAYER_BLOBS_FIELD, chunks.reduce((n, c) => n + c.byteLength, 0)), ...chunks);
  }
  return out;
}

/** Write `net` as a binary caffemodel (NetParameter). */
export async function writeCaffemodel(net: NetParameter, sink: ByteSink): Promise<void> {
  if (net.layers.length > 0) {
    // Nets that were not upgraded keep the plain encoder (V1/V0 blobs live at other field numbers).
    await sink.write(withMaterializedBlobs(net, () => toBinary(NetParameterSchema, net)));
    return;
  }
  await sink.write(without(net, ['layer'], () => toBinary(NetParameterSchema, net)));
  for (const layer of net.layer) {
    const chunks = layerChunks(layer);
    await sink.write(lengthDelimitedHeader(NET_LAYER_FIELD, chunks.reduce((n, c) => n + c.byteLength, 0)));
    for (const c of chunks) await sink.write(c);
  }
}
