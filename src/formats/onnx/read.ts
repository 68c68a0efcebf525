/**
 * ONNX reader: the whole ModelProto is decoded into the generated `onnx-buf` message, which stays the
 * graph IR (unknown fields included). Tensor payloads are views into the file bytes; external data
 * is resolved lazily through the SiblingResolver (see tensor.ts).
 */
import { fromBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema, type ModelProto } from 'onnx-buf';
import { ErrorCodes, ModelsmithError, type Diagnostic } from '../../core/errors.js';
import type { ByteSource, SiblingResolver } from '../../io/source.js';
import { DEFAULT_SCAN_LIMITS, MAX_MESSAGE_BYTES, scanMessage, type ScanLimits } from './wire.js';

export interface OnnxModel {
  format: 'onnx';
  /** The decoded model. Mutate it to edit the model; writeOnnx writes what is there. */
  proto: ModelProto;
  /** Name of the file it was read from (for messages). */
  path: string;
  /** Size of the serialized ModelProto as read (0 for models built in memory). */
  byteSize: number;
  /** Resolves external-data locations relative to the model's folder. */
  siblings?: SiblingResolver;
  /** Non-fatal findings of the reader. */
  diagnostics: Diagnostic[];
}

export interface ReadOnnxOptions {
  siblings?: SiblingResolver;
  /** Path or name used in error messages (defaults to the source name). */
  path?: string;
  /** Caps for untrusted input (nesting depth, estimated memory). */
  limits?: Partial<ScanLimits>;
}

export async function readOnnx(source: ByteSource, opts: ReadOnnxOptions = {}): Promise<OnnxModel> {
  const path = opts.path ?? source.name;
  if (source.size > MAX_MESSAGE_BYTES) {
    throw new ModelsmithError(ErrorCodes.LIMIT, `file is ${source.size} bytes; a protobuf message must be smaller than 2 GiB (large ONNX models keep their weights in external data files)`, { path, format: 'onnx' });
  }
  let bytes: Uint8Array;
  try {
    bytes = await source.read(0, source.size);
  } catch (e) {
    if (e instanceof ModelsmithError) throw e;
    throw new ModelsmithError(ErrorCodes.IO, `cannot read: ${(e as Error).message}`, { path, format: 'onnx', cause: e });
  }
  return decodeOnnx(bytes, { ...opts, path });
}

/** Decode a ModelProto already in memory. `bytes` must stay unmodified while the model is in use (tensor data are views into it). */
export function decodeOnnx(bytes: Uint8Array, opts: ReadOnnxOptions = {}): OnnxModel {
  const path = opts.path ?? '<memory>';
  const ctx = { path, format: 'onnx' };
  if (bytes.byteLength > MAX_MESSAGE_BYTES) {
    throw new ModelsmithError(ErrorCodes.LIMIT, `${bytes.byteLength} bytes; a protobuf message must be smaller than 2 GiB`, ctx);
  }
  if (bytes.byteLength === 0) throw new ModelsmithError(ErrorCodes.TRUNCATED, 'empty file', { ...ctx, offset: 0 });
  const limits: ScanLimits = { ...DEFAULT_SCAN_LIMITS, ...opts.limits };
  // The walkers over the decoded model recurse per nesting level; keep them far from the JS stack limit.
  limits.maxDepth = Math.max(1, Math.min(limits.maxDepth, 1000));
  const scan = scanMessage(bytes, ModelProtoSchema, ctx, limits);
  let proto: ModelProto;
  try {
    proto = fromBinary(ModelProtoSchema, bytes, { readUnknownFields: true, recursionLimit: limits.maxDepth + 1 });
  } catch (e) {
    // The scan accepts exactly what the decoder accepts; this is a safety net.
    throw new ModelsmithError(ErrorCodes.MALFORMED, `not a valid ModelProto: ${(e as Error).message}`, { ...ctx, cause: e });
  }
  const diagnostics: Diagnostic[] = [];
  if (scan.invalidUtf8 > 0) {
    diagnostics.push({ level: 'warning', code: 'onnx.invalid_utf8', message: `${scan.invalidUtf8} string field(s) are not valid UTF-8; they are decoded with replacement characters and re-encoded that way` });
  }
  if (scan.unknownFields > 0) {
    diagnostics.push({ level: 'info', code: 'onnx.unknown_fields', message: `${scan.unknownFields} field(s) unknown to the ONNX 1.20 schema are kept as they are` });
  }
  if (!proto.graph) diagnostics.push({ level: 'warning', code: 'onnx.no_graph', message: 'the ModelProto has no graph' });
  if (proto.irVersion === 0n) diagnostics.push({ level: 'warning', code: 'onnx.no_ir_version', message: 'ir_version is missing or 0' });
  const model: OnnxModel = { format: 'onnx', proto, path, byteSize: bytes.byteLength, diagnostics };
  if (opts.siblings) model.siblings = opts.siblings;
  return model;
}

/** Wrap a ModelProto built in memory. */
export function onnxModel(proto: ModelProto, opts: { path?: string; siblings?: SiblingResolver } = {}): OnnxModel {
  const m: OnnxModel = { format: 'onnx', proto, path: opts.path ?? '<memory>', byteSize: 0, diagnostics: [] };
  if (opts.siblings) m.siblings = opts.siblings;
  return m;
}
