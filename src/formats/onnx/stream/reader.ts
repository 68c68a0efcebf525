/**
 * A forward-only buffered reader over a ByteSource: every read of the source starts at or after the
 * end of the previous one, so the same code works on random-access files and on request bodies
 * that can only be read once (ForwardStreamSource). Memory is one chunk plus what a caller takes.
 */
import { ErrorCodes, ModelsmithError } from '../../../core/errors.js';
import type { ByteSource } from '../../../io/source.js';

/**
 * Bytes asked of the source at a time while parsing structure. Small: after a skipped payload the
 * next read would otherwise pull in the start of the following payload for nothing.
 */
const CHUNK = 64 * 1024;

export class ForwardReader {
  private buf = new Uint8Array(0);
  /** Source offset of buf[0]. */
  private bufStart = 0;
  /** Current position (absolute). */
  pos = 0;

  constructor(readonly source: ByteSource, readonly path: string) {}

  get size(): number {
    return this.source.size;
  }

  private fail(code: typeof ErrorCodes.TRUNCATED | typeof ErrorCodes.MALFORMED, msg: string, offset: number): never {
    throw new ModelsmithError(code, msg, { path: this.path, format: 'onnx', offset });
  }

  /** Make [pos, pos + n) available in buf (n ≤ CHUNK unless the caller knows better). */
  private async ensure(n: number, what: string): Promise<void> {
    const have = this.bufStart + this.buf.byteLength - this.pos;
    if (have >= n) return;
    if (this.pos + n > this.size) this.fail(ErrorCodes.TRUNCATED, `${what} runs past the end of the file (${this.size} bytes)`, this.pos);
    const keep = have > 0 ? this.buf.subarray(this.pos - this.bufStart) : new Uint8Array(0);
    const from = this.pos + Math.max(0, have);
    const want = Math.min(Math.max(n - Math.max(0, have), CHUNK), this.size - from);
    const fresh = await this.source.read(from, want);
    const joined = new Uint8Array(keep.byteLength + fresh.byteLength);
    joined.set(keep, 0);
    joined.set(fresh, keep.byteLength);
    this.buf = joined;
    this.bufStart = this.pos;
  }

  /**
   * A varint of at most `maxBytes` bytes (values above 2^53 lose precision: only lengths, tags and
   * small scalars are interpreted). `end` bounds the enclosing message.
   */
  async varint(end: number, maxBytes: number, what: string): Promise<number> {
    const start = this.pos;
    await this.ensure(Math.min(maxBytes, Math.max(1, Math.min(end, this.size) - this.pos)), what);
    let value = 0;
    let mul = 1;
    for (let i = 0; ; i++) {
      if (this.pos >= end) {
        return end >= this.size
          ? this.fail(ErrorCodes.TRUNCATED, `${what} runs past the end of the file`, start)
          : this.fail(ErrorCodes.MALFORMED, `${what} overruns its enclosing message`, start);
      }
      if (i >= maxBytes) this.fail(ErrorCodes.MALFORMED, `${what}: varint longer than ${maxBytes} bytes`, start);
      const b = this.buf[this.pos - this.bufStart]!;
      this.pos++;
      if (i < 8) value += (b & 0x7f) * mul;
      mul *= 128;
      if (b < 0x80) return value;
    }
  }

  /** A copy of the bytes from `start` to the current position (right after one `varint` call: still buffered). */
  since(start: number): Uint8Array {
    if (start < this.bufStart) throw new Error('ForwardReader.since: bytes no longer buffered'); // programming error
    return this.buf.slice(start - this.bufStart, this.pos - this.bufStart);
  }

  /** The next `n` bytes as a fresh copy (the caller keeps it). */
  async take(n: number, what: string): Promise<Uint8Array> {
    if (this.pos + n > this.size) this.fail(ErrorCodes.TRUNCATED, `${what} (${n} bytes) runs past the end of the file (${this.size} bytes)`, this.pos);
    if (n > CHUNK) {
      // Big verbatim records: what is buffered, then the rest straight from the source (which may
      // already be past the buffered bytes: a forward-only stream cannot give them again).
      const out = new Uint8Array(n);
      const have = Math.max(0, Math.min(n, this.bufStart + this.buf.byteLength - this.pos));
      if (have > 0) out.set(this.buf.subarray(this.pos - this.bufStart, this.pos - this.bufStart + have));
      if (have < n) await this.source.readInto(this.pos + have, out.subarray(have));
      this.skip(n);
      return out;
    }
    await this.ensure(n, what);
    const o = this.pos - this.bufStart;
    this.pos += n;
    return this.buf.slice(o, o + n);
  }

  /** Move forward by `n` bytes without reading them (they are read later, or never). */
  skip(n: number): void {
    this.pos += n;
    if (this.pos >= this.bufStart + this.buf.byteLength) {
      this.buf = new Uint8Array(0);
      this.bufStart = this.pos;
    }
  }

  /**
   * Hand the bytes [pos, pos + n) to `fn` as a ranged reader; afterwards the position is past them.
   * Reads inside must go forward (a forward-only source refuses anything else).
   */
  async region<T>(n: number, fn: (read: (offset: number, target: Uint8Array) => Promise<void>) => Promise<T>): Promise<T> {
    const at = this.pos;
    if (at + n > this.size) this.fail(ErrorCodes.TRUNCATED, `payload of ${n} bytes runs past the end of the file (${this.size} bytes)`, at);
    // Buffered bytes of the region are served from the buffer; the rest from the source.
    const buffered = this.buf.subarray(at - this.bufStart, Math.min(this.buf.byteLength, at - this.bufStart + n));
    this.skip(n);
    return fn(async (offset, target) => {
      if (offset < 0 || offset + target.byteLength > n) throw new Error(`region read ${offset}+${target.byteLength} outside ${n}`); // programming error
      let done = 0;
      if (offset < buffered.byteLength) {
        const k = Math.min(target.byteLength, buffered.byteLength - offset);
        target.set(buffered.subarray(offset, offset + k));
        done = k;
      }
      if (done < target.byteLength) await this.source.readInto(at + offset + done, target.subarray(done));
    });
  }
}
