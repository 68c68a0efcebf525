/**
 * Format detection by magic bytes (and, for text formats, by extension). Readers for formats that
 * are not implemented yet are still recognised, so the user gets "not supported yet" instead of
 * "unknown file".
 */
import { ErrorCodes, ModelsmithError } from '../core/errors.js';

export type FormatName =
  | 'onnx' | 'pytorch-zip' | 'pytorch-legacy' | 'safetensors' | 'safetensors-index' | 'tf-bundle' | 'savedmodel'
  | 'tf-graphdef' | 'caffe-prototxt' | 'caffemodel';

export interface FormatInfo {
  name: FormatName;
  /** Whether this build can read it. */
  readable: boolean;
  /** Issue that tracks the reader when it is not there yet. */
  tracking?: string;
}

const FORMATS: Record<FormatName, FormatInfo> = {
  onnx: { name: 'onnx', readable: true },
  'pytorch-zip': { name: 'pytorch-zip', readable: true },
  'pytorch-legacy': { name: 'pytorch-legacy', readable: true },
  safetensors: { name: 'safetensors', readable: true },
  'safetensors-index': { name: 'safetensors-index', readable: true },
  'tf-bundle': { name: 'tf-bundle', readable: true },
  savedmodel: { name: 'savedmodel', readable: true },
  'tf-graphdef': { name: 'tf-graphdef', readable: true },
  'caffe-prototxt': { name: 'caffe-prototxt', readable: true },
  caffemodel: { name: 'caffemodel', readable: true },
};

/**
 * Guess the format from the first bytes (≥ 16 recommended) and the file name.
 * Returns undefined when nothing matches.
 */
export function detectFormat(head: Uint8Array, name: string, isDirectory = false): FormatInfo | undefined {
  const lower = name.toLowerCase();
  if (isDirectory) return lower.endsWith('.onnx') ? undefined : FORMATS.savedmodel;
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) return FORMATS['pytorch-zip'];
  // Legacy torch.save starts with a pickle: PROTO opcode 0x80 then protocol 2..5, holding the magic number.
  if (head.length >= 2 && head[0] === 0x80 && head[1] >= 2 && head[1] <= 5 && /\.(pt|pth|bin|ckpt)$/.test(lower)) return FORMATS['pytorch-legacy'];
  if (isSafetensorsHead(head)) return FORMATS.safetensors;
  if (lower.endsWith('.safetensors.index.json')) return FORMATS['safetensors-index'];
  // TF tensor bundles: the SSTable magic is in the footer, so go by the name TF always gives it.
  if (lower.endsWith('.index') && !lower.endsWith('.safetensors.index')) return FORMATS['tf-bundle'];
  if (lower.endsWith('.prototxt')) return FORMATS['caffe-prototxt'];
  if (lower.endsWith('.caffemodel')) return FORMATS.caffemodel;
  if (lower.endsWith('saved_model.pb')) return FORMATS.savedmodel;
  // Any other .pb that is not a serialized ONNX model: a (frozen) TF GraphDef.
  if (lower.endsWith('.pb') && !looksLikeModelProto(head)) return FORMATS['tf-graphdef'];
  if (lower.endsWith('.onnx') || looksLikeModelProto(head)) return FORMATS.onnx;
  return undefined;
}

function isSafetensorsHead(h: Uint8Array): boolean {
  if (h.length < 9) return false;
  const n = h[0]! + h[1]! * 256 + h[2]! * 65536 + h[3]! * 16777216;
  const high = h[4]! | h[5]! | h[6]! | h[7]!;
  // The header is JSON, which the official crate lets start with whitespace.
  return high === 0 && n > 1 && n < 100_000_000 && (h[8] === 0x7b || h[8] === 0x20 || h[8] === 0x09 || h[8] === 0x0a || h[8] === 0x0d);
}

/** ModelProto almost always starts with ir_version (field 1, varint: 0x08) and a small value. */
function looksLikeModelProto(h: Uint8Array): boolean {
  return h.length >= 2 && h[0] === 0x08 && h[1]! > 0 && h[1]! < 32;
}

export function requireReadable(info: FormatInfo | undefined, path: string): FormatInfo {
  if (!info) throw new ModelsmithError(ErrorCodes.UNKNOWN_FORMAT, 'not a model format modelsmith recognises', { path });
  if (!info.readable) {
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `${info.name} files are recognised but not supported yet (tracked in the ${info.tracking})`, { path, format: info.name });
  }
  return info;
}
