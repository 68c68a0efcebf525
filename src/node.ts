/** Node.js entry: everything in the platform-neutral API plus file-backed sources, sinks and model I/O. */
export * from './index.js';
export { FileSource, AtomicFileSink, siblingResolver, refuseOverwrite, type AtomicFileSinkOptions } from './platform/node.js';
export { openModelFile, saveOnnxFile, externalFiles, spillFor, type OpenedModel, type SaveOnnxOptions } from './platform/open.js';
export { nodeScratch } from './platform/scratch.js';
export { openWeights, saveWeights, weightOutputFormat, type OpenedWeights, type SaveWeightsOptions } from './platform/weights-io.js';
