/** Sibling-file access shared by the SavedModel readers: optional files and whole-file reads. */
import { ErrorCodes, ModelsmithError, isModelsmithError } from '../../core/errors.js';
import type { ByteSource, SiblingResolver } from '../../io/source.js';
import { MAX_PROTO_BYTES } from './proto.js';

export const FORMAT = 'savedmodel';

export const joinPath = (dir: string, rel: string): string => (dir === '' ? rel : `${dir.replace(/\/$/, '')}/${rel}`);

/** Resolve an optional sibling: undefined when it does not exist (the resolver refuses it). */
export async function optional(dir: SiblingResolver, rel: string): Promise<ByteSource | undefined> {
  try {
    return await dir(rel);
  } catch (e) {
    if (isModelsmithError(e) && (e.code === ErrorCodes.EXTERNAL_DATA || e.code === ErrorCodes.IO)) return undefined;
    throw e;
  }
}

/** Whole-file read of a protobuf file, refusing what no protobuf decoder would accept. */
export async function readAll(src: ByteSource, what: string): Promise<Uint8Array> {
  if (src.size > MAX_PROTO_BYTES) throw new ModelsmithError(ErrorCodes.LIMIT, `${what} of ${src.size} bytes exceeds the 2 GiB protobuf limit`, { format: FORMAT, path: src.name });
  return src.read(0, src.size);
}
