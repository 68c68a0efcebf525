/** Node.js entry: everything in the platform-neutral API plus file-backed sources, sinks and model I/O. */
export * from './index.js';
export { FileSource, AtomicFileSink, siblingResolver, refuseOverwrite } from './platform/node.js';
export { openModelFile, saveOnnxFile, externalFiles, type OpenedModel, type SaveOnnxOptions } from './platform/open.js';
