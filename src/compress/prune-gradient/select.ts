/**
 * Scores → masks at a target sparsity, exact-k: the k lowest scores go, ties broken by position
 * (lower index first) so the result is deterministic and exactly k, whatever the number of equal
 * scores (whole layers of zero gradient would otherwise all fall on one side of a threshold).
 * Global scope ranks all prunable weights together; layer scope gives every weight tensor the same
 * sparsity.
 */
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import type { Masks } from '../../train/masks.js';
import type { Scores } from './scores.js';

export type Scope = 'global' | 'layer';

/** The k-th smallest value (0-based) of the concatenated arrays (a sorted copy: one float per weight). */
function kthSmallest(arrays: readonly Float32Array[], k: number): number {
  const total = arrays.reduce((a, b) => a + b.length, 0);
  const all = new Float32Array(total);
  let off = 0;
  for (const a of arrays) { all.set(a, off); off += a.length; }
  all.sort();
  return all[k]!;
}

function checkSparsity(s: number): void {
  if (!(s >= 0 && s < 1)) throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `sparsity must be in [0, 1), got ${s}`);
}

/** Masks pruning exactly round(sparsity × n) weights of `names` (together) by lowest score. */
function selectGroup(scores: Scores, names: readonly string[], sparsity: number, out: Masks): void {
  const arrays = names.map((n) => scores.get(n)!);
  const n = arrays.reduce((a, b) => a + b.length, 0);
  const k = Math.round(sparsity * n);
  const masks = arrays.map((a) => new Uint8Array(a.length).fill(1));
  names.forEach((name, i) => out.set(name, masks[i]!));
  if (k === 0) return;
  const thr = kthSmallest(arrays, k - 1);
  let left = k;
  arrays.forEach((a, j) => {
    for (let i = 0; i < a.length; i++) if (a[i]! < thr) { masks[j]![i] = 0; left--; }
  });
  for (let j = 0; j < arrays.length && left > 0; j++) {
    const a = arrays[j]!;
    for (let i = 0; i < a.length && left > 0; i++) if (a[i] === thr) { masks[j]![i] = 0; left--; }
  }
}

export function selectMasks(scores: Scores, sparsity: number, scope: Scope): Masks {
  checkSparsity(sparsity);
  const out: Masks = new Map();
  const names = [...scores.keys()];
  if (scope === 'global') selectGroup(scores, names, sparsity, out);
  else if (scope === 'layer') for (const n of names) selectGroup(scores, [n], sparsity, out);
  else throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `pruning scope ${String(scope)} (supported: global, layer)`);
  return out;
}
