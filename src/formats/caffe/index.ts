/** Caffe: .prototxt (text) and .caffemodel (binary) NetParameter codec, upgrade, summary, weights. */
export { parseCaffePrototxt, parseCaffeSolver, type CaffeTextOptions } from './prototxt.js';
export { readCaffemodel, decodeCaffemodel, type ReadCaffemodelOptions } from './caffemodel.js';
export { writeCaffemodel } from './write.js';
export { summarizeCaffe, type CaffeSummary, type CaffeLayerSummary } from './summary.js';
export { caffeWeights, blobTensorName } from './weights.js';
export { blobInfo, blobFloat32, blobBytes, makeBlob } from './blob.js';
export { upgradeNet, netVersion, type CaffeNetVersion } from './upgrade.js';
export { readDiagnostics as caffeReadDiagnostics } from './diagnostics.js';
export { parseTextFormat, type TextFormatOptions, type TextFormatResult } from './text-format.js';
export type { NetParameter, LayerParameter, BlobProto, SolverParameter } from './gen/caffe_pb.js';
export { NetParameterSchema, LayerParameterSchema, BlobProtoSchema } from './gen/caffe_pb.js';
