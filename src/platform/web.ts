/**
 * Web-platform byte I/O (browsers, Deno, Cloudflare Workers, Node ≥ 20): a ByteSource over a Blob/File
 * and ByteSinks over a WritableStream or an in-memory list of chunks. Only standard globals are used
 * (Blob, WritableStream), so this module is safe in every runtime bundle.
 */
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import { checkRange, type ByteSink, type ByteSource } from '../io/source.js';

/**
 * Random access over a Blob (a `File` from an `<input>`, a drag-and-drop, `Request.blob()`).
 * `Blob.slice` is lazy, so only the bytes asked for are ever read, even for multi-GB files.
 */
export class BlobSource implements ByteSource {
  readonly size: number;
  readonly name: string;

  constructor(private readonly blob: Blob, name?: string) {
    this.size = blob.size;
    this.name = name ?? fileName(blob) ?? '<blob>';
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this, offset, length);
    if (length === 0) return new Uint8Array(0);
    let buf: ArrayBuffer;
    try {
      buf = await this.blob.slice(offset, offset + length).arrayBuffer();
    } catch (e) {
      // Browsers reject with NotReadableError when the File changed on disk after it was picked.
      throw new ModelsmithError(ErrorCodes.IO, `cannot read blob: ${(e as Error)?.message ?? String(e)}`, { path: this.name, offset, cause: e });
    }
    if (buf.byteLength !== length) {
      throw new ModelsmithError(ErrorCodes.TRUNCATED, `blob returned ${buf.byteLength} of ${length} bytes`, { path: this.name, offset });
    }
    return new Uint8Array(buf);
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    target.set(await this.read(offset, target.byteLength));
  }
}

function fileName(blob: Blob): string | undefined {
  const n = (blob as { name?: unknown }).name;
  return typeof n === 'string' && n !== '' ? n : undefined;
}

/**
 * Writes into a WritableStream (a `TransformStream` feeding a `Response`, a File System Access
 * writable, …) with backpressure: each write waits for `writer.ready`, so a slow consumer slows the
 * producer instead of letting chunks pile up in memory.
 */
export class StreamSink implements ByteSink {
  position = 0;

  constructor(private readonly writer: WritableStreamDefaultWriter<Uint8Array>, readonly name: string = '<stream>') {}

  /** Convenience: take the stream's writer (the stream is locked to this sink from then on). */
  static of(stream: WritableStream<Uint8Array>, name?: string): StreamSink {
    return new StreamSink(stream.getWriter(), name);
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (chunk.byteLength === 0) return;
    // Copy: callers reuse their buffer (arena windows of WASM memory) as soon as write resolves, while
    // the stream may still hold the chunk in its queue.
    const copy = chunk.slice();
    try {
      await this.writer.ready;
      await this.writer.write(copy);
    } catch (e) {
      throw new ModelsmithError(ErrorCodes.IO, `output stream failed: ${(e as Error)?.message ?? String(e)}`, { path: this.name, offset: this.position, cause: e });
    }
    this.position += chunk.byteLength;
  }

  /** Flush and close the stream (the consumer sees end-of-stream). */
  async close(): Promise<void> {
    try {
      await this.writer.close();
    } catch (e) {
      throw new ModelsmithError(ErrorCodes.IO, `output stream failed on close: ${(e as Error)?.message ?? String(e)}`, { path: this.name, offset: this.position, cause: e });
    }
  }

  /** Abort the stream so the consumer sees an error instead of a silently short output. */
  async abort(reason?: unknown): Promise<void> {
    await this.writer.abort(reason).catch(() => undefined);
  }
}

/** Collects chunks and hands them back as a Blob (for a download link or `Response` body). */
export class BlobSink implements ByteSink {
  position = 0;
  private readonly parts: Uint8Array<ArrayBuffer>[] = [];

  async write(chunk: Uint8Array): Promise<void> {
    if (chunk.byteLength === 0) return;
    this.parts.push(chunk.slice() as Uint8Array<ArrayBuffer>);
    this.position += chunk.byteLength;
  }

  toBlob(type = 'application/octet-stream'): Blob {
    return new Blob(this.parts, { type });
  }
}

/**
 * A ByteSource over a ReadableStream that can only move forward (an HTTP request body in a Worker):
 * reads must come in increasing offset order; skipped bytes are dropped as they arrive, so memory holds
 * only what is asked for. The last range read by `read` is kept, so reading the same tensor again (a
 * pass that loads a weight twice) still works; any other backward read is refused with E_UNSUPPORTED. `size`
 * must be known up front (Content-Length); a stream that ends early is E_TRUNCATED, a longer one E_MALFORMED
 * when `finish()` is called.
 */
export class ForwardStreamSource implements ByteSource {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  /** Stream offset of the first byte of `pending`. */
  private pos = 0;
  private pending: Uint8Array = new Uint8Array(0);
  private last: { offset: number; bytes: Uint8Array } | undefined;

  private readonly maxRead: number;

  /**
   * `maxRead` caps a single read (default: no cap beyond `size`). The buffer for a read is allocated
   * before its bytes arrive, so under a memory limit (Workers) a header announcing one huge tensor
   * must end in E_LIMIT rather than an out-of-memory kill.
   */
  constructor(stream: ReadableStream<Uint8Array>, readonly size: number, readonly name: string = '<stream>', opts: { maxRead?: number } = {}) {
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `stream size must be a non-negative integer, got ${size}`, { path: name });
    }
    this.maxRead = opts.maxRead ?? Number.MAX_SAFE_INTEGER;
    this.reader = stream.getReader();
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this, offset, length);
    if (length > this.maxRead) {
      throw new ModelsmithError(ErrorCodes.LIMIT, `read of ${length} bytes is over the ${this.maxRead}-byte cap for this stream`, { path: this.name, offset });
    }
    const last = this.last;
    if (last && offset >= last.offset && offset + length <= last.offset + last.bytes.byteLength) {
      return last.bytes.subarray(offset - last.offset, offset - last.offset + length);
    }
    if (offset < this.pos) {
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `backward read of ${length} bytes at ${offset} on a forward-only stream (now at ${this.pos})`, { path: this.name, offset });
    }
    await this.skip(offset - this.pos);
    const out = new Uint8Array(length);
    let got = 0;
    while (got < length) {
      if (this.pending.byteLength === 0 && !(await this.pull())) {
        throw new ModelsmithError(ErrorCodes.TRUNCATED, `stream ended after ${this.pos} of ${this.size} announced bytes`, { path: this.name, offset: this.pos });
      }
      const n = Math.min(length - got, this.pending.byteLength);
      out.set(this.pending.subarray(0, n), got);
      this.consume(n);
      got += n;
    }
    this.last = { offset, bytes: out };
    return out;
  }

  /**
   * Copies the stream's chunks straight into `target` (e.g. the kernel arena): no buffer of the read's
   * size is allocated, which under a Worker's memory limit is most of the garbage of a large upload.
   * The range is not kept for a re-read (`target` is the caller's and may be reused); `read` keeps it.
   */
  async readInto(offset: number, target: Uint8Array): Promise<void> {
    const length = target.byteLength;
    checkRange(this, offset, length);
    const last = this.last;
    if (last && offset >= last.offset && offset + length <= last.offset + last.bytes.byteLength) {
      target.set(last.bytes.subarray(offset - last.offset, offset - last.offset + length));
      return;
    }
    if (offset < this.pos) {
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `backward read of ${length} bytes at ${offset} on a forward-only stream (now at ${this.pos})`, { path: this.name, offset });
    }
    this.last = undefined;
    await this.skip(offset - this.pos);
    let got = 0;
    while (got < length) {
      if (this.pending.byteLength === 0 && !(await this.pull())) {
        throw new ModelsmithError(ErrorCodes.TRUNCATED, `stream ended after ${this.pos} of ${this.size} announced bytes`, { path: this.name, offset: this.pos });
      }
      const n = Math.min(length - got, this.pending.byteLength);
      target.set(this.pending.subarray(0, n), got);
      this.consume(n);
      got += n;
    }
  }

  /**
   * The next `length` bytes (fewer if the stream ends first) without consuming them, e.g. to sniff the
   * format before handing the source to a reader that starts at offset 0.
   */
  async peek(length: number): Promise<Uint8Array> {
    if (!Number.isSafeInteger(length) || length < 0 || length > 1 << 20) {
      throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `peek of ${length} bytes (at most 1 MiB)`, { path: this.name, offset: this.pos });
    }
    while (this.pending.byteLength < length) {
      const before = this.pending;
      if (!(await this.pull())) {
        this.pending = before;
        break;
      }
      if (before.byteLength > 0) {
        const joined = new Uint8Array(before.byteLength + this.pending.byteLength);
        joined.set(before);
        joined.set(this.pending, before.byteLength);
        this.pending = joined;
      }
    }
    return this.pending.slice(0, length);
  }

  /** Drop the cached last range (its memory) once the caller is done with it. */
  forget(): void {
    this.last = undefined;
  }

  /** Drain what is left of the announced size and check the stream ends there. */
  async finish(): Promise<void> {
    this.last = undefined;
    await this.skip(this.size - this.pos);
    if (this.pending.byteLength > 0 || (await this.pull())) {
      await this.reader.cancel().catch(() => undefined);
      throw new ModelsmithError(ErrorCodes.MALFORMED, `stream is longer than the announced ${this.size} bytes`, { path: this.name, offset: this.size });
    }
  }

  /** Stop reading (on error): the producer sees the stream cancelled. */
  async cancel(reason?: unknown): Promise<void> {
    this.last = undefined;
    await this.reader.cancel(reason).catch(() => undefined);
  }

  private async skip(n: number): Promise<void> {
    while (n > 0) {
      if (this.pending.byteLength === 0 && !(await this.pull())) {
        throw new ModelsmithError(ErrorCodes.TRUNCATED, `stream ended after ${this.pos} of ${this.size} announced bytes`, { path: this.name, offset: this.pos });
      }
      const k = Math.min(n, this.pending.byteLength);
      this.consume(k);
      n -= k;
    }
  }

  private consume(n: number): void {
    this.pending = this.pending.subarray(n);
    this.pos += n;
  }

  private async pull(): Promise<boolean> {
    let r: ReadableStreamReadResult<Uint8Array>;
    try {
      r = await this.reader.read();
    } catch (e) {
      throw new ModelsmithError(ErrorCodes.IO, `input stream failed: ${(e as Error)?.message ?? String(e)}`, { path: this.name, offset: this.pos, cause: e });
    }
    if (r.done) return false;
    const v = r.value;
    if (!(v instanceof Uint8Array)) {
      throw new ModelsmithError(ErrorCodes.IO, 'input stream yielded a chunk that is not a Uint8Array', { path: this.name, offset: this.pos });
    }
    this.pending = v;
    return true;
  }
}
