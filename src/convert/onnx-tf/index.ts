/** ONNX → TensorFlow (GraphDef / TF1-style SavedModel) conversion. */
export { onnxToTf, writeOnnxAsSavedModel, type OnnxToTfOptions, type OnnxToTfResult } from './convert.js';
export type { OnnxToTfReport } from './report.js';
export { supportedOps } from './handlers/index.js';
