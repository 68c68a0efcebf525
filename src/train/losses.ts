/**
 * Classification losses on logits [N, C] (rows are samples), each returning the batch-mean loss and
 * its gradient with respect to the logits, which seeds the engine's backward pass. Sums run in
 * float64: the loss is compared across pruning rounds and a float32 sum over a batch drifts.
 */
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import type { FValue } from '../engine/types.js';
import { fvalue } from '../engine/values.js';
import type { Labels, LossResult } from './types.js';

function shapeOf(logits: FValue, what: string): [number, number] {
  if (logits.dims.length !== 2) {
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `${what}: logits must be [batch, classes], got [${logits.dims.join(', ')}]`, { tensor: 'logits' });
  }
  const [n, c] = logits.dims as [number, number];
  if (n < 1 || c < 1) throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `${what}: empty logits [${n}, ${c}]`, { tensor: 'logits' });
  return [n, c];
}

function checkLabels(labels: Labels, n: number, c: number, what: string): void {
  if (labels.length !== n) throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `${what}: ${labels.length} labels for a batch of ${n}`, { tensor: 'labels' });
  for (let i = 0; i < n; i++) {
    const y = labels[i]!;
    if (!Number.isInteger(y) || y < 0 || y >= c) {
      throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `${what}: label ${y} of sample ${i} is not a class id 0..${c - 1}`, { tensor: 'labels' });
    }
  }
}

/** Row-wise softmax of logits/temperature into `out` (float64), stable by subtracting the row max. */
function softmaxRow(z: Float32Array, off: number, c: number, temperature: number, out: Float64Array): number {
  let max = -Infinity;
  for (let j = 0; j < c; j++) max = Math.max(max, z[off + j]! / temperature);
  let sum = 0;
  for (let j = 0; j < c; j++) {
    const e = Math.exp(z[off + j]! / temperature - max);
    out[j] = e;
    sum += e;
  }
  for (let j = 0; j < c; j++) out[j]! /= sum;
  // log of the normaliser, so callers get log-probabilities without a second exp pass
  return max + Math.log(sum);
}

function argmaxRow(z: Float32Array, off: number, c: number): number {
  let best = 0;
  for (let j = 1; j < c; j++) if (z[off + j]! > z[off + best]!) best = j;
  return best;
}

/** Top-1 correct count (first maximum wins, as numpy/torch argmax). */
export function correctCount(logits: FValue, labels: Labels): number {
  const [n, c] = shapeOf(logits, 'accuracy');
  checkLabels(labels, n, c, 'accuracy');
  let ok = 0;
  for (let i = 0; i < n; i++) if (argmaxRow(logits.data, i * c, c) === labels[i]) ok++;
  return ok;
}

/** Top-1 accuracy in [0, 1]. */
export function accuracy(logits: FValue, labels: Labels): number {
  return correctCount(logits, labels) / logits.dims[0]!;
}

/** Softmax cross-entropy with integer labels, mean over the batch (torch F.cross_entropy). */
export function crossEntropy(logits: FValue, labels: Labels): LossResult {
  const [n, c] = shapeOf(logits, 'cross-entropy');
  checkLabels(labels, n, c, 'cross-entropy');
  const grad = fvalue([n, c]);
  const p = new Float64Array(c);
  let total = 0;
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const off = i * c;
    const y = labels[i]!;
    const lse = softmaxRow(logits.data, off, c, 1, p);
    total += lse - logits.data[off + y]!;
    for (let j = 0; j < c; j++) grad.data[off + j] = (p[j]! - (j === y ? 1 : 0)) / n;
    if (argmaxRow(logits.data, off, c) === y) correct++;
  }
  return { loss: total / n, grad, correct };
}

export interface DistillOptions {
  /** Softening temperature T > 0 (Hinton et al. use 2–20). */
  temperature: number;
  /** Weight of the soft-target term in [0, 1]; 1 − alpha weighs the hard-label cross-entropy. */
  alpha: number;
}

/**
 * Distillation loss α·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1 − α)·CE(s, y), KL averaged over the
 * batch (torch KLDivLoss reduction='batchmean'). The T² factor keeps the soft term's gradient
 * magnitude independent of T (Hinton et al. 2015). Without labels only the soft term is used.
 */
export function distillationLoss(student: FValue, teacher: FValue, labels: Labels | undefined, opts: DistillOptions): LossResult {
  const [n, c] = shapeOf(student, 'distillation');
  if (teacher.dims.length !== 2 || teacher.dims[0] !== n || teacher.dims[1] !== c) {
    throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `distillation: teacher logits [${teacher.dims.join(', ')}] do not match the student's [${n}, ${c}]`, { tensor: 'teacher logits' });
  }
  const T = opts.temperature;
  if (!(T > 0) || !Number.isFinite(T)) throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `distillation: temperature must be a positive number, got ${T}`);
  if (!(opts.alpha >= 0 && opts.alpha <= 1)) throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `distillation: alpha must be in [0, 1], got ${opts.alpha}`);
  const alpha = labels ? opts.alpha : 1;
  if (labels) checkLabels(labels, n, c, 'distillation');
  const grad = fvalue([n, c]);
  const ps = new Float64Array(c);
  const pt = new Float64Array(c);
  const p1 = new Float64Array(c);
  let kl = 0;
  let ce = 0;
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const off = i * c;
    const lseS = softmaxRow(student.data, off, c, T, ps);
    const lseT = softmaxRow(teacher.data, off, c, T, pt);
    for (let j = 0; j < c; j++) {
      // p_t·(log p_t − log p_s); a zero teacher probability contributes nothing (0·log 0 = 0)
      if (pt[j]! > 0) kl += pt[j]! * ((teacher.data[off + j]! / T - lseT) - (student.data[off + j]! / T - lseS));
    }
    let y = -1;
    if (labels && alpha < 1) {
      y = labels[i]!;
      const lse1 = softmaxRow(student.data, off, c, 1, p1);
      ce += lse1 - student.data[off + y]!;
    }
    for (let j = 0; j < c; j++) {
      // d/ds of T²·KL is T·(p_s − p_t)
      let g = alpha * T * (ps[j]! - pt[j]!);
      if (y >= 0) g += (1 - alpha) * (p1[j]! - (j === y ? 1 : 0));
      grad.data[off + j] = g / n;
    }
    if (labels && argmaxRow(student.data, off, c) === labels[i]) correct++;
  }
  const loss = (alpha * T * T * kl + (1 - alpha) * ce) / n;
  return labels ? { loss, grad, correct } : { loss, grad };
}
