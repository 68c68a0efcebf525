/**
 * Random-access zip reader over a ByteSource, for PyTorch archives. Only the end records and the
 * central directory are read when opening; an entry's local header is read when its data is first
 * located, so a multi-GB checkpoint costs a few small reads. Stored entries only: torch never
 * compresses tensor data, and refusing deflate keeps bombs out by construction.
 *
 * Untrusted input: the EOCD search is bounded (22 + 65535 bytes), entry counts and the directory
 * size are capped and checked against the file size before anything is allocated, and records that
 * overlap or run past the directory are refused.
 */
import { ErrorCodes, ModelsmithError, type ErrorCode } from '../../core/errors.js';
import type { ByteSource } from '../../io/source.js';

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate, ... */
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

export interface ZipLimits {
  maxEntries: number;
  /** Largest central directory read into memory. */
  maxDirectoryBytes: number;
}

export const DEFAULT_ZIP_LIMITS: ZipLimits = { maxEntries: 1_000_000, maxDirectoryBytes: 256 * 1024 * 1024 };

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_LOC64 = 0x07064b50;
const FORMAT = 'pytorch-zip';
/** Local headers closer than this to the one asked for are read along with it. */
const HEADER_BATCH_SPAN = 16 * 1024;

export class ZipArchive {
  private readonly byName = new Map<string, ZipEntry>();
  private readonly dataStarts = new Map<ZipEntry, number>();
  /** For each entry, the first byte it must not reach (next local header or the central directory). */
  private readonly limits = new Map<ZipEntry, number>();
  private readonly sorted: ZipEntry[];
  private readonly sortedIndex = new Map<ZipEntry, number>();
  /** Data starts computed from local headers read in batches (not yet validated per entry). */
  private readonly rawStarts = new Map<ZipEntry, number>();

  constructor(
    readonly src: ByteSource,
    readonly entries: readonly ZipEntry[],
    /** Where the central directory starts: no entry data may reach it. */
    readonly directoryOffset: number,
    readonly path: string,
  ) {
    const sorted = [...entries].sort((a, b) => a.localHeaderOffset - b.localHeaderOffset);
    this.sorted = sorted;
    sorted.forEach((e, i) => this.sortedIndex.set(e, i));
    for (let i = 0; i < sorted.length; i++) {
      const e = sorted[i]!;
      const limit = i + 1 < sorted.length ? sorted[i + 1]!.localHeaderOffset : directoryOffset;
      // 30-byte fixed local header + the name (the local copy has the same length in every sane zip) + data.
      if (e.localHeaderOffset + 30 + e.compressedSize > limit) {
        this.fail(ErrorCodes.MALFORMED, `entry '${e.name}' overlaps the next record`, e.localHeaderOffset);
      }
      this.limits.set(e, limit);
      if (this.byName.has(e.name)) this.fail(ErrorCodes.MALFORMED, `duplicate entry '${e.name}'`, e.localHeaderOffset);
      this.byName.set(e.name, e);
    }
  }

  get(name: string): ZipEntry | undefined {
    return this.byName.get(name);
  }

  private fail(code: ErrorCode, msg: string, offset?: number, entry?: string): never {
    throw new ModelsmithError(code, msg, { format: FORMAT, path: this.path, ...(offset !== undefined ? { offset } : {}), ...(entry !== undefined ? { tensor: entry } : {}) });
  }

  /** File offset of the entry's first data byte, from its local header (the central extra length is not trusted). */
  async dataOffset(e: ZipEntry): Promise<number> {
    const cached = this.dataStarts.get(e);
    if (cached !== undefined) return cached;
    if (e.method !== 0) {
      this.fail(ErrorCodes.UNSUPPORTED, `zip entry '${e.name}' is compressed (method ${e.method}); only stored entries are read`, e.localHeaderOffset);
    }
    if (e.compressedSize !== e.size) this.fail(ErrorCodes.MALFORMED, `stored entry '${e.name}' has different compressed and uncompressed sizes`, e.localHeaderOffset);
    const limit = this.limits.get(e) ?? this.directoryOffset;
    if (e.localHeaderOffset + 30 > this.src.size) this.fail(ErrorCodes.TRUNCATED, `local header of '${e.name}' is past the end`, e.localHeaderOffset);
    if (!this.rawStarts.has(e)) await this.readHeaders(e);
    const start = this.rawStarts.get(e)!;
    if (start < 0) this.fail(ErrorCodes.MALFORMED, `no local header for '${e.name}'`, e.localHeaderOffset);
    if (start + e.size > limit) {
      this.fail(limit >= this.src.size ? ErrorCodes.TRUNCATED : ErrorCodes.MALFORMED, `data of '${e.name}' (${e.size} bytes at ${start}) runs past its record`, e.localHeaderOffset);
    }
    this.dataStarts.set(e, start);
    return start;
  }

  /**
   * Read the 30-byte local header of `e` and of the entries that follow it closely, in one read:
   * a checkpoint with thousands of small storages then costs a few reads to locate them all,
   * while the bytes read stay within the span of those small entries.
   */
  private async readHeaders(e: ZipEntry): Promise<void> {
    const i = this.sortedIndex.get(e)!;
    let j = i;
    while (j + 1 < this.sorted.length && this.sorted[j + 1]!.localHeaderOffset + 30 - e.localHeaderOffset <= HEADER_BATCH_SPAN) j++;
    const from = e.localHeaderOffset;
    const to = Math.min(this.src.size, this.sorted[j]!.localHeaderOffset + 30);
    const buf = await this.src.read(from, to - from);
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    for (let k = i; k <= j; k++) {
      const f = this.sorted[k]!;
      const at = f.localHeaderOffset - from;
      if (at + 30 > buf.byteLength) break;
      const ok = dv.getUint32(at, true) === SIG_LOCAL;
      this.rawStarts.set(f, ok ? f.localHeaderOffset + 30 + dv.getUint16(at + 26, true) + dv.getUint16(at + 28, true) : -1);
    }
  }

  /** The whole entry as bytes; `cap` refuses entries too big to hold in memory. */
  async read(e: ZipEntry, cap: number): Promise<Uint8Array> {
    if (e.size > cap) this.fail(ErrorCodes.LIMIT, `zip entry '${e.name}' is ${e.size} bytes (cap ${cap})`, e.localHeaderOffset);
    const start = await this.dataOffset(e);
    return this.src.read(start, e.size);
  }
}

export async function openZip(src: ByteSource, opts: { path?: string; limits?: Partial<ZipLimits> } = {}): Promise<ZipArchive> {
  const path = opts.path ?? src.name;
  const lim = { ...DEFAULT_ZIP_LIMITS, ...opts.limits };
  const fail = (code: ErrorCode, msg: string, offset?: number): never => {
    throw new ModelsmithError(code, msg, { format: FORMAT, path, ...(offset !== undefined ? { offset } : {}) });
  };
  if (src.size < 22) fail(ErrorCodes.TRUNCATED, `${src.size} bytes is too small for a zip archive`);

  // The EOCD is the last 22 bytes plus a comment of at most 65535 bytes.
  const tailLen = Math.min(src.size, 22 + 0xffff);
  const tailStart = src.size - tailLen;
  const tail = await src.read(tailStart, tailLen);
  const tv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  let eocd = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === SIG_EOCD && i + 22 + tv.getUint16(i + 20, true) <= tailLen) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) fail(ErrorCodes.TRUNCATED, 'no end-of-central-directory record (truncated or not a zip)');
  const eocdAbs = tailStart + eocd;
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  let cdEndLimit = eocdAbs;

  // Zip64: the locator sits right before the EOCD. torch (miniz) always writes one.
  if (eocd >= 20 && tv.getUint32(eocd - 20, true) === SIG_LOC64) {
    const recOffset = u64(tv, eocd - 20 + 8, path);
    if (recOffset + 56 > eocdAbs - 20) fail(ErrorCodes.OUT_OF_RANGE, 'zip64 end record offset is out of range', eocdAbs - 20);
    const rec = await src.read(recOffset, 56);
    const rv = new DataView(rec.buffer, rec.byteOffset, 56);
    if (rv.getUint32(0, true) !== SIG_EOCD64) fail(ErrorCodes.MALFORMED, 'zip64 end record signature missing', recOffset);
    count = u64(rv, 32, path);
    cdSize = u64(rv, 40, path);
    cdOffset = u64(rv, 48, path);
    cdEndLimit = recOffset;
  } else if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    fail(ErrorCodes.MALFORMED, 'zip64 values announced but no zip64 locator', eocdAbs);
  }

  if (count > lim.maxEntries) fail(ErrorCodes.LIMIT, `zip has ${count} entries (cap ${lim.maxEntries})`, eocdAbs);
  if (cdSize > lim.maxDirectoryBytes) fail(ErrorCodes.LIMIT, `central directory of ${cdSize} bytes (cap ${lim.maxDirectoryBytes})`, eocdAbs);
  if (cdOffset + cdSize > cdEndLimit) {
    fail(cdOffset >= src.size ? ErrorCodes.TRUNCATED : ErrorCodes.OUT_OF_RANGE, `central directory (${cdSize} bytes at ${cdOffset}) runs past its end record`, eocdAbs);
  }
  if (count * 46 > cdSize) fail(ErrorCodes.MALFORMED, `${count} entries cannot fit in a ${cdSize}-byte central directory`, eocdAbs);

  const cd = await src.read(cdOffset, cdSize);
  const cv = new DataView(cd.buffer, cd.byteOffset, cd.byteLength);
  const dec = new TextDecoder('utf-8');
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    const at = cdOffset + p;
    if (p + 46 > cdSize) fail(ErrorCodes.MALFORMED, `central directory entry ${i} runs past the directory`, at);
    if (cv.getUint32(p, true) !== SIG_CENTRAL) fail(ErrorCodes.MALFORMED, `central directory entry ${i} has a bad signature`, at);
    const flags = cv.getUint16(p + 8, true);
    const method = cv.getUint16(p + 10, true);
    const crc32 = cv.getUint32(p + 16, true);
    let compressedSize = cv.getUint32(p + 20, true);
    let size = cv.getUint32(p + 24, true);
    const nameLen = cv.getUint16(p + 28, true);
    const extraLen = cv.getUint16(p + 30, true);
    const commentLen = cv.getUint16(p + 32, true);
    let localHeaderOffset = cv.getUint32(p + 42, true);
    const next = p + 46 + nameLen + extraLen + commentLen;
    if (next > cdSize) fail(ErrorCodes.MALFORMED, `central directory entry ${i} runs past the directory`, at);
    const name = dec.decode(cd.subarray(p + 46, p + 46 + nameLen));
    // Zip64 extra (0x0001) holds, in order, only the fields whose 32-bit value overflowed.
    if (size === 0xffffffff || compressedSize === 0xffffffff || localHeaderOffset === 0xffffffff) {
      let q = p + 46 + nameLen;
      const extraEnd = q + extraLen;
      let found = false;
      while (q + 4 <= extraEnd) {
        const id = cv.getUint16(q, true);
        const len = cv.getUint16(q + 2, true);
        if (q + 4 + len > extraEnd) break;
        if (id === 0x0001) {
          let r = q + 4;
          const take = (): number => {
            if (r + 8 > q + 4 + len) fail(ErrorCodes.MALFORMED, `zip64 extra of '${name}' is too short`, at);
            const v = u64(cv, r, path);
            r += 8;
            return v;
          };
          if (size === 0xffffffff) size = take();
          if (compressedSize === 0xffffffff) compressedSize = take();
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = take();
          found = true;
          break;
        }
        q += 4 + len;
      }
      if (!found) fail(ErrorCodes.MALFORMED, `entry '${name}' needs a zip64 extra field but has none`, at);
    }
    if (localHeaderOffset + 30 > cdOffset || compressedSize > cdOffset) {
      fail(ErrorCodes.OUT_OF_RANGE, `entry '${name}' points outside the archive data (header at ${localHeaderOffset}, ${compressedSize} bytes)`, at);
    }
    entries.push({ name, method, flags, crc32, compressedSize, size, localHeaderOffset });
    p = next;
  }
  return new ZipArchive(src, entries, cdOffset, path);
}

function u64(dv: DataView, at: number, path: string): number {
  const lo = dv.getUint32(at, true);
  const hi = dv.getUint32(at + 4, true);
  if (hi >= 0x200000) throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, 'zip64 value ≥ 2^53', { format: FORMAT, path });
  return hi * 0x100000000 + lo;
}
