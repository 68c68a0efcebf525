/** ONNX codec: read, write, tensors, summary. */
export { readOnnx, decodeOnnx, onnxModel, type OnnxModel, type ReadOnnxOptions } from './read.js';
export { writeOnnx, encodeOnnx, type WriteOnnxOptions, type ExternalDataOptions, type WriteOnnxStats } from './write.js';
export {
  collectTensors,
  visitModel,
  tensorFromProto,
  tensorFromProtoSync,
  tensorToProto,
  decodeTensorProto,
  tensorDType,
  tensorShape,
  payloadByteLength,
  isExternal,
  externalDataRef,
  checkExternalLocation,
  openExternalData,
  modelTensorContext,
  storageOf,
  checkTensorStorage,
  type TensorEntry,
  type TensorKind,
  type TensorContext,
  type ExternalDataRef,
  type ModelVisitor,
} from './tensor.js';
export { summarizeOnnx, type InspectReport, type ValueSummary, type OpCount, type TensorSummary } from './summary.js';
export { scanMessage, type ScanLimits } from './wire.js';

/**
 * ModelProto field tags (field number, wire type) that may open a file: ir_version (1, varint),
 * producer_name/version, domain (2–4), model_version (5), doc_string (6), graph (7), opset_import (8),
 * metadata_props (14), training_info (20), functions (25), configuration (26).
 */
const MODEL_FIELDS = new Map<number, number>([
  [1, 0], [2, 2], [3, 2], [4, 2], [5, 0], [6, 2], [7, 2], [8, 2], [14, 2], [20, 2], [25, 2], [26, 2],
]);

/**
 * Cheap check of the first bytes (pass ≥ 16 when available): every record that fits in `bytes`
 * must be a ModelProto field with its wire type, ir_version must be 1..64, and short text fields
 * must look like text. No decoding of the rest of the file.
 */
export function sniffOnnx(bytes: Uint8Array): boolean {
  let pos = 0;
  let records = 0;
  const n = bytes.byteLength;
  const varint = (): number | undefined => {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 5; i++) {
      if (pos >= n) return undefined;
      const b = bytes[pos++]!;
      v += (b & 0x7f) * mul;
      mul *= 128;
      if (b < 0x80) return v;
    }
    return -1;
  };
  while (pos < n && records < 8) {
    const tag = varint();
    if (tag === undefined) break;
    if (tag < 0) return false;
    const field = Math.floor(tag / 8);
    const wt = tag % 8;
    if (MODEL_FIELDS.get(field) !== wt) return false;
    if (wt === 0) {
      const v = varint();
      if (v === undefined) break;
      if (v < 0) return false;
      if (field === 1 && (v < 1 || v > 64)) return false;
    } else {
      const len = varint();
      if (len === undefined) break;
      if (len < 0) return false;
      if (field >= 2 && field <= 4) {
        if (len > 4096) return false;
        const end = Math.min(n, pos + len);
        for (let i = pos; i < end; i++) if (bytes[i]! < 0x20 && bytes[i] !== 0x09 && bytes[i] !== 0x0a && bytes[i] !== 0x0d) return false;
      }
      pos += len;
    }
    records++;
  }
  return records > 0;
}
