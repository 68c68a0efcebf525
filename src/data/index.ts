/** Data sets for calibration and training (runtime-neutral: file access comes in as a DataIo). */
export { openDataset, batches, resolveSamples, MAX_BATCH_ELEMENTS, type Dataset } from './dataset.js';
export { modelInputs } from './model-inputs.js';
export type { Batch, DataIo, DataSource, DirEntry, InputDecl, OpenDatasetOptions, DatasetKind } from './types.js';
