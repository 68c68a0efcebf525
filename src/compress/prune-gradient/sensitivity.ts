/**
 * Per-layer sensitivity analysis: each prunable weight tensor alone is pruned (by the given scores)
 * to several sparsities and the model is evaluated; the loss/accuracy change says how much that
 * layer tolerates, which is what a user needs to choose per-layer sparsities or exclusions.
 * The weight is restored after each point, so the model is unchanged on return.
 */
import type { EngineApi } from '../../engine/types.js';
import { evaluate, type EvalResult } from '../../train/loop.js';
import type { Batch } from '../../train/types.js';
import type { Scores } from './scores.js';
import { selectMasks } from './select.js';
import type { PrunableWeight } from './targets.js';

export const DEFAULT_SENSITIVITY_LEVELS = [0.3, 0.5, 0.7, 0.9] as const;

export interface SensitivityPoint {
  sparsity: number;
  loss: number;
  accuracy: number;
  /** Change vs the unpruned model: loss difference and accuracy difference in percentage points. */
  dLoss: number;
  dAccuracyPp: number;
}

export interface LayerSensitivity {
  name: string;
  op: string;
  node: string;
  shape: number[];
  params: number;
  /** Mean score of the layer's weights (Taylor: mean |w·g| per batch). */
  meanScore: number;
  points: SensitivityPoint[];
}

export function layerSensitivity(
  engine: EngineApi,
  weights: readonly PrunableWeight[],
  scores: Scores,
  evalBatches: () => Iterable<Batch>,
  opts: { levels?: readonly number[]; output?: string; scoreBatches?: number; baseline?: EvalResult } = {},
): { baseline: EvalResult; layers: LayerSensitivity[] } {
  const levels = opts.levels ?? DEFAULT_SENSITIVITY_LEVELS;
  const run = (): EvalResult => evaluate(engine, evalBatches(), opts.output !== undefined ? { output: opts.output } : {});
  const baseline = opts.baseline ?? run();
  const layers: LayerSensitivity[] = [];
  for (const w of weights) {
    const param = engine.params.get(w.name)!;
    const saved = Float32Array.from(param.data);
    const s = scores.get(w.name)!;
    let sum = 0;
    for (let i = 0; i < s.length; i++) if (Number.isFinite(s[i]!)) sum += s[i]!;
    const points: SensitivityPoint[] = [];
    try {
      for (const level of levels) {
        const mask = selectMasks(new Map([[w.name, s]]), level, 'layer').get(w.name)!;
        for (let i = 0; i < mask.length; i++) param.data[i] = mask[i] ? saved[i]! : 0;
        const r = run();
        points.push({ sparsity: level, loss: r.loss, accuracy: r.accuracy, dLoss: r.loss - baseline.loss, dAccuracyPp: (r.accuracy - baseline.accuracy) * 100 });
      }
    } finally {
      param.data.set(saved);
    }
    layers.push({ name: w.name, op: w.op, node: w.node, shape: w.shape, params: s.length, meanScore: s.length ? sum / s.length / (opts.scoreBatches ?? 1) : 0, points });
  }
  return { baseline, layers };
}
