/**
 * Raw Snappy block decompression (no framing format): TF ≥ 1.14 stores Snappy-compressed index
 * blocks. Every length and back-reference is checked against both buffers, and the declared output
 * size is capped by what the input could possibly expand to, so hostile blocks cannot over-allocate.
 */
import { ErrorCodes } from '../../../core/errors.js';
import { fail, readVarint, type Where } from './bytes.js';

/**
 * The best Snappy can do is a 3-byte copy element producing 64 bytes, so a valid stream never
 * expands more than ~21.4×. Declared sizes above this bound are lies.
 */
export function maxSnappyOutput(compressedLength: number): number {
  return compressedLength * 22 + 64;
}

export function snappyDecompress(src: Uint8Array, where: Where): Uint8Array {
  const [outLen, start] = readVarint(src, 0, src.length, 5, 'snappy length', where);
  if (outLen > maxSnappyOutput(src.length)) {
    fail(ErrorCodes.MALFORMED, `snappy block declares ${outLen} bytes, impossible for ${src.length} compressed bytes`, where, where.base);
  }
  const out = new Uint8Array(outLen);
  let ip = start;
  let op = 0;
  const n = src.length;
  while (ip < n) {
    const tagAt = ip;
    const tag = src[ip++]!;
    const kind = tag & 3;
    if (kind === 0) {
      let len = (tag >>> 2) + 1;
      if (len > 60) {
        const extra = len - 60;
        if (ip + extra > n) fail(ErrorCodes.TRUNCATED, 'snappy literal length runs past the end of the block', where, where.base + tagAt);
        let l = 0;
        for (let k = 0; k < extra; k++) l += src[ip + k]! * 2 ** (8 * k);
        ip += extra;
        len = l + 1;
      }
      if (ip + len > n) fail(ErrorCodes.TRUNCATED, `snappy literal of ${len} bytes runs past the end of the block`, where, where.base + tagAt);
      if (op + len > outLen) fail(ErrorCodes.MALFORMED, 'snappy literal overflows the declared length', where, where.base + tagAt);
      out.set(src.subarray(ip, ip + len), op);
      ip += len;
      op += len;
      continue;
    }
    let len: number;
    let offset: number;
    if (kind === 1) {
      if (ip + 1 > n) fail(ErrorCodes.TRUNCATED, 'snappy copy runs past the end of the block', where, where.base + tagAt);
      len = ((tag >>> 2) & 7) + 4;
      offset = ((tag >>> 5) << 8) | src[ip++]!;
    } else if (kind === 2) {
      if (ip + 2 > n) fail(ErrorCodes.TRUNCATED, 'snappy copy runs past the end of the block', where, where.base + tagAt);
      len = (tag >>> 2) + 1;
      offset = src[ip]! | (src[ip + 1]! << 8);
      ip += 2;
    } else {
      if (ip + 4 > n) fail(ErrorCodes.TRUNCATED, 'snappy copy runs past the end of the block', where, where.base + tagAt);
      len = (tag >>> 2) + 1;
      offset = (src[ip]! | (src[ip + 1]! << 8) | (src[ip + 2]! << 16) | (src[ip + 3]! << 24)) >>> 0;
      ip += 4;
    }
    if (offset === 0 || offset > op) fail(ErrorCodes.MALFORMED, `snappy copy offset ${offset} points before the start of the output`, where, where.base + tagAt);
    if (op + len > outLen) fail(ErrorCodes.MALFORMED, 'snappy copy overflows the declared length', where, where.base + tagAt);
    // Overlapping copies (offset < len) repeat a pattern, so copy forward byte by byte.
    for (let k = 0; k < len; k++, op++) out[op] = out[op - offset]!;
  }
  if (op !== outLen) fail(ErrorCodes.TRUNCATED, `snappy block produced ${op} of ${outLen} declared bytes`, where, where.base + n);
  return out;
}
