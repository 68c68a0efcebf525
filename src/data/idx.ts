/**
 * IDX (the MNIST / Fashion-MNIST container) header, for streaming: bytes 0-1 zero, byte 2 the element
 * type (0x08 unsigned byte — the only type image/label sets use), byte 3 the rank, then rank
 * big-endian uint32 dims, then the payload, which must fill the rest of the file exactly.
 *
 * The accuracy bench's `parseIdx` (src/bench/accuracy.ts) checks the same rules on a whole file in
 * memory; it is not imported here because that module pulls node:fs and onnxruntime, and a data set
 * must not need the file in memory.
 */
import { ErrorCodes, ModelsmithError } from '../core/errors.js';

export interface IdxHeader {
  dims: number[];
  dataOffset: number;
}

export function parseIdxHeader(head: Uint8Array, fileSize: number, path: string, expectRank?: number): IdxHeader {
  const at = (offset: number) => ({ path, format: 'idx', offset });
  if (head.byteLength < 4) throw new ModelsmithError(ErrorCodes.TRUNCATED, `IDX header needs 4 bytes, file has ${fileSize}`, at(0));
  if (head[0] !== 0 || head[1] !== 0) throw new ModelsmithError(ErrorCodes.MALFORMED, 'not an IDX file (first two bytes must be zero)', at(0));
  if (head[2] !== 0x08) throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `IDX element type 0x${head[2]!.toString(16)} is not unsigned byte (0x08)`, at(2));
  const rank = head[3]!;
  if (rank < 1) throw new ModelsmithError(ErrorCodes.MALFORMED, 'IDX rank 0 holds no samples', at(3));
  if (expectRank !== undefined && rank !== expectRank) throw new ModelsmithError(ErrorCodes.MALFORMED, `IDX rank ${rank}, expected ${expectRank}`, at(3));
  const dataOffset = 4 + 4 * rank;
  if (head.byteLength < dataOffset) throw new ModelsmithError(ErrorCodes.TRUNCATED, `IDX header needs ${dataOffset} bytes, file has ${fileSize}`, at(4));
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < rank; i++) {
    const d = dv.getUint32(4 + 4 * i, false);
    dims.push(d);
    // Checked per factor, so the product stays exact and below file size × 2^32.
    count *= d;
    if (count > fileSize) throw new ModelsmithError(ErrorCodes.TRUNCATED, `IDX dims [${dims.join(', ')}…] need more bytes than the file's ${fileSize}`, at(4 + 4 * i));
  }
  const have = fileSize - dataOffset;
  if (have < count) throw new ModelsmithError(ErrorCodes.TRUNCATED, `IDX payload [${dims.join(', ')}] needs ${count} bytes, file has ${have}`, at(fileSize));
  if (have > count) throw new ModelsmithError(ErrorCodes.MALFORMED, `${have - count} bytes after the IDX payload [${dims.join(', ')}]`, at(dataOffset + count));
  return { dims, dataOffset };
}
