/** Static int8 quantization: observers, calibration, QDQ insertion. */
export { MinMaxObserver, HistogramObserver, histogramPercentile, percentileRange, entropyThreshold, entropyRange, DEFAULT_BINS, type Observer, type Range } from './observers.js';
export { planStatic, COMPUTE_OPS, PASSTHROUGH_OPS, type StaticPlan } from './plan.js';
export { calibrate, type CalibrateOptions, type CalibrationMethod, type CalibrationResult, type RunFn } from './calibrate.js';
export { quantizeStatic, type QuantizeStaticOptions, type QuantizeStaticReport, type QuantizedActivation, type QuantizedBias, type ActivationType } from './quantize.js';
export { staticQuantize, engineRunner, type StaticQuantizeOptions } from './pipeline.js';
