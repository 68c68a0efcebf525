/**
 * Small reads at increasing offsets (legacy storage counts, whose positions are only known one at
 * a time) served from one cached window, so thousands of small storages cost a handful of reads
 * instead of one each. The window adapts: it doubles while consecutive requests keep landing in it
 * (many small tensors) and shrinks when they do not (big tensors between headers), so a multi-GB
 * file with large tensors pays at most a few KiB per header.
 */
import type { ByteSource } from '../../io/source.js';

const MIN_WINDOW = 4 * 1024;
const MAX_WINDOW = 64 * 1024;

export class WindowReader {
  private start = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private size = MIN_WINDOW;
  private hits = 0;

  constructor(private readonly src: ByteSource) {}

  /** Bytes [offset, offset + length); the caller has checked the range against the source size. */
  async read(offset: number, length: number): Promise<Uint8Array> {
    if (offset >= this.start && offset + length <= this.start + this.buf.byteLength) {
      this.hits++;
      return this.buf.subarray(offset - this.start, offset - this.start + length);
    }
    if (this.buf.byteLength) this.size = this.hits >= 2 ? Math.min(MAX_WINDOW, this.size * 2) : Math.max(MIN_WINDOW, this.size / 2);
    this.hits = 0;
    const n = Math.max(length, Math.min(this.size, this.src.size - offset));
    this.buf = await this.src.read(offset, n);
    this.start = offset;
    return this.buf.subarray(0, length);
  }
}
