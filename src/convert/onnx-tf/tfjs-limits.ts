/**
 * Where TF.js — the executor every converted graph is checked with — cannot run a correct graph,
 * the converter refuses the form up front (`Cx.refuse`) instead of writing something unverifiable.
 * This module says which dtypes are such forms and why.
 */
import { dtypeInfo, type DType } from '../../core/dtype.js';
import { tfjsDtypeOf } from '../../formats/savedmodel/freeze/tfjs-values.js';

/** Why a tensor of `dtype` cannot appear in a converted graph, or undefined when it can. */
export function dtypeGap(dtype: DType, computed: boolean): string | undefined {
  if (dtypeInfo(dtype).tf === undefined) return `TensorFlow has no dtype for ${dtype}`;
  if (!tfjsDtypeOf(dtype)) return `TF.js has no dtype for ${dtype}`;
  // bfloat16 is fed and fetched as float32, but TF.js has no kernel that produces or consumes it.
  if (computed && dtype === 'bfloat16') return 'TF.js has no bfloat16 kernels (its Cast to bfloat16 fails)';
  return undefined;
}
