/**
 * The whole static-quantization pass on our own engine: data set → calibration → QDQ model. This is
 * what `modelsmith quantize --method static --calibration DATA` runs; it needs no onnxruntime.
 */
import type { OnnxModel } from '../../formats/onnx/read.js';
import type { EngineApi } from '../../engine/types.js';
import { createEngine } from '../../engine/engine.js';
import { batches, type Dataset } from '../../data/dataset.js';
import { calibrate, type CalibrateOptions, type CalibrationResult, type RunFn } from './calibrate.js';
import { quantizeStatic, type QuantizeStaticOptions, type QuantizeStaticReport } from './quantize.js';

/** `EngineApi.run` in the shape calibration wants. */
export function engineRunner(engine: EngineApi): RunFn {
  return (feeds, names) => engine.run(feeds, { outputs: names });
}

export interface StaticQuantizeOptions extends Omit<CalibrateOptions, 'run'>, QuantizeStaticOptions {
  /** Samples per calibration batch (default 32). */
  batchSize?: number;
  /** A runner other than the engine (e.g. ort-runner.ts). */
  run?: RunFn;
}

/** Calibrates `model` on `data` and quantizes it in place. */
export async function staticQuantize(model: OnnxModel, data: Dataset, opts: StaticQuantizeOptions): Promise<{ model: OnnxModel; calibration: CalibrationResult; report: QuantizeStaticReport }> {
  const run = opts.run ?? engineRunner(await createEngine(model));
  const calibration = await calibrate(model, batches(data, opts.batchSize ?? 32), { ...opts, run });
  const { report } = await quantizeStatic(model, calibration.ranges, opts);
  return { model, calibration, report };
}
