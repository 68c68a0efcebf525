/**
 * Flags shared by the verbs that train on the engine (prune --method gradient, distill): data,
 * evaluation data, optimiser, batch size, seed; and the progress lines they print.
 */
import type { ModelProto } from 'onnx-buf';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import type { EvalResult } from '../train/loop.js';
import { arrayBatches, type ArrayDataset } from '../train/data.js';
import type { OptimizerSpec } from '../train/optim.js';
import type { Batch } from '../train/types.js';
import { loadTrainingData, parseChoice, parseFraction, parsePositiveInt } from './data-options.js';
import type { Out } from './output.js';

export const TRAIN_OPTIONS = {
  data: { type: 'string' },
  'eval-data': { type: 'string' },
  samples: { type: 'string' },
  'eval-samples': { type: 'string' },
  batch: { type: 'string' },
  optimizer: { type: 'string' },
  lr: { type: 'string' },
  seed: { type: 'string' },
} as const;

export function trainHelp(defaults: { optimizer: string; lr: number; batch: number }): string {
  return `training data and optimiser:
  --data DATA            labelled training data (see "data sets"); read into memory, reshuffled per epoch
  --samples N            use the first N training samples (default: all)
  --eval-data DATA       labelled held-out data: accuracy before/after (and per epoch / per round)
  --eval-samples N       use the first N evaluation samples
  --batch N              samples per step (default ${defaults.batch})
  --optimizer O          sgd (momentum 0.9) or adam (default ${defaults.optimizer})
  --lr X                 learning rate (default ${defaults.lr})
  --seed S               shuffling / initialisation seed (default 0)`;
}

export interface TrainSetup {
  train: ArrayDataset;
  trainKind: string;
  eval?: ArrayDataset;
  batch: number;
  seed: number;
  optimizer: OptimizerSpec;
  /** Batches of the evaluation set, in order (a fresh iterable per call). */
  evalBatches?: () => Iterable<Batch>;
}

export async function trainSetup(
  verb: string, model: ModelProto, values: Record<string, unknown>,
  defaults: { optimizer: 'sgd' | 'adam'; lr: number; batch: number },
): Promise<TrainSetup> {
  const dataPath = values.data as string | undefined;
  if (!dataPath) throw new ModelsmithError(ErrorCodes.USAGE, `${verb} needs --data DATA (labelled training data)`);
  const batch = parsePositiveInt('--batch', values.batch) ?? defaults.batch;
  const seed = parsePositiveInt('--seed', values.seed, 0) ?? 0;
  const type = parseChoice('--optimizer', values.optimizer, ['sgd', 'adam'] as const, defaults.optimizer);
  const lr = parseFraction('--lr', values.lr, 1e-8, 10, defaults.lr);
  const optimizer: OptimizerSpec = type === 'sgd' ? { type, lr, momentum: 0.9 } : { type, lr };
  const { data: train, kind } = await loadTrainingData(dataPath, model, parsePositiveInt('--samples', values.samples), verb);
  const setup: TrainSetup = { train, trainKind: kind, batch, seed, optimizer };
  const evalPath = values['eval-data'] as string | undefined;
  if (evalPath) {
    const { data } = await loadTrainingData(evalPath, model, parsePositiveInt('--eval-samples', values['eval-samples']), verb);
    setup.eval = data;
    const make = arrayBatches(data, { batchSize: 256 });
    setup.evalBatches = () => make(0);
  }
  return setup;
}

export function pct(r: EvalResult | undefined): string {
  return r ? `${(r.accuracy * 100).toFixed(2)}%` : '-';
}

/** One progress line per second at most (stderr). */
export function throttled(out: Out): (line: string, force?: boolean) => void {
  let last = 0;
  return (line, force = false) => {
    const now = performance.now();
    if (force || now - last >= 1000) {
      last = now;
      out.note(line);
    }
  };
}
