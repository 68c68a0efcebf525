/**
 * Decoding untrusted TF protobuf: scan first (depth, memory, framing, with byte offsets), then let
 * the generated decoder run; anything it still rejects becomes E_MALFORMED rather than escaping as
 * a plain Error.
 */
import { fromBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { scanProto } from './scan.js';

/** Protobuf implementations refuse messages of 2 GiB and more; so does TF. */
export const MAX_PROTO_BYTES = 2 ** 31 - 1;

export function decodeChecked<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array, ctx: { path?: string; format: string; what?: string }): MessageShape<Desc> {
  const where = { format: ctx.format, ...(ctx.path !== undefined ? { path: ctx.path } : {}) };
  if (bytes.length > MAX_PROTO_BYTES) {
    throw new ModelsmithError(ErrorCodes.LIMIT, `${ctx.what ?? schema.name} of ${bytes.length} bytes exceeds the 2 GiB protobuf limit`, where);
  }
  scanProto(bytes, schema, ctx);
  try {
    return fromBinary(schema, bytes);
  } catch (e) {
    if (e instanceof ModelsmithError) throw e;
    throw new ModelsmithError(ErrorCodes.MALFORMED, `${ctx.what ?? schema.name} cannot be decoded: ${(e as Error).message}`, { ...where, cause: e });
  }
}
