/**
 * Writer for the LevelDB-style table of a bundle index. It follows LevelDB's TableBuilder decisions
 * exactly (16-entry restart interval in data blocks, 1 in the index block, flush when the size
 * estimate reaches the block size, shortest separators as index keys), because then an uncompressed
 * index TF wrote is reproduced byte for byte, which is how the tests prove the layout. Blocks are
 * written uncompressed: TF reads both, and its own BundleWriter does the same.
 */
import { ErrorCodes } from '../../../core/errors.js';
import type { ByteSink } from '../../../io/source.js';
import { compareBytes, fail, putU32le, pushVarint } from './bytes.js';
import { crc32c, maskCrc } from './crc32c.js';
import { BLOCK_TRAILER_SIZE, COMPRESSION_NONE, FOOTER_SIZE, TABLE_MAGIC_HI, TABLE_MAGIC_LO, type BlockHandle } from './sstable-read.js';

export const DEFAULT_BLOCK_SIZE = 262_144;

class BlockBuilder {
  private buf: number[] = [];
  private restarts: number[] = [0];
  private counter = 0;
  private lastKey: Uint8Array = new Uint8Array(0);
  entries = 0;

  constructor(private readonly restartInterval: number) {}

  add(key: Uint8Array, value: Uint8Array): void {
    let shared = 0;
    if (this.counter < this.restartInterval) {
      const n = Math.min(key.length, this.lastKey.length);
      while (shared < n && key[shared] === this.lastKey[shared]) shared++;
    } else {
      this.restarts.push(this.buf.length);
      this.counter = 0;
    }
    pushVarint(this.buf, shared);
    pushVarint(this.buf, key.length - shared);
    pushVarint(this.buf, value.length);
    for (let i = shared; i < key.length; i++) this.buf.push(key[i]!);
    for (let i = 0; i < value.length; i++) this.buf.push(value[i]!);
    this.lastKey = key;
    this.counter++;
    this.entries++;
  }

  sizeEstimate(): number {
    return this.buf.length + 4 * this.restarts.length + 4;
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.sizeEstimate());
    out.set(this.buf, 0);
    let p = this.buf.length;
    for (const r of this.restarts) {
      putU32le(out, p, r);
      p += 4;
    }
    putU32le(out, p, this.restarts.length);
    return out;
  }
}

/** Smallest key k with start ≤ k < limit, by incrementing the first differing byte (LevelDB's rule). */
export function shortestSeparator(start: Uint8Array, limit: Uint8Array): Uint8Array {
  const n = Math.min(start.length, limit.length);
  let i = 0;
  while (i < n && start[i] === limit[i]) i++;
  if (i >= n) return start;
  const b = start[i]!;
  if (b < 0xff && b + 1 < limit[i]!) {
    const out = start.slice(0, i + 1);
    out[i] = b + 1;
    return out;
  }
  return start;
}

/** Smallest key ≥ every key starting with `key`'s first differing byte: increment and truncate. */
export function shortSuccessor(key: Uint8Array): Uint8Array {
  for (let i = 0; i < key.length; i++) {
    if (key[i] !== 0xff) {
      const out = key.slice(0, i + 1);
      out[i] = key[i]! + 1;
      return out;
    }
  }
  return key;
}

function encodeHandle(out: number[], h: BlockHandle): void {
  pushVarint(out, h.offset);
  pushVarint(out, h.size);
}

export class TableWriter {
  private data = new BlockBuilder(16);
  private index = new BlockBuilder(1);
  private offset = 0;
  private lastKey: Uint8Array | undefined;
  private pendingHandle: BlockHandle | undefined;

  constructor(private readonly sink: ByteSink, private readonly blockSize = DEFAULT_BLOCK_SIZE) {}

  /** Add an entry; keys must arrive in strictly increasing bytewise order. */
  async add(key: Uint8Array, value: Uint8Array): Promise<void> {
    if (this.lastKey && compareBytes(this.lastKey, key) >= 0) {
      fail(ErrorCodes.MALFORMED, `table keys must be strictly increasing ('${new TextDecoder().decode(key)}')`, {});
    }
    if (this.pendingHandle) {
      this.addIndexEntry(shortestSeparator(this.lastKey!, key), this.pendingHandle);
      this.pendingHandle = undefined;
    }
    this.lastKey = key;
    this.data.add(key, value);
    if (this.data.sizeEstimate() >= this.blockSize) await this.flush();
  }

  private addIndexEntry(key: Uint8Array, h: BlockHandle): void {
    const v: number[] = [];
    encodeHandle(v, h);
    this.index.add(key, Uint8Array.from(v));
  }

  private async flush(): Promise<void> {
    if (this.data.entries === 0) return;
    this.pendingHandle = await this.writeBlock(this.data.finish());
    this.data = new BlockBuilder(16);
  }

  private async writeBlock(contents: Uint8Array): Promise<BlockHandle> {
    const handle = { offset: this.offset, size: contents.length };
    const trailer = new Uint8Array(BLOCK_TRAILER_SIZE);
    trailer[0] = COMPRESSION_NONE;
    putU32le(trailer, 1, maskCrc(crc32c(trailer.subarray(0, 1), crc32c(contents))));
    await this.sink.write(contents);
    await this.sink.write(trailer);
    this.offset += contents.length + BLOCK_TRAILER_SIZE;
    return handle;
  }

  /** Write the remaining data block, the (empty) metaindex block, the index block and the footer. */
  async finish(): Promise<number> {
    await this.flush();
    const meta = await this.writeBlock(new BlockBuilder(16).finish());
    if (this.pendingHandle) {
      this.addIndexEntry(shortSuccessor(this.lastKey!), this.pendingHandle);
      this.pendingHandle = undefined;
    }
    const index = await this.writeBlock(this.index.finish());
    const handles: number[] = [];
    encodeHandle(handles, meta);
    encodeHandle(handles, index);
    const footer = new Uint8Array(FOOTER_SIZE);
    footer.set(handles, 0);
    putU32le(footer, 40, TABLE_MAGIC_LO);
    putU32le(footer, 44, TABLE_MAGIC_HI);
    await this.sink.write(footer);
    this.offset += FOOTER_SIZE;
    return this.offset;
  }
}
