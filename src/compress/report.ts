/**
 * Size reports shared by the compression passes: tensor payload bytes per dtype before and after a
 * pass (counted over every tensor the model holds: initializers, Constant attributes, subgraphs).
 */
import type { OnnxModel } from '../formats/onnx/read.js';
import { collectTensors, payloadByteLength, tensorDType } from '../formats/onnx/tensor.js';

export interface TensorBytes {
  /** Sum of payload bytes over all tensors (string tensors count 0). */
  total: number;
  /** dtype → payload bytes. */
  byDtype: Record<string, number>;
  /** Number of tensors counted. */
  tensors: number;
}

export interface SizeReport {
  before: TensorBytes;
  after: TensorBytes;
  /** after.total / before.total (1 when the model holds no tensor bytes). */
  ratio: number;
}

/** Payload bytes per dtype of every tensor of the model. Tensors with unknown dtypes are counted as 'unknown'. */
export function tensorBytes(model: OnnxModel): TensorBytes {
  const byDtype: Record<string, number> = {};
  let total = 0;
  let tensors = 0;
  for (const e of collectTensors(model)) {
    let dtype: string;
    let bytes: number;
    try {
      dtype = tensorDType(e.proto);
      bytes = Math.max(0, payloadByteLength(e.proto));
    } catch {
      dtype = 'unknown';
      bytes = e.proto.rawData.byteLength;
    }
    byDtype[dtype] = (byDtype[dtype] ?? 0) + bytes;
    total += bytes;
    tensors++;
  }
  return { total, byDtype, tensors };
}

export function sizeReport(before: TensorBytes, after: TensorBytes): SizeReport {
  return { before, after, ratio: before.total > 0 ? after.total / before.total : 1 };
}

/** Lines like "float32  1.2 MB → 0.3 MB" for every dtype present before or after. */
export function formatSizeReport(r: SizeReport, fmt: (n: number) => string): string[] {
  const dtypes = [...new Set([...Object.keys(r.before.byDtype), ...Object.keys(r.after.byDtype)])].sort();
  const lines = dtypes.map((d) => `  ${d.padEnd(10)} ${fmt(r.before.byDtype[d] ?? 0).padStart(10)} → ${fmt(r.after.byDtype[d] ?? 0)}`);
  lines.push(`  ${'total'.padEnd(10)} ${fmt(r.before.total).padStart(10)} → ${fmt(r.after.total)} (${(r.ratio * 100).toFixed(1)}%)`);
  return lines;
}
