/** Caffe → ONNX conversion through the layer-type registry. */
export { caffeToOnnx, type CaffeToOnnxOptions, type CaffeToOnnxReport, type CaffeToOnnxResult } from './convert.js';
export { supportedLayerTypes } from './registry.js';
export { caffePooledSize } from './layers/pooling.js';
