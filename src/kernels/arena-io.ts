/**
 * File bytes straight into WASM memory: a tensor payload is read from its ByteSource into the
 * kernel arena, with no intermediate JS buffer, then a kernel runs on it in place. Used for
 * external-data tensors and any reader that knows a payload's file offset.
 */
import type { ByteSource } from '../io/source.js';
import type { Kernels } from './loader.js';

/**
 * Allocate `length` bytes in the arena and fill them from `source` at `offset`. Returns the arena
 * pointer; the caller releases it with `k.reset(mark)` as for any arena allocation.
 */
export async function readIntoArena(k: Kernels, source: ByteSource, offset: number, length: number): Promise<number> {
  const ptr = k.alloc(length);
  // The view is made after alloc (which may grow and detach older views) and used before any other call.
  await source.readInto(offset, k.u8(ptr, length));
  return ptr;
}
