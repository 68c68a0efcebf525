/**
 * Bounds-checked little-endian and varint helpers for the bundle/SSTable code. Every read names the
 * absolute file offset on failure, because the bytes come from untrusted files.
 */
import { ErrorCodes, ModelsmithError } from '../../../core/errors.js';

export const FORMAT = 'tf-bundle';

export interface Where {
  path?: string;
  /** File offset of `bytes[0]`, so errors report absolute positions. */
  base: number;
}

export function fail(code: (typeof ErrorCodes)[keyof typeof ErrorCodes], msg: string, where: { path?: string }, offset?: number, tensor?: string): never {
  throw new ModelsmithError(code, msg, {
    format: FORMAT,
    ...(where.path !== undefined ? { path: where.path } : {}),
    ...(offset !== undefined ? { offset } : {}),
    ...(tensor !== undefined ? { tensor } : {}),
  });
}

/**
 * Read a varint at `pos` that must end before `end`. `maxBytes` 5 for varint32, 10 for varint64.
 * Returns the value (exact up to 2^53; larger values are refused) and the position after it.
 */
export function readVarint(bytes: Uint8Array, pos: number, end: number, maxBytes: number, what: string, where: Where): [number, number] {
  const start = pos;
  let value = 0;
  let mul = 1;
  for (let i = 0; ; i++) {
    if (pos >= end) fail(ErrorCodes.TRUNCATED, `${what}: varint runs past the end of its block`, where, where.base + start);
    if (i >= maxBytes) fail(ErrorCodes.MALFORMED, `${what}: varint longer than ${maxBytes} bytes`, where, where.base + start);
    const b = bytes[pos++]!;
    value += (b & 0x7f) * mul;
    mul *= 128;
    if (b < 0x80) break;
  }
  if (!Number.isSafeInteger(value)) fail(ErrorCodes.OUT_OF_RANGE, `${what}: value exceeds 2^53`, where, where.base + start);
  if (maxBytes === 5 && value > 0xffffffff) fail(ErrorCodes.MALFORMED, `${what}: varint32 out of range`, where, where.base + start);
  return [value, pos];
}

export function u32le(bytes: Uint8Array, pos: number): number {
  return (bytes[pos]! | (bytes[pos + 1]! << 8) | (bytes[pos + 2]! << 16) | (bytes[pos + 3]! << 24)) >>> 0;
}

export function putU32le(out: Uint8Array, pos: number, v: number): void {
  out[pos] = v & 0xff;
  out[pos + 1] = (v >>> 8) & 0xff;
  out[pos + 2] = (v >>> 16) & 0xff;
  out[pos + 3] = (v >>> 24) & 0xff;
}

/** Append a varint (non-negative safe integer) to `out`. */
export function pushVarint(out: number[], n: number): void {
  while (n >= 0x80) {
    out.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
}

/** Unsigned bytewise comparison, the order TF/LevelDB sort keys in. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}
