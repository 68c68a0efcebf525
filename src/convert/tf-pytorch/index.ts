/** TF / Keras SavedModel weights → PyTorch state_dict (formats.md §6). */
export { savedModelToStateDict } from './convert.js';
export type { TfToTorchOptions, TfToTorchResult } from './convert.js';
export { parseTfTorchMap } from './mapping.js';
export { formatTfTorchReport } from './report.js';
export type { TfTorchPair, TfTorchReport } from './report.js';
export { layerKind } from './transforms.js';
