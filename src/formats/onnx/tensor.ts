/**
 * TensorProto ↔ core Tensor. Every storage form ONNX allows (raw_data, the typed repeated fields,
 * external data) is normalised to little-endian, C-order bytes; sizes are checked against
 * dims × dtype. Also: listing every tensor a model holds (initializers, Constant values and other
 * tensor attributes, in subgraphs, functions and training info; sparse tensors).
 */
import { create, fromBinary } from '@bufbuild/protobuf';
import {
  TensorProtoSchema,
  TensorProto_DataLocation,
  type AttributeProto,
  type FunctionProto,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type SparseTensorProto,
  type TensorProto,
} from 'onnx-buf';
import { byteLength, dtypeFromOnnx, dtypeInfo, type DType } from '../../core/dtype.js';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { numel, type Tensor } from '../../core/tensor.js';
import type { ByteSource, SiblingResolver } from '../../io/source.js';
import type { OnnxModel } from './read.js';
import { scanMessage } from './wire.js';

// ------------------------------------------------------------------------------------------------
// dtype / shape
// ------------------------------------------------------------------------------------------------

interface Where {
  path?: string;
  tensor?: string;
}

function where(tp: TensorProto, path?: string): Where & { format: string } {
  const w: Where & { format: string } = { format: 'onnx', tensor: tp.name };
  if (path !== undefined) w.path = path;
  return w;
}

/** The dtype of a TensorProto; E_DTYPE for UNDEFINED (0) and codes this build does not know. */
export function tensorDType(tp: TensorProto, path?: string): DType {
  const info = dtypeFromOnnx(tp.dataType);
  if (!info) throw new ModelsmithError(ErrorCodes.DTYPE, `unknown or undefined ONNX data_type ${tp.dataType}`, where(tp, path));
  return info.name;
}

/** dims as numbers; E_OUT_OF_RANGE for negative or > 2^53 dims. */
export function tensorShape(tp: TensorProto, path?: string): number[] {
  const shape = new Array<number>(tp.dims.length);
  for (let i = 0; i < tp.dims.length; i++) {
    const d = tp.dims[i]!;
    if (d < 0n || d > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `invalid dimension ${d} in dims [${tp.dims.join(',')}]`, where(tp, path));
    }
    shape[i] = Number(d);
  }
  numel(shape, where(tp, path));
  return shape;
}

/** Bytes the payload takes in raw_data / external form (−1 for string tensors). */
export function payloadByteLength(tp: TensorProto, path?: string): number {
  const dtype = tensorDType(tp, path);
  return byteLength(dtype, numel(tensorShape(tp, path)));
}

export function isExternal(tp: TensorProto): boolean {
  return tp.dataLocation === TensorProto_DataLocation.EXTERNAL;
}

// ------------------------------------------------------------------------------------------------
// external data
// ------------------------------------------------------------------------------------------------

export interface ExternalDataRef {
  location: string;
  offset: number;
  /** Undefined when the entry is absent (= up to the end of the file). */
  length?: number;
  checksum?: string;
}

/**
 * Checks a location the way every platform must, before any resolver sees it: relative, no `..`
 * component, no NUL, no drive letter or UNC prefix.
 */
export function checkExternalLocation(location: string, ctx: Where = {}): void {
  const bad = (why: string): never => {
    throw new ModelsmithError(ErrorCodes.EXTERNAL_DATA, `refusing external data location '${location}': ${why}`, { ...ctx, format: 'onnx' });
  };
  if (location === '') bad('empty');
  if (location.includes('\0')) bad('contains NUL');
  if (location.startsWith('/') || location.startsWith('\\') || /^[A-Za-z]:/.test(location)) bad('absolute path');
  if (location.split(/[\\/]/).some((c) => c === '..')) bad("'..' leaves the model folder");
}

function parseDecimal(key: string, value: string, ctx: Where): number {
  if (!/^\d{1,16}$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new ModelsmithError(ErrorCodes.EXTERNAL_DATA, `external data ${key} '${value}' is not a decimal byte count`, { ...ctx, format: 'onnx' });
  }
  return Number(value);
}

/** Parses the `external_data` entries of an EXTERNAL tensor (undefined for tensors stored inline). */
export function externalDataRef(tp: TensorProto, path?: string): ExternalDataRef | undefined {
  if (!isExternal(tp)) return undefined;
  const ctx = where(tp, path);
  let location: string | undefined;
  let offset = 0;
  let length: number | undefined;
  let checksum: string | undefined;
  for (const e of tp.externalData) {
    switch (e.key) {
      case 'location': location = e.value; break;
      case 'offset': offset = parseDecimal('offset', e.value, ctx); break;
      case 'length': length = parseDecimal('length', e.value, ctx); break;
      case 'checksum': checksum = e.value; break;
      default: break; // 'basepath' and others: not used
    }
  }
  if (location === undefined) throw new ModelsmithError(ErrorCodes.EXTERNAL_DATA, 'data_location is EXTERNAL but there is no location entry', ctx);
  checkExternalLocation(location, ctx);
  const ref: ExternalDataRef = { location, offset };
  if (length !== undefined) ref.length = length;
  if (checksum !== undefined) ref.checksum = checksum;
  return ref;
}

export interface TensorContext {
  siblings?: SiblingResolver;
  /** Model path, for messages. */
  path?: string;
  /** Opened external files by location (shared between calls to avoid reopening). */
  sources?: Map<string, Promise<ByteSource>>;
}

const modelSources = new WeakMap<OnnxModel, Map<string, Promise<ByteSource>>>();

/** The TensorContext of a model read by readOnnx (its resolver, path and a shared file cache). */
export function modelTensorContext(model: OnnxModel): TensorContext {
  let sources = modelSources.get(model);
  if (!sources) {
    sources = new Map();
    modelSources.set(model, sources);
  }
  const ctx: TensorContext = { path: model.path, sources };
  if (model.siblings) ctx.siblings = model.siblings;
  return ctx;
}

export interface ExternalSlice {
  source: ByteSource;
  offset: number;
  length: number;
}

/** Opens the external file of `tp` and checks that its slice exists and has the size dims × dtype ask for. */
export async function openExternalData(tp: TensorProto, ctx: TensorContext = {}): Promise<ExternalSlice> {
  const ref = externalDataRef(tp, ctx.path);
  if (!ref) throw new Error('openExternalData: tensor is not external'); // programming error
  const w = where(tp, ctx.path);
  const dtype = tensorDType(tp, ctx.path);
  if (dtype === 'string') throw new ModelsmithError(ErrorCodes.EXTERNAL_DATA, 'string tensors cannot use external data', w);
  const want = payloadByteLength(tp, ctx.path);
  if (!ctx.siblings) {
    throw new ModelsmithError(ErrorCodes.EXTERNAL_DATA, `tensor data is in external file '${ref.location}' but no folder was given to resolve it`, w);
  }
  let p = ctx.sources?.get(ref.location);
  if (!p) {
    p = ctx.siblings(ref.location);
    ctx.sources?.set(ref.location, p);
  }
  let source: ByteSource;
  try {
    source = await p;
  } catch (e) {
    ctx.sources?.delete(ref.location);
    if (e instanceof ModelsmithError) {
      if (e.code === ErrorCodes.EXTERNAL_DATA) throw e;
      throw new ModelsmithError(ErrorCodes.EXTERNAL_DATA, `cannot open external data '${ref.location}': ${e.message}`, { ...w, cause: e });
    }
    throw new ModelsmithError(ErrorCodes.EXTERNAL_DATA, `cannot open external data '${ref.location}': ${(e as Error).message}`, { ...w, cause: e });
  }
  if (ref.offset > source.size) {
    throw new ModelsmithError(ErrorCodes.EXTERNAL_DATA, `offset ${ref.offset} is past the end of '${ref.location}' (${source.size} bytes)`, w);
  }
  const length = ref.length ?? source.size - ref.offset;
  if (ref.offset + length > source.size) {
    throw new ModelsmithError(ErrorCodes.EXTERNAL_DATA, `bytes ${ref.offset}..${ref.offset + length} are outside '${ref.location}' (${source.size} bytes)`, w);
  }
  if (length !== want) {
    throw new ModelsmithError(ErrorCodes.TENSOR_SIZE, `${dtype}[${tensorShape(tp).join(',')}] needs ${want} bytes, external data has ${length}`, w);
  }
  return { source, offset: ref.offset, length };
}

// ------------------------------------------------------------------------------------------------
// TensorProto → Tensor
// ------------------------------------------------------------------------------------------------

type TypedField = 'floatData' | 'int32Data' | 'int64Data' | 'doubleData' | 'uint64Data' | 'stringData';

/** The repeated field that holds values of `dtype` when raw_data is not used. */
export function typedFieldFor(dtype: DType): TypedField {
  switch (dtype) {
    case 'float32':
    case 'complex64':
      return 'floatData';
    case 'float64':
    case 'complex128':
      return 'doubleData';
    case 'int64':
      return 'int64Data';
    case 'uint32':
    case 'uint64':
      return 'uint64Data';
    case 'string':
      return 'stringData';
    default:
      return 'int32Data';
  }
}

const TYPED_FIELDS: readonly TypedField[] = ['floatData', 'int32Data', 'int64Data', 'doubleData', 'uint64Data', 'stringData'];

function hasOwn(o: object, k: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, k);
}

/** True when raw_data is present (proto2 presence), even if empty. */
export function hasRawData(tp: TensorProto): boolean {
  return hasOwn(tp, 'rawData') && tp.rawData !== undefined;
}

/** Where the payload of an inline tensor lives. */
export function storageOf(tp: TensorProto): 'external' | 'raw' | TypedField | 'none' {
  if (isExternal(tp)) return 'external';
  if (hasRawData(tp)) return 'raw';
  for (const f of TYPED_FIELDS) if ((tp[f] as unknown[]).length > 0) return f;
  return 'none';
}

/** Number of values the typed field of `dtype` must hold for `count` elements. */
function typedValuesWanted(dtype: DType, count: number): number {
  if (dtype === 'complex64' || dtype === 'complex128') return count * 2;
  // Sub-byte types: each int32_data entry holds one byte of packed elements (2 × 4-bit or 4 × 2-bit).
  if (dtypeInfo(dtype).bits < 8) return byteLength(dtype, count);
  return count;
}

/**
 * Checks, without converting anything, that the payload stored inline in `tp` (raw_data, typed field
 * or string_data) matches dims × dtype. E_DTYPE, E_OUT_OF_RANGE, E_TENSOR_SIZE or E_MALFORMED; a no-op
 * for external tensors (their size is checked when the file is opened).
 */
export function checkTensorStorage(tp: TensorProto, path?: string): void {
  const w = where(tp, path);
  const dtype = tensorDType(tp, path);
  const shape = tensorShape(tp, path);
  const count = numel(shape);
  if (isExternal(tp)) return;
  if (dtype === 'string') {
    if (hasRawData(tp) && tp.rawData.byteLength > 0) throw new ModelsmithError(ErrorCodes.MALFORMED, 'string tensor with raw_data', w);
    if (tp.stringData.length !== count) {
      throw new ModelsmithError(ErrorCodes.TENSOR_SIZE, `string[${shape.join(',')}] needs ${count} string_data values, got ${tp.stringData.length}`, w);
    }
    return;
  }
  if (hasRawData(tp)) {
    const want = byteLength(dtype, count);
    if (tp.rawData.byteLength !== want) {
      throw new ModelsmithError(ErrorCodes.TENSOR_SIZE, `${dtype}[${shape.join(',')}] needs ${want} bytes, raw_data has ${tp.rawData.byteLength}`, w);
    }
    return;
  }
  const field = typedFieldFor(dtype);
  const have = (tp[field] as unknown[]).length;
  if (have === 0 && count > 0) {
    const other = TYPED_FIELDS.find((f) => (tp[f] as unknown[]).length > 0);
    throw new ModelsmithError(
      ErrorCodes.TENSOR_SIZE,
      other ? `${dtype} tensor has its values in ${other}, which cannot hold ${dtype}` : `${dtype}[${shape.join(',')}] has no data`,
      w,
    );
  }
  const want = typedValuesWanted(dtype, count);
  if (have !== want) throw new ModelsmithError(ErrorCodes.TENSOR_SIZE, `${dtype}[${shape.join(',')}] needs ${want} ${field} values, got ${have}`, w);
}

/** The typed repeated field of `tp` as little-endian element bytes (sizes already checked). */
function typedToBytes(tp: TensorProto, dtype: DType): Uint8Array {
  switch (typedFieldFor(dtype)) {
    case 'floatData':
      return new Uint8Array(Float32Array.from(tp.floatData).buffer);
    case 'doubleData':
      return new Uint8Array(Float64Array.from(tp.doubleData).buffer);
    case 'int64Data':
      return new Uint8Array(BigInt64Array.from(tp.int64Data).buffer);
    case 'uint64Data':
      if (dtype === 'uint64') return new Uint8Array(BigUint64Array.from(tp.uint64Data, (v) => BigInt.asUintN(64, v)).buffer);
      return new Uint8Array(Uint32Array.from(tp.uint64Data, (v) => Number(BigInt.asUintN(32, v))).buffer);
    case 'int32Data': {
      // Values are masked to the element width: bit patterns (float16, bfloat16, float8) and
      // negative small integers both end up as their two's-complement / IEEE bytes.
      const src = tp.int32Data;
      const bits = dtypeInfo(dtype).bits;
      if (bits <= 8) return Uint8Array.from(src, (v) => v & 0xff);
      if (bits === 16) return new Uint8Array(Uint16Array.from(src, (v) => v & 0xffff).buffer);
      return new Uint8Array(Int32Array.from(src).buffer);
    }
    case 'stringData':
      throw new Error('unreachable'); // strings are handled by the caller
  }
}

/**
 * Normalises an inline TensorProto (raw_data or typed field). External tensors throw E_EXTERNAL_DATA:
 * use `tensorFromProto` for those.
 */
export function tensorFromProtoSync(tp: TensorProto, ctx: { path?: string } = {}): Tensor {
  if (isExternal(tp)) {
    tensorDType(tp, ctx.path);
    throw new ModelsmithError(ErrorCodes.EXTERNAL_DATA, 'tensor data is external; read it with tensorFromProto and a resolver', where(tp, ctx.path));
  }
  checkTensorStorage(tp, ctx.path);
  const dtype = tensorDType(tp, ctx.path);
  const shape = tensorShape(tp, ctx.path);
  if (dtype === 'string') return { name: tp.name, dtype, shape, data: new Uint8Array(0), strings: tp.stringData.slice() };
  let data: Uint8Array;
  if (hasRawData(tp)) data = tp.rawData;
  else data = numel(shape) === 0 ? new Uint8Array(0) : typedToBytes(tp, dtype);
  return { name: tp.name, dtype, shape, data };
}

/** Normalises any TensorProto, reading external data through `ctx.siblings`. */
export async function tensorFromProto(tp: TensorProto, ctx: TensorContext = {}): Promise<Tensor> {
  if (!isExternal(tp)) return tensorFromProtoSync(tp, ctx);
  const slice = await openExternalData(tp, ctx);
  const data = await slice.source.read(slice.offset, slice.length);
  return { name: tp.name, dtype: tensorDType(tp), shape: tensorShape(tp), data };
}

/**
 * Ranged access to the payload of a (non-string) TensorProto, wherever it is stored: a pass can
 * pull a big tensor through in windows (e.g. straight into the kernel arena with `readInto`) instead
 * of holding the whole payload in a JS buffer. Sizes are checked as in tensorFromProto.
 */
export interface PayloadReader {
  /** Payload bytes (dims × dtype, little-endian). */
  readonly length: number;
  /** Fill `target` with payload bytes starting at `offset` (E_OUT_OF_RANGE outside the payload). */
  readInto(offset: number, target: Uint8Array): Promise<void>;
}

export async function payloadReader(tp: TensorProto, ctx: TensorContext = {}): Promise<PayloadReader> {
  const w = where(tp, ctx.path);
  if (tensorDType(tp, ctx.path) === 'string') throw new ModelsmithError(ErrorCodes.DTYPE, 'string tensors have no byte payload', w);
  const check = (length: number, offset: number, n: number): void => {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(n) || offset < 0 || n < 0 || offset + n > length) {
      throw new ModelsmithError(ErrorCodes.OUT_OF_RANGE, `payload read of ${n} bytes at ${offset} is outside its ${length} bytes`, { ...w, offset });
    }
  };
  if (isExternal(tp)) {
    const slice = await openExternalData(tp, ctx);
    return {
      length: slice.length,
      async readInto(offset, target) {
        check(slice.length, offset, target.byteLength);
        await slice.source.readInto(slice.offset + offset, target);
      },
    };
  }
  const data = tensorFromProtoSync(tp, ctx).data;
  return {
    length: data.byteLength,
    async readInto(offset, target) {
      check(data.byteLength, offset, target.byteLength);
      target.set(data.subarray(offset, offset + target.byteLength));
    },
  };
}

/** A TensorProto holding `t` in raw_data (string_data for strings). */
export function tensorToProto(t: Tensor): TensorProto {
  const tp = create(TensorProtoSchema, {
    dims: t.shape.map((d) => BigInt(d)),
    dataType: dtypeInfo(t.dtype).onnx,
    name: t.name,
  });
  if (t.dtype === 'string') tp.stringData = (t.strings ?? []).map((s) => s.slice());
  else tp.rawData = t.data as Uint8Array<ArrayBuffer>;
  return tp;
}

/** Decodes a serialized TensorProto (e.g. the node tests' input_0.pb), with the same input checks as readOnnx. */
export function decodeTensorProto(bytes: Uint8Array, path = '<memory>'): TensorProto {
  scanMessage(bytes, TensorProtoSchema, { path });
  try {
    return fromBinary(TensorProtoSchema, bytes, { readUnknownFields: true });
  } catch (e) {
    throw new ModelsmithError(ErrorCodes.MALFORMED, `not a valid TensorProto: ${(e as Error).message}`, { path, format: 'onnx', cause: e });
  }
}

// ------------------------------------------------------------------------------------------------
// Listing the tensors of a model
// ------------------------------------------------------------------------------------------------

export type TensorKind =
  /** GraphProto.initializer (main graph or a subgraph). */
  | 'initializer'
  /** The `value` attribute of a Constant node. */
  | 'constant'
  /** Any other tensor-valued attribute (ConstantOfShape value, …). */
  | 'attribute'
  /** values / indices of a GraphProto.sparse_initializer. */
  | 'sparse_initializer'
  /** values / indices of a sparse tensor attribute (Constant sparse_value). */
  | 'sparse_attribute';

export interface TensorEntry {
  kind: TensorKind;
  /** Tensor name; for attributes without a tensor name, the node's output (Constant) or node name. */
  name: string;
  proto: TensorProto;
  /** Where it sits: "graph", "graph/If_0:then_branch", "function:custom.Fn", "training_info[0].algorithm". */
  scope: string;
  node?: NodeProto;
  attribute?: string;
  /** For sparse tensors: the SparseTensorProto and which part this entry is. */
  sparse?: SparseTensorProto;
  sparseRole?: 'values' | 'indices';
}

export interface ModelVisitor {
  tensor?(e: TensorEntry): void;
  node?(node: NodeProto, scope: string, depth: number): void;
  graph?(g: GraphProto, scope: string, depth: number): void;
}

function nodeLabel(node: NodeProto, i: number): string {
  return node.name || `${node.opType || 'node'}#${i}`;
}

function visitAttribute(a: AttributeProto, node: NodeProto, label: string, scope: string, depth: number, v: ModelVisitor): void {
  const isConstant = node.opType === 'Constant' && (node.domain === '' || node.domain === 'ai.onnx') && a.name === 'value';
  const defaultName = node.output[0] || label;
  const t = a.t;
  if (t) v.tensor?.({ kind: isConstant ? 'constant' : 'attribute', name: t.name || defaultName, proto: t, scope, node, attribute: a.name });
  for (const t2 of a.tensors) v.tensor?.({ kind: 'attribute', name: t2.name || defaultName, proto: t2, scope, node, attribute: a.name });
  const sparse = a.sparseTensor ? [a.sparseTensor, ...a.sparseTensors] : a.sparseTensors;
  for (const s of sparse) visitSparse(s, 'sparse_attribute', scope, v, node, a.name, defaultName);
  const sub = a.g ? [a.g, ...a.graphs] : a.graphs;
  sub.forEach((g, i) => visitGraph(g, `${scope}/${label}:${a.name}${sub.length > 1 ? `[${i}]` : ''}`, depth + 1, v));
}

function visitSparse(s: SparseTensorProto, kind: 'sparse_initializer' | 'sparse_attribute', scope: string, v: ModelVisitor, node?: NodeProto, attribute?: string, fallback = ''): void {
  const base = s.values?.name || fallback;
  for (const role of ['values', 'indices'] as const) {
    const tp = s[role];
    if (!tp) continue;
    const e: TensorEntry = { kind, name: tp.name || `${base}.${role}`, proto: tp, scope, sparse: s, sparseRole: role };
    if (node) e.node = node;
    if (attribute !== undefined) e.attribute = attribute;
    v.tensor?.(e);
  }
}

function visitNodes(nodes: NodeProto[], scope: string, depth: number, v: ModelVisitor): void {
  nodes.forEach((node, i) => {
    v.node?.(node, scope, depth);
    const label = nodeLabel(node, i);
    for (const a of node.attribute) visitAttribute(a, node, label, scope, depth, v);
  });
}

function visitGraph(g: GraphProto, scope: string, depth: number, v: ModelVisitor): void {
  v.graph?.(g, scope, depth);
  for (const t of g.initializer) v.tensor?.({ kind: 'initializer', name: t.name, proto: t, scope });
  for (const s of g.sparseInitializer) visitSparse(s, 'sparse_initializer', scope, v);
  visitNodes(g.node, scope, depth, v);
}

/** Visits every graph, node and tensor of a model, in file order. */
export function visitModel(proto: ModelProto, v: ModelVisitor): void {
  if (proto.graph) visitGraph(proto.graph, 'graph', 0, v);
  proto.functions.forEach((f: FunctionProto) => visitNodes(f.node, `function:${f.domain ? f.domain + '.' : ''}${f.name}`, 0, v));
  proto.trainingInfo.forEach((ti, i) => {
    if (ti.initialization) visitGraph(ti.initialization, `training_info[${i}].initialization`, 0, v);
    if (ti.algorithm) visitGraph(ti.algorithm, `training_info[${i}].algorithm`, 0, v);
  });
}

/** Every tensor the model holds, in file order. */
export function collectTensors(model: OnnxModel | ModelProto): TensorEntry[] {
  const proto = (model as OnnxModel).format === 'onnx' && 'proto' in model ? model.proto : (model as ModelProto);
  const out: TensorEntry[] = [];
  visitModel(proto, { tensor: (e) => out.push(e) });
  return out;
}
