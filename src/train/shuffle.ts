/**
 * Deterministic shuffling: the same seed gives the same batch order in every runtime (Math.random
 * cannot be seeded), so a training run and its hard-label baseline see identical data.
 */

import { mulberry32 } from '../core/random.js';

/** Uniform [0, 1) from a seed (mulberry32, shared with eval's random inputs). */
export const seededRandom: (seed: number) => () => number = mulberry32;

/** A permutation of 0..n−1 (Fisher–Yates). */
export function permutation(n: number, seed: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  const r = seededRandom(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    const t = p[i]!; p[i] = p[j]!; p[j] = t;
  }
  return p;
}

/** The seed for epoch `e` of a run seeded with `seed` (distinct, reproducible orders per epoch). */
export function epochSeed(seed: number, epoch: number): number {
  return (Math.imul(seed >>> 0, 0x9e3779b1) + Math.imul(epoch + 1, 0x85ebca6b)) >>> 0;
}
