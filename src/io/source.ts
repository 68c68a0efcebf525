/**
 * Random-access byte input and sequential byte output, independent of any runtime API.
 * `platform/` provides implementations over node:fs, Deno files and Blobs; formats only see these.
 */
import { ErrorCodes, ModelsmithError } from '../core/errors.js';

export interface ByteSource {
  /** Total size in bytes. */
  readonly size: number;
  /** A name for error messages (file path or upload name). */
  readonly name: string;
  /** Read exactly `length` bytes at `offset`; rejects with E_TRUNCATED past the end. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /**
   * Read `target.byteLength` bytes at `offset` straight into `target` (e.g. a view of WASM memory),
   * so big tensors need no intermediate JS buffer. Same errors as `read`.
   */
  readInto(offset: number, target: Uint8Array): Promise<void>;
}

export interface ByteSink {
  write(chunk: Uint8Array): Promise<void>;
  /** Bytes written so far. */
  readonly position: number;
}

/**
 * Resolves a sibling file of a multi-file model (ONNX external data, SavedModel variables, Caffe pairs),
 * given a path relative to the model file's folder. Implementations must refuse paths that leave the folder.
 */
export type SiblingResolver = (relativePath: string) => Promise<ByteSource>;

/** A ByteSource over bytes already in memory. */
export class MemorySource implements ByteSource {
  constructor(readonly bytes: Uint8Array, readonly name: string = '<memory>') {}
  get size(): number {
    return this.bytes.byteLength;
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this, offset, length);
    return this.bytes.subarray(offset, offset + length);
  }
  async readInto(offset: number, target: Uint8Array): Promise<void> {
    target.set(await this.read(offset, target.byteLength));
  }
}

/** A ByteSink that collects chunks in memory. */
export class MemorySink implements ByteSink {
  private chunks: Uint8Array[] = [];
  position = 0;
  async write(chunk: Uint8Array): Promise<void> {
    // Copy: callers may reuse their buffer (arena windows) after write resolves.
    this.chunks.push(chunk.slice());
    this.position += chunk.byteLength;
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.position);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.byteLength;
    }
    return out;
  }
}

export function checkRange(src: { size: number; name: string }, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `invalid read of ${length} bytes at ${offset}`, { path: src.name, offset });
  }
  if (offset + length > src.size) {
    throw new ModelsmithError(ErrorCodes.TRUNCATED, `read of ${length} bytes at ${offset} runs past the end (${src.size} bytes)`, { path: src.name, offset });
  }
}
