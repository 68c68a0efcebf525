/**
 * Sparsity schedules for iterative pruning: the target sparsity after pruning round t of n.
 * Polynomial is Zhu & Gupta's (2017, "To prune, or not to prune") cubic ramp
 * s_t = s_f + (s_i − s_f)(1 − t/n)³: it prunes fast while many redundant weights remain and slows
 * down near the target, leaving the fine-tuning steps more time to recover.
 */
import { ErrorCodes, ModelsmithError } from '../core/errors.js';

export type SparsitySchedule =
  | { kind: 'constant'; sparsity: number }
  | { kind: 'polynomial'; initial: number; final: number; power?: number };

function checkFraction(name: string, v: number): void {
  if (!(v >= 0 && v < 1)) throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `schedule: ${name} must be in [0, 1), got ${v}`);
}

export function checkSchedule(s: SparsitySchedule): void {
  if (s.kind === 'constant') checkFraction('sparsity', s.sparsity);
  else if (s.kind === 'polynomial') {
    checkFraction('initial sparsity', s.initial);
    checkFraction('final sparsity', s.final);
    if (s.power !== undefined && !(s.power > 0 && Number.isFinite(s.power))) {
      throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `schedule: power must be positive, got ${s.power}`);
    }
  } else throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `schedule kind ${(s as { kind: unknown }).kind} (supported: constant, polynomial)`);
}

/** Target sparsity at round `t` (1..n; t ≥ n gives the final value). */
export function sparsityAt(s: SparsitySchedule, t: number, n: number): number {
  checkSchedule(s);
  if (!(Number.isInteger(n) && n >= 1)) throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `schedule: round count must be a positive integer, got ${n}`);
  if (s.kind === 'constant') return s.sparsity;
  const f = Math.min(Math.max(t, 0), n) / n;
  return s.final + (s.initial - s.final) * Math.pow(1 - f, s.power ?? 3);
}
