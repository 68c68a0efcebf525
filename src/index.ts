/**
 * modelsmith public API (platform-neutral: no node modules, no Deno or DOM file APIs).
 * Node file helpers live in `modelsmith/node`.
 */
export { ErrorCodes, ModelsmithError, Diagnostics, isModelsmithError, type ErrorCode, type Diagnostic } from './core/errors.js';
export { DTYPES, dtypeInfo, dtypeFromOnnx, dtypeFromKey, byteLength, type DType, type DTypeInfo } from './core/dtype.js';
export { makeTensor, numel, typedView, expectedBytes, type Tensor } from './core/tensor.js';
export { MemorySink, MemorySource, type ByteSink, type ByteSource, type SiblingResolver } from './io/source.js';
export * from './formats/onnx/index.js';
export { detectFormat, type FormatInfo, type FormatName } from './formats/registry.js';
export { initKernels, kernels, simdAvailable, Kernels, type Flavor, type InitOptions } from './kernels/loader.js';
export { setWindowBytes, getWindowBytes, type KernelOptions } from './kernels/window.js';
export { readIntoArena } from './kernels/arena-io.js';
export { minMax, minMaxAxis } from './kernels/stats.js';
export * from './kernels/quantize.js';
export * from './kernels/cast.js';
export * from './kernels/prune.js';
export * from './kernels/layout.js';
export { errorStats, type ErrorStats } from './eval/metrics.js';
