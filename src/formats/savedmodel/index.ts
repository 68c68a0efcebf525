/** TensorFlow: SavedModel reader, tensor-bundle checkpoints (read + write), frozen GraphDefs. */
export { readSavedModel, OBJECT_GRAPH_KEY, VARIABLES_PREFIX } from './read.js';
export type { SavedModelFile, SignatureInfo, SignatureTensor, MetaGraphInfo, AssetInfo, KerasInfo, KerasLayerInfo, ReadSavedModelOptions } from './read.js';
export { summarizeSavedModel, summarizeGraphDef, summarizeGraph, tensorValues } from './summary.js';
export type { SavedModelSummary, VariableSummary, GraphSummary } from './summary.js';
export { readGraphDef } from './graphdef.js';
export type { GraphDefFile } from './graphdef.js';
export { readTensorBundle, loadStrings, shardFileName, STRING_ENCODING } from './bundle/read.js';
export type { ShardResolver, BundleTensorExtra } from './bundle/read.js';
export { writeTensorBundle, bundleStringTensor } from './bundle/write.js';
export { writeSavedModel, DEFAULT_PRODUCER } from './write.js';
export type { WriteSavedModelInput, SignatureSpec, SignatureTensorSpec, SinkFactory } from './write.js';
export { attr, node, shapeProto, stringTensor, int32Tensor, tensorInfo, tfDtype } from './build.js';
export { tensorFromProto, tensorProtoInfo, graphConstants, DEFAULT_MAX_TENSOR_BYTES } from './tensor-proto.js';
export type { TensorProtoOptions } from './tensor-proto.js';
export { freezeSignature, runSignature, DEFAULT_SIGNATURE } from './freeze.js';
export type { FrozenGraph, FrozenTensor } from './freeze.js';
export { runGraphDef, loadTfjs } from './tfjs.js';
export type { RunGraphOptions } from './tfjs.js';
