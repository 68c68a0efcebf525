/** Streaming (lazy) ONNX reading: the graph without its big payloads, which stay in the source. */
export { readOnnxLazy, type LazyOnnxModel, type ReadOnnxLazyOptions } from './lazy.js';
export {
  DEFAULT_LAZY_THRESHOLD,
  PAYLOAD_LOCATION,
  scanOnnxStream,
  type PayloadContext,
  type PayloadDecision,
  type PayloadRef,
  type ScanOptions,
  type ScanOutput,
} from './scan.js';
