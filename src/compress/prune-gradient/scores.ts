/**
 * Per-weight importance. Taylor: the first-order estimate of the loss change when a weight is set
 * to zero, |w·∂L/∂w| (Molchanov et al. 2017/2019), summed over batches — summing per-batch absolute
 * values rather than taking |w·Σg| keeps weights whose gradient sign flips between batches, which
 * still matter. Magnitude |w| is the data-free rule it is compared with. Memory: one float32 per
 * prunable weight, whatever the number of batches.
 */
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import type { EngineApi, FValue } from '../../engine/types.js';
import { logitsOf } from '../../train/loop.js';
import type { LossFn } from '../../train/loop.js';
import type { BatchStream } from '../../train/stream.js';
import type { Masks } from '../../train/masks.js';
import type { PrunableWeight } from './targets.js';

export type Criterion = 'taylor' | 'magnitude';

export type Scores = Map<string, Float32Array>;

export class TaylorAccumulator {
  readonly scores: Scores = new Map();
  batches = 0;

  constructor(weights: readonly PrunableWeight[], params: ReadonlyMap<string, FValue>) {
    for (const w of weights) this.scores.set(w.name, new Float32Array(params.get(w.name)!.data.length));
  }

  /** Adds |w·g| of one batch's gradients. A weight without a gradient (not reached) adds nothing. */
  add(params: ReadonlyMap<string, FValue>, grads: ReadonlyMap<string, FValue>): void {
    for (const [name, s] of this.scores) {
      const g = grads.get(name);
      if (!g) continue;
      const w = params.get(name)!.data;
      if (g.data.length !== w.length) {
        throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `gradient has ${g.data.length} elements for a weight of ${w.length}`, { tensor: name });
      }
      for (let i = 0; i < w.length; i++) s[i]! += Math.abs(w[i]! * g.data[i]!);
    }
    this.batches++;
  }
}

/**
 * Taylor scores over `batches` batches of the stream; also returns the mean loss seen (the loss of
 * the model being scored, before any pruning of this round).
 */
export function taylorScores(
  engine: EngineApi,
  stream: BatchStream,
  weights: readonly PrunableWeight[],
  batches: number,
  loss: LossFn,
  output: string,
): { scores: Scores; loss: number } {
  if (!(Number.isInteger(batches) && batches >= 1)) throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `scoring needs at least one batch, got ${batches}`);
  const acc = new TaylorAccumulator(weights, engine.params);
  let lossSum = 0;
  for (let b = 0; b < batches; b++) {
    const batch = stream.next();
    const { values, tape } = engine.forward(batch.inputs, { outputs: [output] });
    const r = loss(logitsOf(values, output), batch);
    lossSum += r.loss;
    acc.add(engine.params, engine.backward(tape, { [output]: r.grad }));
  }
  return { scores: acc.scores, loss: lossSum / batches };
}

export function magnitudeScores(weights: readonly PrunableWeight[], params: ReadonlyMap<string, FValue>): Scores {
  const out: Scores = new Map();
  for (const w of weights) out.set(w.name, Float32Array.from(params.get(w.name)!.data, Math.abs));
  return out;
}

/** Already-pruned weights rank below everything, so masks only grow across rounds. */
export function forcePruned(scores: Scores, masks: Masks): void {
  for (const [name, m] of masks) {
    const s = scores.get(name);
    if (!s) continue;
    for (let i = 0; i < s.length; i++) if (m[i] === 0) s[i] = -Infinity;
  }
}
