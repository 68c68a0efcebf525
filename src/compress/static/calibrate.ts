/**
 * Calibration: runs the float model over a data set, batch by batch, and keeps a running observer
 * per planned activation (plan.ts). Memory is the observers' fixed state plus one batch of
 * activations, whatever the number of samples.
 *
 * The model is run by the caller's `run(feeds, names)`: the engine's `EngineApi.run(feeds, {outputs})`
 * (src/engine/engine.ts), or onnxruntime-node with the names added as graph outputs (ort-runner.ts).
 */
import { ErrorCodes, ModelsmithError, type Diagnostic } from '../../core/errors.js';
import type { OnnxModel } from '../../formats/onnx/read.js';
import type { Value } from '../../engine/types.js';
import type { Batch } from '../../data/types.js';
import { planStatic } from './plan.js';
import { DEFAULT_BINS, HistogramObserver, MinMaxObserver, entropyRange, percentileRange, type Observer, type Range } from './observers.js';

export type CalibrationMethod = 'minmax' | 'percentile' | 'entropy';

export type RunFn = (feeds: Record<string, Value>, names: string[]) => Record<string, Value> | Promise<Record<string, Value>>;

export interface CalibrateOptions {
  method: CalibrationMethod;
  run: RunFn;
  /** Percentile of |x| kept (default 99.99). */
  percentile?: number;
  /** Histogram bins (default 2048). */
  bins?: number;
  /** Quantized bins of the entropy search (default 128). */
  quantBins?: number;
  /** MinMax: exponential moving average of per-batch min/max instead of the global min/max. */
  movingAverage?: boolean;
  /** Moving-average constant (default 0.01). */
  averagingConstant?: number;
}

export interface CalibrationResult {
  method: CalibrationMethod;
  /** Tensor name → calibrated range (planned tensors that saw finite data). */
  ranges: Record<string, Range>;
  samples: number;
  batches: number;
  /** Total observer state in bytes (independent of the sample count). */
  stateBytes: number;
  diagnostics: Diagnostic[];
}

export async function calibrate(model: OnnxModel, data: AsyncIterable<Batch> | Iterable<Batch>, opts: CalibrateOptions): Promise<CalibrationResult> {
  const { method } = opts;
  if (method !== 'minmax' && method !== 'percentile' && method !== 'entropy') {
    throw new ModelsmithError(ErrorCodes.USAGE, `calibration method '${String(method)}' is not minmax, percentile or entropy`);
  }
  const pct = opts.percentile ?? 99.99;
  if (!(pct > 0 && pct <= 100)) throw new ModelsmithError(ErrorCodes.USAGE, `percentile must be in (0, 100], got ${pct}`);
  const bins = opts.bins ?? DEFAULT_BINS;
  const quantBins = opts.quantBins ?? 128;
  if (method === 'entropy' && !(Number.isSafeInteger(quantBins) && quantBins >= 2 && quantBins <= bins)) {
    throw new ModelsmithError(ErrorCodes.USAGE, `quantBins must be an integer in [2, ${bins}], got ${quantBins}`);
  }
  const plan = planStatic(model.proto);
  const names = plan.calibrate;
  const observers = new Map<string, Observer>();
  for (const n of names) {
    observers.set(n, method === 'minmax' ? new MinMaxObserver(opts.movingAverage ?? false, opts.averagingConstant ?? 0.01) : new HistogramObserver(bins));
  }
  let samples = 0;
  let count = 0;
  for await (const batch of data) {
    const wanted = names.filter((n) => !(n in batch.inputs));
    const outs = wanted.length ? await opts.run(batch.inputs, wanted) : {};
    for (const n of names) {
      const v = batch.inputs[n] ?? outs[n];
      if (!v) throw new ModelsmithError(ErrorCodes.USAGE, `the runner returned no value for '${n}'`, { tensor: n, ...(model.path !== undefined ? { path: model.path } : {}) });
      if (v.dtype !== 'float32') throw new ModelsmithError(ErrorCodes.DTYPE, `activation is ${v.dtype}; only float32 activations are calibrated`, { tensor: n });
      observers.get(n)!.update(v.data as Float32Array);
    }
    const first = Object.values(batch.inputs)[0];
    samples += first?.dims[0] ?? 0;
    count++;
  }
  if (count === 0) throw new ModelsmithError(ErrorCodes.USAGE, 'calibration data set gave no batches');
  const diagnostics: Diagnostic[] = [];
  const ranges: Record<string, Range> = {};
  let stateBytes = 0;
  for (const [n, o] of observers) {
    stateBytes += o.stateBytes;
    if (o.nonFinite) diagnostics.push({ level: 'warning', code: 'calibrate.non_finite', message: `${o.nonFinite} NaN/Inf values were skipped`, tensor: n });
    const r = o instanceof HistogramObserver ? (method === 'percentile' ? percentileRange(o, pct) : entropyRange(o, quantBins)) : o.range();
    if (r) ranges[n] = r;
    else diagnostics.push({ level: 'warning', code: 'calibrate.no_data', message: 'no finite value was seen; the tensor stays float', tensor: n });
  }
  return { method, ranges, samples, batches: count, stateBytes, diagnostics };
}
