/**
 * .caffemodel (binary NetParameter) read and write. Untrusted bytes go through the same structural
 * scan as ONNX (wire.ts: lengths, wire types, nesting depth, decoded-size estimate) before
 * `fromBinary`, so a hostile file ends in E_TRUNCATED / E_MALFORMED / E_LIMIT, never a RangeError or
 * an out-of-memory. Every blob's value count is then checked against its shape.
 *
 * Blob payloads stay byte views into the file (lazy-blobs.ts): read them with blob.ts helpers.
 * Writing is in write.ts.
 */
import { fromBinary } from '@bufbuild/protobuf';
import { ErrorCodes, ModelsmithError, type Diagnostic } from '../../core/errors.js';
import type { ByteSource } from '../../io/source.js';
import { DEFAULT_SCAN_LIMITS, MAX_MESSAGE_BYTES, scanMessage, type ScanLimits } from '../onnx/wire.js';
import { checkBlob } from './blob.js';
import { attachReadInfo } from './diagnostics.js';
import { decodeWithLazyBlobs } from './lazy-blobs.js';
import { NetParameterSchema, type NetParameter } from './gen/caffe_pb.js';
import { netVersion, upgradeNet } from './upgrade.js';

export interface ReadCaffemodelOptions {
  /** Name for messages (defaults to the source name). */
  path?: string;
  /** Receives non-fatal findings. They are also kept with the net (see readDiagnostics). */
  diagnostics?: Diagnostic[];
  /** Caps for untrusted input. */
  limits?: Partial<ScanLimits>;
}

export async function readCaffemodel(src: ByteSource, opts: ReadCaffemodelOptions = {}): Promise<NetParameter> {
  const path = opts.path ?? src.name;
  if (src.size > MAX_MESSAGE_BYTES) {
    throw new ModelsmithError(ErrorCodes.LIMIT, `file is ${src.size} bytes; a protobuf message (caffemodel) must be smaller than 2 GiB`, { path, format: 'caffemodel' });
  }
  let bytes: Uint8Array;
  try {
    bytes = await src.read(0, src.size);
  } catch (e) {
    if (e instanceof ModelsmithError) throw e;
    throw new ModelsmithError(ErrorCodes.IO, `cannot read: ${(e as Error).message}`, { path, format: 'caffemodel', cause: e });
  }
  return decodeCaffemodel(bytes, { ...opts, path });
}

/** Decode caffemodel bytes already in memory. */
export function decodeCaffemodel(bytes: Uint8Array, opts: ReadCaffemodelOptions = {}): NetParameter {
  const path = opts.path ?? '<memory>';
  const ctx = { path, format: 'caffemodel' };
  if (bytes.byteLength === 0) throw new ModelsmithError(ErrorCodes.TRUNCATED, 'empty file', { ...ctx, offset: 0 });
  if (bytes.byteLength > MAX_MESSAGE_BYTES) throw new ModelsmithError(ErrorCodes.LIMIT, `${bytes.byteLength} bytes; a protobuf message must be smaller than 2 GiB`, ctx);
  const limits: ScanLimits = { ...DEFAULT_SCAN_LIMITS, ...opts.limits };
  limits.maxDepth = Math.max(1, Math.min(limits.maxDepth, 100));
  const scan = scanMessage(bytes, NetParameterSchema, ctx, limits);
  let net: NetParameter;
  try {
    net = decodeWithLazyBlobs(bytes, (b) => fromBinary(NetParameterSchema, b, { readUnknownFields: true, recursionLimit: limits.maxDepth + 1 }));
  } catch (e) {
    throw new ModelsmithError(ErrorCodes.MALFORMED, `not a valid caffemodel (NetParameter): ${(e as Error).message}`, { ...ctx, cause: e });
  }
  const diagnostics: Diagnostic[] = [];
  if (scan.unknownFields > 0) {
    diagnostics.push({ level: 'info', code: 'caffe.unknown_fields', message: `${scan.unknownFields} field(s) unknown to modelsmith's caffe.proto are kept as they are (fork extensions)` });
  }
  if (scan.invalidUtf8 > 0) {
    diagnostics.push({ level: 'warning', code: 'caffe.invalid_utf8', message: `${scan.invalidUtf8} string field(s) are not valid UTF-8 (decoded with replacement characters)` });
  }
  const version = netVersion(net);
  if (net.layer.length === 0 && net.layers.length === 0) {
    // An empty NetParameter decodes from almost any bytes; say so instead of returning nothing.
    throw new ModelsmithError(ErrorCodes.MALFORMED, 'no layers: not a caffemodel, or an empty net', ctx);
  }
  upgradeNet(net, diagnostics);
  for (const layer of net.layer) {
    for (const [i, b] of layer.blobs.entries()) checkBlob(b, { path, tensor: `${layer.name}.${i}` });
  }
  if (version !== 'V2') diagnostics.push({ level: 'info', code: 'caffe.binary_version', message: `binary net uses the ${version} layer format` });
  opts.diagnostics?.push(...diagnostics);
  attachReadInfo(net, { path, diagnostics });
  return net;
}
