/**
 * TF enum/shape conversions shared by the bundle and SavedModel readers. Dtypes map through the one
 * table in core/dtype.ts (its `tf` column); TF codes that table lacks keep their DT_ name for display.
 */
import { dtypeFromKey, type DType } from '../../core/dtype.js';
import { DataType } from './gen/tensorflow/types_pb.js';
import type { TensorShapeProto } from './gen/tensorflow/types_pb.js';

/** Our dtype for a TF DataType (reference types +100 fold onto their base), or undefined. */
export function dtypeFromTf(code: number): DType | undefined {
  const base = code > 100 && code < 200 ? code - 100 : code;
  return dtypeFromKey('tf', base)?.name;
}

/** `float32` when the table knows the code, else TF's own name (`DT_RESOURCE`) or `tf:<n>`. */
export function tfDtypeLabel(code: number): string {
  const d = dtypeFromTf(code);
  if (d) return d;
  const name = (DataType as unknown as Record<number, string | undefined>)[code];
  return name ?? `tf:${code}`;
}

/** Cap on rank: TF itself refuses more than 254 dims; anything near that is hostile. */
export const MAX_RANK = 254;

/**
 * Dimensions of a TensorShapeProto: numbers with -1 for unknown dims, or null for unknown rank.
 * An absent or empty shape means a scalar (modern TF semantics). Values beyond 2^53 come back as NaN
 * so callers can refuse them with context.
 */
export function shapeDims(shape: TensorShapeProto | undefined): number[] | null {
  if (!shape) return [];
  if (shape.unknownRank) return null;
  return shape.dim.map((d) => {
    const v = d.size;
    if (v < -1n || v > BigInt(Number.MAX_SAFE_INTEGER)) return Number.NaN;
    return Number(v);
  });
}
