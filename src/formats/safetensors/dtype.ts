/**
 * safetensors dtype strings ↔ the shared dtype table, and the reference writer's layout rank.
 */
import { dtypeFromKey, dtypeInfo, type DType, type DTypeInfo } from '../../core/dtype.js';

/** The dtype table entry for a header's dtype string, or undefined when the table has none. */
export function dtypeFromSafetensors(code: string): DTypeInfo | undefined {
  return dtypeFromKey('safetensors', code);
}

/** The header string for a dtype, or undefined when safetensors cannot express it. */
export function safetensorsCode(dtype: DType): string | undefined {
  return dtypeInfo(dtype).safetensors;
}

/**
 * The order of the reference crate's `Dtype` enum. This is not a dtype list of our own: it is the
 * sort key the reference writer uses (`right.dtype().cmp(&left.dtype())`, i.e. descending enum
 * order, then name), and reproducing its bytes needs exactly that order. v0.5.3 has the 15 codes
 * without F4/F6/F8_E8M0/FNUZ/C64; later versions inserted those without reordering the others, so one
 * list serves both.
 */
const CRATE_ENUM_ORDER = [
  'BOOL', 'F4', 'F6_E2M3', 'F6_E3M2', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'F8_E4M3FNUZ', 'F8_E5M2FNUZ',
  'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'C64', 'F64', 'I64', 'U64',
];
const rank = new Map(CRATE_ENUM_ORDER.map((c, i) => [c, i]));

/**
 * Layout rank of a code (higher is written first). A code the table maps but the crate does not know
 * is ranked by element width so that data stays naturally aligned all the same.
 */
export function layoutRank(code: string): number {
  const r = rank.get(code);
  if (r !== undefined) return r;
  const bits = dtypeFromSafetensors(code)?.bits ?? 8;
  return bits >= 64 ? rank.get('F64')! : bits >= 32 ? rank.get('F32')! : bits >= 16 ? rank.get('F16')! : rank.get('U8')!;
}
