/**
 * Errors of the safetensors reader/writer. Each message starts with the name of the reference
 * crate's error for the same condition (e.g. "HeaderTooLarge: …"), so a user can compare our verdict
 * with what `safetensors` in Python/Rust says about the same file; the code stays ours and stable.
 */
import { ModelsmithError, type ErrorCode } from '../../core/errors.js';

export const FORMAT = 'safetensors';

/** Names of the reference crate's `SafeTensorError` variants that we reproduce. */
export type CrateError =
  | 'HeaderTooSmall'
  | 'HeaderTooLarge'
  | 'InvalidHeaderLength'
  | 'InvalidHeader'
  | 'InvalidHeaderDeserialization'
  | 'InvalidOffset'
  | 'ValidationOverflow'
  | 'TensorInvalidInfo'
  | 'MisalignedSlice'
  | 'MetadataIncompleteBuffer';

export interface Where {
  path?: string;
  offset?: number;
  tensor?: string;
}

export function stError(code: ErrorCode, crate: CrateError | undefined, message: string, where: Where): ModelsmithError {
  return new ModelsmithError(code, crate ? `${crate}: ${message}` : message, { format: FORMAT, ...where });
}
