/**
 * Reader for the LevelDB-style immutable table TF uses as a bundle index (`variables.index`):
 * footer → index block → data blocks. Each block's masked CRC32C is checked before it is parsed, and
 * every varint, restart array and key delta is bounds-checked, so a damaged index ends in a
 * ModelsmithError that names the byte offset.
 */
import { ErrorCodes } from '../../../core/errors.js';
import type { ByteSource } from '../../../io/source.js';
import { compareBytes, fail, readVarint, u32le, type Where } from './bytes.js';
import { crc32c, unmaskCrc } from './crc32c.js';
import { snappyDecompress } from './snappy.js';

export const TABLE_MAGIC_LO = 0x8b80fb57;
export const TABLE_MAGIC_HI = 0xdb477524;
export const FOOTER_SIZE = 48;
export const BLOCK_TRAILER_SIZE = 5;
export const COMPRESSION_NONE = 0;
export const COMPRESSION_SNAPPY = 1;

export interface BlockHandle {
  offset: number;
  size: number;
}

export interface TableEntry {
  key: Uint8Array;
  value: Uint8Array;
  /** File offset of the block the entry came from (for error messages about its value). */
  blockOffset: number;
}

export interface TableInfo {
  entries: TableEntry[];
  /** Compression byte of each data block, in file order. */
  dataBlockCompression: number[];
}

/** Cap on entries so a hostile index with millions of zero-length entries cannot exhaust memory. */
const MAX_ENTRIES = 10_000_000;

function readHandle(bytes: Uint8Array, pos: number, end: number, where: Where): [BlockHandle, number] {
  const [offset, p1] = readVarint(bytes, pos, end, 10, 'block handle offset', where);
  const [size, p2] = readVarint(bytes, p1, end, 10, 'block handle size', where);
  return [{ offset, size }, p2];
}

/** Read a block and its trailer, verify the CRC, and return the (decompressed) contents. */
async function readBlock(src: ByteSource, h: BlockHandle, what: string, limitEnd: number): Promise<{ contents: Uint8Array; compression: number }> {
  const where: Where = { path: src.name, base: h.offset };
  if (h.offset + h.size + BLOCK_TRAILER_SIZE > limitEnd) {
    fail(ErrorCodes.TRUNCATED, `${what} at ${h.offset} (${h.size} bytes + trailer) runs past the table data (${limitEnd} bytes)`, where, h.offset);
  }
  const raw = await src.read(h.offset, h.size + BLOCK_TRAILER_SIZE);
  const stored = raw.subarray(0, h.size);
  const type = raw[h.size]!;
  const want = unmaskCrc(u32le(raw, h.size + 1));
  const got = crc32c(raw.subarray(0, h.size + 1));
  if (got !== want) {
    fail(ErrorCodes.MALFORMED, `${what}: block CRC32C mismatch (stored ${hex(want)}, computed ${hex(got)})`, where, h.offset);
  }
  if (type === COMPRESSION_NONE) return { contents: stored, compression: type };
  if (type === COMPRESSION_SNAPPY) {
    return { contents: snappyDecompress(stored, where), compression: type };
  }
  return fail(ErrorCodes.UNSUPPORTED, `${what}: compression type ${type} (only none and Snappy exist in TF)`, where, h.offset + h.size);
}

function hex(n: number): string {
  return '0x' + n.toString(16).padStart(8, '0');
}

/**
 * Decode the entries of one block. `base` is the block's file offset; for Snappy blocks offsets
 * inside the decompressed contents are reported relative to that base (best effort).
 */
export function parseBlock(contents: Uint8Array, where: Where, what: string, maxEntries = MAX_ENTRIES): Array<{ key: Uint8Array; value: Uint8Array }> {
  const n = contents.length;
  if (n < 4) fail(ErrorCodes.TRUNCATED, `${what}: block of ${n} bytes has no restart count`, where, where.base);
  const numRestarts = u32le(contents, n - 4);
  // Every restart takes 4 bytes; a count that does not fit is corruption, not a reason to allocate.
  if (numRestarts > (n - 4) / 4) fail(ErrorCodes.MALFORMED, `${what}: ${numRestarts} restart points do not fit in ${n} bytes`, where, where.base + n - 4);
  const dataEnd = n - 4 - 4 * numRestarts;
  if (numRestarts === 0 && dataEnd > 0) fail(ErrorCodes.MALFORMED, `${what}: entries but no restart points`, where, where.base + n - 4);
  for (let r = 0; r < numRestarts; r++) {
    const off = u32le(contents, dataEnd + 4 * r);
    if (dataEnd > 0 ? off >= dataEnd : off !== 0) {
      fail(ErrorCodes.MALFORMED, `${what}: restart point ${r} at ${off} is outside the entries (${dataEnd} bytes)`, where, where.base + dataEnd + 4 * r);
    }
  }
  const out: Array<{ key: Uint8Array; value: Uint8Array }> = [];
  let prev = new Uint8Array(0);
  let pos = 0;
  while (pos < dataEnd) {
    const at = pos;
    let shared: number, nonShared: number, valueLen: number;
    [shared, pos] = readVarint(contents, pos, dataEnd, 5, `${what} entry shared length`, where);
    [nonShared, pos] = readVarint(contents, pos, dataEnd, 5, `${what} entry key length`, where);
    [valueLen, pos] = readVarint(contents, pos, dataEnd, 5, `${what} entry value length`, where);
    if (shared > prev.length) fail(ErrorCodes.MALFORMED, `${what}: entry shares ${shared} bytes with a ${prev.length}-byte previous key`, where, where.base + at);
    if (pos + nonShared + valueLen > dataEnd) fail(ErrorCodes.TRUNCATED, `${what}: entry of ${nonShared + valueLen} bytes runs past the block's entries`, where, where.base + at);
    const key = new Uint8Array(shared + nonShared);
    key.set(prev.subarray(0, shared), 0);
    key.set(contents.subarray(pos, pos + nonShared), shared);
    pos += nonShared;
    const value = contents.subarray(pos, pos + valueLen);
    pos += valueLen;
    if (out.length > 0 && compareBytes(prev, key) >= 0) fail(ErrorCodes.MALFORMED, `${what}: keys are not in increasing order`, where, where.base + at);
    if (out.length >= maxEntries) fail(ErrorCodes.LIMIT, `${what}: more than ${maxEntries} entries`, where, where.base + at);
    out.push({ key, value });
    prev = key;
  }
  return out;
}

/** Read every entry of the table, in key order. */
export async function readTable(src: ByteSource): Promise<TableInfo> {
  const where: Where = { path: src.name, base: 0 };
  if (src.size < FOOTER_SIZE) fail(ErrorCodes.TRUNCATED, `index of ${src.size} bytes is shorter than the ${FOOTER_SIZE}-byte table footer`, where, 0);
  const footerAt = src.size - FOOTER_SIZE;
  const footer = await src.read(footerAt, FOOTER_SIZE);
  if (u32le(footer, 40) !== TABLE_MAGIC_LO || u32le(footer, 44) !== TABLE_MAGIC_HI) {
    fail(ErrorCodes.MALFORMED, 'not a TF tensor-bundle index: bad table magic', where, footerAt + 40);
  }
  const fw: Where = { path: src.name, base: footerAt };
  const [, p1] = readHandle(footer, 0, 40, fw); // metaindex: always empty for TF, not needed
  const [indexHandle] = readHandle(footer, p1, 40, fw);
  const index = await readBlock(src, indexHandle, 'index block', footerAt);
  const handles = parseBlock(index.contents, { path: src.name, base: indexHandle.offset }, 'index block');
  const entries: TableEntry[] = [];
  const dataBlockCompression: number[] = [];
  let lastKey: Uint8Array | undefined;
  let nextFree = 0;
  for (const h of handles) {
    const [handle, end] = readHandle(h.value, 0, h.value.length, { path: src.name, base: indexHandle.offset });
    if (end !== h.value.length) fail(ErrorCodes.MALFORMED, 'index entry has trailing bytes after its block handle', where, indexHandle.offset);
    // Blocks are laid out back to back in key order; refusing overlap also bounds the work a hostile
    // index can cause to one pass over the file.
    if (handle.offset < nextFree) fail(ErrorCodes.MALFORMED, `data block at ${handle.offset} overlaps the previous block`, where, indexHandle.offset);
    nextFree = handle.offset + handle.size + BLOCK_TRAILER_SIZE;
    const block = await readBlock(src, handle, `data block at ${handle.offset}`, footerAt);
    dataBlockCompression.push(block.compression);
    const bw: Where = { path: src.name, base: handle.offset };
    for (const e of parseBlock(block.contents, bw, `data block at ${handle.offset}`, MAX_ENTRIES - entries.length)) {
      if (lastKey && compareBytes(lastKey, e.key) >= 0) fail(ErrorCodes.MALFORMED, 'keys are not in increasing order across blocks', where, handle.offset);
      // The index key must be ≥ every key of its block, or lookups in TF would miss entries.
      if (compareBytes(e.key, h.key) > 0) fail(ErrorCodes.MALFORMED, 'data block holds a key beyond its index separator', where, handle.offset);
      entries.push({ key: e.key, value: e.value, blockOffset: handle.offset });
      lastKey = e.key;
    }
  }
  return { entries, dataBlockCompression };
}
