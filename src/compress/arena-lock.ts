/**
 * Async users of the kernel arena. The streaming passes keep arena allocations alive across awaits
 * (a tensor read from a file straight into the arena, then quantized or cast there). Two such users
 * interleaving would release each other's memory on reset, so they queue here. Synchronous kernel
 * wrappers need no lock: they allocate above whatever is live and reset to their own mark.
 * (They may still grow memory while a read into an arena view is pending; the passes never run
 * another kernel during such a read, and callers must not run other kernels concurrently with a pass.)
 */
import type { Kernels } from '../kernels/loader.js';

const queues = new WeakMap<Kernels, Promise<unknown>>();

/** Run `fn` alone on `k`'s arena and release everything it allocated afterwards, even when it throws. */
export function withArenaAsync<T>(k: Kernels, fn: () => Promise<T>): Promise<T> {
  const prev = queues.get(k) ?? Promise.resolve();
  const run = prev.then(async () => {
    const mark = k.mark();
    try {
      return await fn();
    } finally {
      k.reset(mark);
    }
  });
  // The queue continues whether this user succeeded or not.
  queues.set(k, run.catch(() => undefined));
  return run;
}
