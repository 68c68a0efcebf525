/**
 * DT_STRING tensors in a bundle shard have their own layout:
 *   varint64 len[0..n) | u32 masked crc32c(lengths) | bytes[0] … bytes[n-1]
 * The lengths CRC is over each length as u32 LE (u64 when ≥ 2^32), not over the varint bytes, and the
 * entry CRC runs over those same fixed-width lengths, then the 4 stored CRC bytes, then the strings.
 */
import { ErrorCodes } from '../../../core/errors.js';
import { fail, putU32le, pushVarint, readVarint, u32le, type Where } from './bytes.js';
import { crc32c, maskCrc, unmaskCrc } from './crc32c.js';

function lengthBytes(len: number): Uint8Array {
  if (len <= 0xffffffff) {
    const b = new Uint8Array(4);
    putU32le(b, 0, len);
    return b;
  }
  const b = new Uint8Array(8);
  putU32le(b, 0, len % 2 ** 32);
  putU32le(b, 4, Math.floor(len / 2 ** 32));
  return b;
}

export interface DecodedStrings {
  strings: Uint8Array[];
  /** Unmasked CRC32C over the whole element as TF computes the entry checksum. */
  entryCrc: number;
}

/** Decode `count` strings from the stored bytes, checking the lengths CRC and every bound. */
export function decodeStringTensor(bytes: Uint8Array, count: number, where: Where, tensor?: string): DecodedStrings {
  const lens: number[] = [];
  let pos = 0;
  let lenCrc = 0;
  let total = 0;
  for (let i = 0; i < count; i++) {
    let len: number;
    [len, pos] = readVarint(bytes, pos, bytes.length, 10, `string ${i} length`, where);
    total += len;
    // Each string needs its bytes in the payload: a larger sum is corruption, found before allocating.
    if (total > bytes.length) fail(ErrorCodes.TRUNCATED, `string lengths add up to more than the ${bytes.length}-byte payload`, where, where.base + pos, tensor);
    lens.push(len);
    lenCrc = crc32c(lengthBytes(len), lenCrc);
  }
  if (pos + 4 > bytes.length) fail(ErrorCodes.TRUNCATED, 'string tensor ends before its lengths checksum', where, where.base + pos, tensor);
  const stored = u32le(bytes, pos);
  if (unmaskCrc(stored) !== lenCrc) fail(ErrorCodes.MALFORMED, 'string tensor lengths checksum mismatch', where, where.base + pos, tensor);
  let entryCrc = crc32c(bytes.subarray(pos, pos + 4), lenCrc);
  pos += 4;
  if (pos + total !== bytes.length) {
    fail(ErrorCodes.TENSOR_SIZE, `string tensor holds ${bytes.length - pos} string bytes, lengths say ${total}`, where, where.base + pos, tensor);
  }
  const strings: Uint8Array[] = [];
  for (const len of lens) {
    const s = bytes.subarray(pos, pos + len);
    entryCrc = crc32c(s, entryCrc);
    strings.push(s);
    pos += len;
  }
  return { strings, entryCrc };
}

/** Encode strings in the bundle layout; returns the bytes and the masked entry CRC to store. */
export function encodeStringTensor(strings: readonly Uint8Array[]): { bytes: Uint8Array; maskedCrc: number } {
  const head: number[] = [];
  let lenCrc = 0;
  let total = 0;
  for (const s of strings) {
    pushVarint(head, s.length);
    lenCrc = crc32c(lengthBytes(s.length), lenCrc);
    total += s.length;
  }
  const out = new Uint8Array(head.length + 4 + total);
  out.set(head, 0);
  putU32le(out, head.length, maskCrc(lenCrc));
  let entryCrc = crc32c(out.subarray(head.length, head.length + 4), lenCrc);
  let pos = head.length + 4;
  for (const s of strings) {
    out.set(s, pos);
    entryCrc = crc32c(s, entryCrc);
    pos += s.length;
  }
  return { bytes: out, maskedCrc: maskCrc(entryCrc) };
}
