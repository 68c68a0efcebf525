/**
 * Sequential byte cursors over a payload region: plain bytes of a ByteSource, or a deflated zip
 * member inflated as it is read. Batching only ever moves forward, so a deflated .npz member is
 * inflated once per pass over the data set and never held whole.
 */
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import type { ByteSource } from '../io/source.js';

export interface ByteCursor {
  /** The next `n` bytes (E_TRUNCATED when the region ends first). */
  next(n: number): Promise<Uint8Array>;
  /** Stop early (releases the inflater); harmless after the end. */
  close(): Promise<void>;
}

/** Compressed bytes read from the source per step. */
const READ_STEP = 1 << 20;

export function sourceCursor(src: ByteSource, offset: number, length: number, path: string): ByteCursor {
  let pos = 0;
  return {
    async next(n) {
      if (pos + n > length) {
        throw new ModelsmithError(ErrorCodes.TRUNCATED, `read of ${n} bytes at ${pos} runs past the ${length}-byte payload`, { path, offset: offset + pos });
      }
      const out = await src.read(offset + pos, n);
      pos += n;
      return out;
    },
    async close() {},
  };
}

interface DecompressionStreamCtor {
  new (format: string): { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> };
}

/**
 * Raw-deflate member of `compressed` bytes at `offset` that must inflate to `size` bytes. Uses the
 * web-standard DecompressionStream (Node ≥ 18, Deno, browsers, Workers). Inflating past `size` is
 * refused; a stream that ends early is E_TRUNCATED.
 */
export function inflateCursor(src: ByteSource, offset: number, compressed: number, size: number, path: string): ByteCursor {
  const DS = (globalThis as { DecompressionStream?: DecompressionStreamCtor }).DecompressionStream;
  if (!DS) throw new ModelsmithError(ErrorCodes.UNSUPPORTED, 'this runtime has no DecompressionStream to inflate deflated zip members', { path });
  const ds = new DS('deflate-raw');
  const writer = ds.writable.getWriter();
  const reader = ds.readable.getReader();
  let stopped = false;
  // Compressed bytes go in from a separate loop: awaiting a write before reading would deadlock on backpressure.
  const pump = (async () => {
    for (let p = 0; p < compressed && !stopped; p += READ_STEP) {
      const chunk = await src.read(offset + p, Math.min(READ_STEP, compressed - p));
      await writer.write(chunk.slice());
    }
    if (!stopped) await writer.close();
  })();
  pump.catch(() => undefined);
  let pending: Uint8Array = new Uint8Array(0);
  let produced = 0;
  let consumed = 0;
  const malformed = (e: unknown): ModelsmithError =>
    e instanceof ModelsmithError ? e : new ModelsmithError(ErrorCodes.MALFORMED, `deflate data is corrupt: ${(e as Error)?.message ?? String(e)}`, { path, offset, cause: e });
  return {
    async next(n) {
      if (consumed + n > size) {
        throw new ModelsmithError(ErrorCodes.TRUNCATED, `read of ${n} bytes at ${consumed} runs past the ${size}-byte member`, { path, offset });
      }
      const out = new Uint8Array(n);
      let filled = 0;
      while (filled < n) {
        if (pending.byteLength === 0) {
          let r: ReadableStreamReadResult<Uint8Array>;
          try {
            r = await reader.read();
          } catch (e) {
            throw malformed(e);
          }
          if (r.done) {
            throw new ModelsmithError(ErrorCodes.TRUNCATED, `deflated member ends after ${produced} of its ${size} bytes`, { path, offset });
          }
          produced += r.value.byteLength;
          if (produced > size) throw new ModelsmithError(ErrorCodes.MALFORMED, `deflated member inflates past its declared ${size} bytes`, { path, offset });
          pending = r.value;
        }
        const take = Math.min(n - filled, pending.byteLength);
        out.set(pending.subarray(0, take), filled);
        pending = pending.subarray(take);
        filled += take;
      }
      consumed += n;
      return out;
    },
    async close() {
      stopped = true;
      await reader.cancel().catch(() => undefined);
      await pump.catch(() => undefined);
    },
  };
}
