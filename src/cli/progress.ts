/**
 * A progress bar on stderr for long work, drawn only when stderr is a terminal (never in pipes, logs
 * or --json consumers' captured stderr) and not under --quiet. Redraws at most every 100 ms.
 */
import type { WeightSet } from '../formats/weights.js';
import { formatBytes } from './output.js';

export interface Progress {
  add(bytes: number): void;
  done(): void;
}

const NONE: Progress = { add: () => undefined, done: () => undefined };

export function progressBar(label: string, total: number, enabled = Boolean(process.stderr.isTTY)): Progress {
  if (!enabled || total <= 0) return NONE;
  let doneBytes = 0;
  let last = 0;
  const t0 = performance.now();
  const draw = () => {
    const frac = Math.min(1, doneBytes / total);
    const width = 30;
    const filled = Math.round(frac * width);
    const secs = (performance.now() - t0) / 1000;
    const rate = secs > 0 ? doneBytes / secs : 0;
    process.stderr.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}% ${formatBytes(doneBytes)}/${formatBytes(total)} ${formatBytes(rate)}/s`);
  };
  return {
    add(bytes) {
      doneBytes += bytes;
      const now = performance.now();
      if (now - last >= 100) {
        last = now;
        draw();
      }
    },
    done() {
      draw();
      process.stderr.write('\n');
    },
  };
}

/** The same set with each tensor's load() reporting its bytes to `p` once it resolves. */
export function trackLoads(set: WeightSet, p: Progress): WeightSet {
  if (p === NONE) return set;
  return {
    ...set,
    tensors: set.tensors.map((t) => {
      const { readInto } = t;
      return {
        ...t,
        load: async () => {
          const b = await t.load();
          p.add(b.byteLength);
          return b;
        },
        ...(readInto ? {
          readInto: async (offset: number, target: Uint8Array) => {
            await readInto.call(t, offset, target);
            p.add(target.byteLength);
          },
        } : {}),
      };
    }),
  };
}
