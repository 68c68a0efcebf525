/** Caffe layer type → converter. One table per layer family (layers/*.ts); this file only joins them. */
import { activationLayers } from './layers/activation.js';
import { convLayers } from './layers/conv.js';
import { innerProductLayers } from './layers/inner-product.js';
import { inputLayers } from './layers/input.js';
import { normalizationLayers } from './layers/normalization.js';
import { poolingLayers } from './layers/pooling.js';
import { tensorOpLayers } from './layers/tensor-ops.js';
import type { LayerConverter, LayerTable } from './layers/types.js';

export const LAYER_CONVERTERS: LayerTable = {
  ...inputLayers,
  ...convLayers,
  ...innerProductLayers,
  ...poolingLayers,
  ...activationLayers,
  ...normalizationLayers,
  ...tensorOpLayers,
};

export function layerConverter(type: string): LayerConverter | undefined {
  return Object.prototype.hasOwnProperty.call(LAYER_CONVERTERS, type) ? LAYER_CONVERTERS[type] : undefined;
}

/** Layer types the converter handles, sorted (for messages and docs). */
export function supportedLayerTypes(): string[] {
  return Object.keys(LAYER_CONVERTERS).sort();
}

/** Layer types whose blobs are weights (with one bottom; Scale/Bias with two take the parameter as input). */
const WEIGHTED = new Set(['Convolution', 'Deconvolution', 'InnerProduct', 'BatchNorm', 'PReLU', 'Scale', 'Bias']);

export function needsWeights(type: string, bottoms: number): boolean {
  if (type === 'Scale' || type === 'Bias') return bottoms === 1;
  return WEIGHTED.has(type);
}
