/**
 * Pruning masks: 1 keeps a weight, 0 removes it. A mask is applied to the gradient before an
 * optimiser step (so momentum/Adam moments of pruned weights stay zero) and to the weight after it
 * (weight decay and Adam's epsilon could otherwise move a zero), so pruned weights stay exactly 0.
 */
import { ErrorCodes, ModelsmithError } from '../core/errors.js';

export type Masks = Map<string, Uint8Array>;

export function applyMask(data: Float32Array, mask: Uint8Array, name: string): void {
  if (mask.length !== data.length) {
    throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `mask has ${mask.length} entries for ${data.length} elements`, { tensor: name });
  }
  for (let i = 0; i < data.length; i++) if (mask[i] === 0) data[i] = 0;
}

/** Fraction of zero entries of a mask. */
export function maskSparsity(mask: Uint8Array): number {
  let zeros = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i] === 0) zeros++;
  return mask.length ? zeros / mask.length : 0;
}

/** Fraction of exact zeros in a weight. */
export function zeroFraction(data: Float32Array): number {
  let zeros = 0;
  for (let i = 0; i < data.length; i++) if (data[i] === 0) zeros++;
  return data.length ? zeros / data.length : 0;
}
