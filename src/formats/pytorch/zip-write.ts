/**
 * Streaming zip writer with the byte layout torch.save produces (PyTorchStreamWriter over miniz):
 * stored entries, general-purpose flags 0x0808 (UTF-8 names + data descriptor; 0x0800 and no
 * descriptor for empty entries), zeroed times, a
 * "FB" extra field of 'Z' bytes so each record's data starts on an `alignment` boundary (torch
 * mmaps records and needs aligned tensor data), CRC and sizes in a data descriptor after the data,
 * and always a zip64 end record + locator before the classic end record.
 *
 * The sink is only appended to (no seeking), so output can go to a pipe, an HTTP body or an OPFS
 * stream. Memory is the caller's chunk plus the central directory (one small record per entry).
 * Offsets are counted from the first byte this writer emits, which must be the start of the file.
 */
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import type { ByteSink } from '../../io/source.js';
import { crc32 } from '../crc32.js';

export interface ZipWriterOptions {
  /** Data records start at a multiple of this (torch: 64). 1 disables padding but keeps the FB field. */
  alignment?: number;
  /**
   * Write every entry in zip64 form (0xFFFFFFFF in the 32-bit fields, 64-bit values in the 0x0001
   * extra field and data descriptor), as if it were past 4 GiB. Lets tests exercise the zip64 paths of
   * readers on small data. Without it, zip64 forms are used only where a value needs them.
   */
  forceZip64?: boolean;
  /** Output name for error messages. */
  path?: string;
}

export interface ZipWriteResult {
  /** Total bytes written. */
  bytes: number;
  entries: number;
}

interface CentralRecord {
  name: Uint8Array;
  crc: number;
  size: number;
  offset: number;
}

const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;
/** UTF-8 names + data descriptor. miniz leaves out the descriptor (flag bit 3) for empty entries. */
const FLAGS = 0x0808;
const FLAGS_EMPTY = 0x0800;
const LOCAL_HEADER = 30;
const CENTRAL_HEADER = 46;
const ZIP64_EXTRA_ID = 0x0001;
/** EOCD64 "version made by": 3.0 on Unix, as miniz writes it; "version needed": 4.5 (zip64). */
const EOCD64_MADE_BY = 0x031e;
const EOCD64_NEEDED = 0x002d;

const utf8 = new TextEncoder();

export class ZipWriter {
  private cursor = 0;
  private readonly records: CentralRecord[] = [];
  private readonly names = new Set<string>();
  private readonly alignment: number;
  private readonly force: boolean;
  private finished = false;

  constructor(private readonly sink: ByteSink, private readonly opts: ZipWriterOptions = {}) {
    const a = opts.alignment ?? 64;
    if (!Number.isSafeInteger(a) || a < 1 || a > U16_MAX) {
      throw new ModelsmithError(ErrorCodes.USAGE, `zip alignment must be an integer in [1, ${U16_MAX}], got ${a}`, this.ctx());
    }
    this.alignment = a;
    this.force = opts.forceZip64 === true;
  }

  /** Bytes written so far (the offset the next local header will get). */
  get position(): number {
    return this.cursor;
  }

  get entryCount(): number {
    return this.records.length;
  }

  /** Add one stored entry whose bytes are all in memory. */
  async add(name: string, data: Uint8Array): Promise<void> {
    await this.addStream(name, data.byteLength, [data]);
  }

  /**
   * Add one stored entry from chunks whose total is `size` bytes. The size must be known up front
   * because it decides the zip64 form and hence the padding; the CRC goes in the data descriptor, so
   * chunks are written as they arrive and never held together. `crc`, when the caller already knows
   * it (a record copied from another zip), is trusted and saves hashing the data again.
   */
  async addStream(
    name: string,
    size: number,
    chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
    opts: { crc?: number } = {},
  ): Promise<void> {
    this.checkOpen();
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `invalid size ${size} for zip entry '${name}'`, this.ctx());
    }
    const known = opts.crc;
    if (known !== undefined && (!Number.isInteger(known) || known < 0 || known > U32_MAX)) {
      throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `invalid CRC ${known} for zip entry '${name}'`, this.ctx());
    }
    const nameBytes = this.checkName(name);
    const offset = this.cursor;
    const zip64 = this.force || size >= U32_MAX || offset >= U32_MAX;
    const header = this.localHeader(nameBytes, size, offset, zip64);
    await this.emit(header);

    let crc = 0;
    let written = 0;
    for await (const chunk of chunks) {
      written += chunk.byteLength;
      if (written > size) break;
      if (known === undefined) crc = crc32(chunk, crc);
      if (chunk.byteLength) await this.emit(chunk);
    }
    if (written !== size) {
      throw new ModelsmithError(ErrorCodes.TENSOR_SIZE, `zip entry '${name}' announced ${size} bytes but its data has ${written > size ? 'more' : written}`, this.ctx());
    }
    if (known !== undefined) crc = known;
    if (size > 0) await this.emit(dataDescriptor(crc, size, zip64));
    this.records.push({ name: nameBytes, crc, size, offset });
  }

  /** Write the central directory and end records. No entries can be added afterwards. */
  async finish(): Promise<ZipWriteResult> {
    this.checkOpen();
    this.finished = true;
    const cdOffset = this.cursor;
    for (const r of this.records) await this.emit(this.centralHeader(r));
    const cdSize = this.cursor - cdOffset;
    const eocd64Offset = this.cursor;
    const n = this.records.length;
    await this.emit(endRecords(n, cdSize, cdOffset, eocd64Offset, this.force));
    return { bytes: this.cursor, entries: n };
  }

  private localHeader(name: Uint8Array, size: number, offset: number, zip64: boolean): Uint8Array {
    // miniz puts the zip64 extra in the local header only for values that overflow (here: all when
    // forced), sizes first, then the header offset; torch's padding formula counts exactly these.
    const bigSize = this.force || size >= U32_MAX;
    const bigOffset = this.force || offset >= U32_MAX;
    const z64Len = zip64 ? 4 + (bigSize ? 16 : 0) + (bigOffset ? 8 : 0) : 0;
    const start = offset + LOCAL_HEADER + name.byteLength + z64Len + 4;
    const pad = (this.alignment - (start % this.alignment)) % this.alignment;
    const extraLen = z64Len + 4 + pad;
    if (extraLen > U16_MAX) throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, 'zip extra field too long', this.ctx());

    const out = new Uint8Array(LOCAL_HEADER + name.byteLength + extraLen);
    const v = new DataView(out.buffer);
    v.setUint32(0, 0x04034b50, true);
    v.setUint16(4, 0, true); // version needed: miniz writes 0 for stored entries
    v.setUint16(6, size > 0 ? FLAGS : FLAGS_EMPTY, true);
    // method, time, date, crc and both sizes stay 0: the data descriptor carries them.
    v.setUint16(26, name.byteLength, true);
    v.setUint16(28, extraLen, true);
    out.set(name, LOCAL_HEADER);
    let p = LOCAL_HEADER + name.byteLength;
    if (zip64) {
      v.setUint16(p, ZIP64_EXTRA_ID, true);
      v.setUint16(p + 2, z64Len - 4, true);
      p += 4;
      if (bigSize) {
        setU64(v, p, size);
        setU64(v, p + 8, size);
        p += 16;
      }
      if (bigOffset) {
        setU64(v, p, offset);
        p += 8;
      }
    }
    out[p] = 0x46; // 'F'
    out[p + 1] = 0x42; // 'B'
    v.setUint16(p + 2, pad, true);
    out.fill(0x5a, p + 4, p + 4 + pad); // 'Z'
    return out;
  }

  private centralHeader(r: CentralRecord): Uint8Array {
    const bigSize = this.force || r.size >= U32_MAX;
    const bigOffset = this.force || r.offset >= U32_MAX;
    const z64Len = bigSize || bigOffset ? 4 + (bigSize ? 16 : 0) + (bigOffset ? 8 : 0) : 0;
    const out = new Uint8Array(CENTRAL_HEADER + r.name.byteLength + z64Len);
    const v = new DataView(out.buffer);
    v.setUint32(0, 0x02014b50, true);
    // version made by / needed: 0, as miniz writes them for torch.
    v.setUint16(8, r.size > 0 ? FLAGS : FLAGS_EMPTY, true);
    v.setUint32(16, r.crc, true);
    v.setUint32(20, bigSize ? U32_MAX : r.size, true);
    v.setUint32(24, bigSize ? U32_MAX : r.size, true);
    v.setUint16(28, r.name.byteLength, true);
    v.setUint16(30, z64Len, true);
    v.setUint32(42, bigOffset ? U32_MAX : r.offset, true);
    out.set(r.name, CENTRAL_HEADER);
    let p = CENTRAL_HEADER + r.name.byteLength;
    if (z64Len) {
      v.setUint16(p, ZIP64_EXTRA_ID, true);
      v.setUint16(p + 2, z64Len - 4, true);
      p += 4;
      if (bigSize) {
        setU64(v, p, r.size);
        setU64(v, p + 8, r.size);
        p += 16;
      }
      if (bigOffset) setU64(v, p, r.offset);
    }
    return out;
  }

  private checkName(name: string): Uint8Array {
    const bytes = utf8.encode(name);
    if (bytes.byteLength === 0 || bytes.byteLength > U16_MAX) {
      throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `zip entry name must be 1..${U16_MAX} UTF-8 bytes, got ${bytes.byteLength}`, this.ctx());
    }
    // Duplicate names make readers pick one copy arbitrarily (miniz: the first, zipfile: the last).
    if (this.names.has(name)) throw new ModelsmithError(ErrorCodes.MALFORMED, `duplicate zip entry '${name}'`, this.ctx());
    this.names.add(name);
    return bytes;
  }

  private checkOpen(): void {
    if (this.finished) throw new ModelsmithError(ErrorCodes.USAGE, 'zip writer already finished', this.ctx());
  }

  private async emit(chunk: Uint8Array): Promise<void> {
    await this.sink.write(chunk);
    this.cursor += chunk.byteLength;
  }

  private ctx(): { format: string; path?: string } {
    return this.opts.path !== undefined ? { format: 'zip', path: this.opts.path } : { format: 'zip' };
  }
}

function dataDescriptor(crc: number, size: number, zip64: boolean): Uint8Array {
  const out = new Uint8Array(zip64 ? 24 : 16);
  const v = new DataView(out.buffer);
  v.setUint32(0, 0x08074b50, true);
  v.setUint32(4, crc, true);
  if (zip64) {
    setU64(v, 8, size);
    setU64(v, 16, size);
  } else {
    v.setUint32(8, size, true);
    v.setUint32(12, size, true);
  }
  return out;
}

/** EOCD64 + locator (always, like miniz opened for zip64) + the classic EOCD with clamped values. */
function endRecords(n: number, cdSize: number, cdOffset: number, eocd64Offset: number, force: boolean): Uint8Array {
  const out = new Uint8Array(56 + 20 + 22);
  const v = new DataView(out.buffer);
  v.setUint32(0, 0x06064b50, true);
  setU64(v, 4, 44); // size of the rest of this record
  v.setUint16(12, EOCD64_MADE_BY, true);
  v.setUint16(14, EOCD64_NEEDED, true);
  // disk numbers (u32 at 16 and 20) stay 0
  setU64(v, 24, n);
  setU64(v, 32, n);
  setU64(v, 40, cdSize);
  setU64(v, 48, cdOffset);

  v.setUint32(56, 0x07064b50, true);
  setU64(v, 64, eocd64Offset);
  v.setUint32(72, 1, true); // total number of disks

  const e = 76;
  v.setUint32(e, 0x06054b50, true);
  const count = force ? U16_MAX : Math.min(n, U16_MAX);
  v.setUint16(e + 8, count, true);
  v.setUint16(e + 10, count, true);
  v.setUint32(e + 12, force ? U32_MAX : Math.min(cdSize, U32_MAX), true);
  v.setUint32(e + 16, force ? U32_MAX : Math.min(cdOffset, U32_MAX), true);
  return out;
}

function setU64(v: DataView, at: number, value: number): void {
  v.setBigUint64(at, BigInt(value), true);
}
