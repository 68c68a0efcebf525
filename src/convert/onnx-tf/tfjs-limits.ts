/**
 * Where a dtype has no form in a converted graph, the converter refuses it up front (`Cx.refuse`)
 * instead of writing something unverifiable. 8/4/2-bit types travel in carriers (carriers.ts);
 * bfloat16 and float16 are computed in float32 by TF.js, the executor converted graphs are checked
 * with, as TF.js does for float16 itself.
 */
import type { DType } from '../../core/dtype.js';
import { tfjsDtypeOf } from '../../formats/savedmodel/freeze/tfjs-values.js';
import { carrierOf } from './carriers.js';

/** Why a tensor of `dtype` cannot appear in a converted graph, or undefined when it can. */
export function dtypeGap(dtype: DType): string | undefined {
  if (carrierOf(dtype)) return undefined;
  if (!tfjsDtypeOf(dtype)) return `TF.js has no dtype for ${dtype}`;
  return undefined;
}
