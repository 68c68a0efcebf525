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
// Weight containers: a WeightSet of lazily loaded tensors, and the formats that produce one.
export { materialize, inMemoryTensor, type LazyTensor, type WeightSet } from './formats/weights.js';
export { summarizeWeights, type WeightsSummary } from './formats/weights-summary.js';
export { readPytorch, detectPytorch, type PytorchFile, type ReadPytorchOptions } from './formats/pytorch/read.js';
export { writePytorch } from './formats/pytorch/write.js';
export * from './formats/safetensors/index.js';
// TensorFlow: reader, bundles, summary and writer. The TF.js executor (freeze.ts, tfjs.ts) is an
// oracle that loads @tensorflow/tfjs dynamically; it stays out of this entry (and so out of the
// bundles: workerd refuses dynamic module specifiers) — import it from 'modelsmith/tf-exec'.
export { readSavedModel, summarizeSavedModel, summarizeGraphDef, readGraphDef, readTensorBundle, loadStrings, writeTensorBundle, bundleStringTensor, writeSavedModel, graphConstants, tensorProtoInfo } from './formats/savedmodel/index.js';
export type { SavedModelFile, SignatureInfo, SavedModelSummary, GraphDefFile, WriteSavedModelInput, SignatureSpec } from './formats/savedmodel/index.js';
// TF's tensorFromProto decodes TF TensorProtos; ONNX's keeps the plain name.
export { tensorFromProto } from './formats/onnx/index.js';
export { tensorFromProto as tfTensorFromProto } from './formats/savedmodel/index.js';
export * from './formats/caffe/index.js';
export { onnxWeights, replaceOnnxInitializers, type ReplaceOptions, type ReplaceReport } from './formats/onnx/weights.js';
// Conversions.
export * from './convert/caffe-onnx/index.js';
export * from './convert/tf-pytorch/index.js';
export * from './convert/onnx-tf/index.js';
// Compression passes.
export { quantizeWeights, type QuantizeWeightsOptions, type QuantizeWeightsReport } from './compress/quantize/weight.js';
export { quantizeDynamic, type QuantizeDynamicOptions, type QuantizeDynamicReport } from './compress/quantize/dynamic.js';
export { quantizeInt4, type QuantizeInt4Options, type QuantizeInt4Report } from './compress/quantize/int4.js';
export { castModel, type CastOptions, type CastReport } from './compress/cast.js';
export { pruneWeights, type PruneWeightsOptions, type PruneWeightsReport } from './compress/prune.js';
export { pruneChannels, RefusalCodes, type PruneChannelsOptions, type PruneChannelsReport } from './compress/prune-structured.js';
export { upgradeToOpset11 } from './compress/opset-upgrade.js';
export { parseRecipe, runRecipeOnnx, runRecipeWeights, type Recipe, type RecipeStep } from './compress/recipe.js';
export { castWeightSet } from './compress/weights/cast.js';
export { quantizeWeightSet, QUANT_METADATA_KEY, type QuantizeWeightSetOptions } from './compress/weights/quantize.js';
export { pruneWeightSet } from './compress/weights/prune.js';
export { Spill, memoryScratch } from './compress/spill.js';
// Learning in WASM: the execution engine (forward + gradients), calibration data sets, static quantization.
export { createEngine, unsupportedOps, Engine, type EngineOptions, type RunStats } from './engine/engine.js';
export { engineOps } from './engine/registry.js';
export { fvalue, ivalue, toValue, toTensor } from './engine/values.js';
export type { Value, FValue, EDType, EngineApi, Tape, RunOptions as EngineRunOptions } from './engine/types.js';
export * from './data/index.js';
export * from './compress/static/index.js';
// Streaming ONNX: graph decoded, big payloads left in the source (files, Blobs, request bodies).
export { readOnnxLazy, scanOnnxStream } from './formats/onnx/stream/index.js';
export { quantizeOnnxSource, quantizeOnnxStream } from './compress/quantize/weight-stream.js';
// Training on the engine: losses, optimisers, schedules, gradient pruning, distillation.
export type { TrainableEngine, Labels, Batch as TrainBatch, BatchSource, LossResult } from './train/types.js';
export * from './train/losses.js';
export { maskSparsity, zeroFraction, type Masks } from './train/masks.js';
export * from './train/optim.js';
export * from './train/schedule.js';
export * from './train/shuffle.js';
export * from './train/data.js';
export { train, trainStep, evaluate as evaluateEngine, logitsOf, outputName, type TrainOptions, type TrainResult, type EpochStats, type StepProgress, type EvalResult, type LossFn, type LossSpec } from './train/loop.js';
export * from './train/stream.js';
export { pruneGradient, pruneGradientModel, analyzeSensitivity, prunableWeights, taylorScores, magnitudeScores, selectMasks, layerSensitivity, TaylorAccumulator, type GradientPruneOptions, type GradientPruneReport, type GradientPruneData } from './compress/prune-gradient.js';
export { distill, distillModels, deriveStudent, parameterCount, TeacherLogits, type DistillOptions as DistillTrainOptions, type DistillReport, type DistillData } from './compress/distill.js';
