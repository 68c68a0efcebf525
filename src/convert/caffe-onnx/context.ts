/**
 * State shared by the layer handlers while a Caffe net becomes an ONNX graph:
 *  - SSA naming: Caffe reuses a blob name for in-place layers (ReLU, BatchNorm, Scale…); ONNX values
 *    must be written once, so every write of a blob gets a fresh value name and readers see the latest;
 *  - static shapes of every value (Caffe nets have fixed input shapes; several mappings need them);
 *  - weights: blobs looked up by layer name (deploy first, then the caffemodel), size-checked;
 *  - node / initializer / attribute builders.
 */
import { create } from '@bufbuild/protobuf';
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  NodeProtoSchema,
  TensorProtoSchema,
  type AttributeProto,
  type NodeProto,
  type TensorProto,
} from 'onnx-buf';
import { ErrorCodes, ModelsmithError, type Diagnostic, type ErrorCode } from '../../core/errors.js';
import { float32TensorProto } from '../../formats/onnx/build.js';
import { blobFloat32, blobInfo, shapeNumel } from '../../formats/caffe/blob.js';
import { blobTensorName } from '../../formats/caffe/weights.js';
import type { BlobProto, LayerParameter } from '../../formats/caffe/gen/caffe_pb.js';

export type AttrValue = number | number[] | string | { float: number } | { floats: number[] };

/** Largest dimension / element count accepted in inferred shapes (keeps arithmetic exact). */
const MAX_ELEMENTS = 2 ** 40;

export class ConvertContext {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  readonly diagnostics: Diagnostic[] = [];
  /** Blob name → current ONNX value name. */
  private readonly current = new Map<string, string>();
  /** ONNX value name → static shape. */
  readonly shapes = new Map<string, number[]>();
  /** Value names in production order, with the blob and layer that wrote them. */
  readonly produced: { value: string; blob: string; layer: string; isInput: boolean }[] = [];
  readonly consumed = new Set<string>();
  private readonly producedValues = new Set<string>();
  private readonly names = new Set<string>();
  private readonly nextSuffix = new Map<string, number>();
  /** Blob name → indices (in `layers`) of the layers that read / write it, ascending. */
  readonly readers = new Map<string, number[]>();
  readonly writers = new Map<string, number[]>();
  /** Index of the layer being converted in `layers`. */
  index = 0;

  constructor(
    readonly layers: readonly LayerParameter[],
    private readonly weightsByName: ReadonlyMap<string, LayerParameter>,
    readonly opset: number,
    readonly path: string | undefined,
  ) {
    // Blob names are reserved so that the first write of each keeps its Caffe name.
    layers.forEach((l, i) => {
      for (const t of [...l.top, ...l.bottom]) this.names.add(t);
      for (const b of l.bottom) push(this.readers, b, i);
      for (const t of l.top) push(this.writers, t, i);
    });
  }

  // -------------------------------------------------------------------------------------------
  // Errors
  // -------------------------------------------------------------------------------------------

  fail(code: ErrorCode, layer: LayerParameter, message: string): never {
    throw new ModelsmithError(code, `layer '${layer.name}' (${layer.type}): ${message}`, { format: 'caffe', op: layer.name, ...(this.path !== undefined ? { path: this.path } : {}) });
  }

  warn(code: string, message: string, op?: string): void {
    this.diagnostics.push({ level: 'warning', code, message, ...(op !== undefined ? { op } : {}) });
  }

  // -------------------------------------------------------------------------------------------
  // Values
  // -------------------------------------------------------------------------------------------

  /** A fresh name based on `base` that no blob or earlier value uses. */
  unique(base: string): string {
    let name = base;
    // Resume from the last suffix used for this base: many layers may share a name in hostile files.
    let k = this.nextSuffix.get(base) ?? 1;
    while (this.names.has(name)) name = `${base}_${k++}`;
    this.nextSuffix.set(base, k);
    this.names.add(name);
    return name;
  }

  /**
   * Current value of bottom `i` of `layer`, with its shape. `consume` false is for layers that only
   * forward the value (Dropout, Split): they do not make it stop being a net output.
   */
  bottom(layer: LayerParameter, i = 0, consume = true): { name: string; shape: number[] } {
    const blob = layer.bottom[i];
    if (blob === undefined) this.fail(ErrorCodes.MALFORMED, layer, `needs at least ${i + 1} bottom(s), has ${layer.bottom.length}`);
    const name = this.current.get(blob);
    if (name === undefined) this.fail(ErrorCodes.MALFORMED, layer, `bottom '${blob}' is not produced by any earlier layer or input`);
    if (consume) this.consumed.add(name);
    return { name, shape: this.shapes.get(name)! };
  }

  bottoms(layer: LayerParameter, min = 1): { name: string; shape: number[] }[] {
    if (layer.bottom.length < min) this.fail(ErrorCodes.MALFORMED, layer, `needs at least ${min} bottom(s), has ${layer.bottom.length}`);
    return layer.bottom.map((_, i) => this.bottom(layer, i));
  }

  /**
   * Allocate the value for top `i` of `layer` with its shape. The first write of a blob keeps the
   * blob's name; later writes (in-place layers) get `<blob>/<layer>`.
   */
  top(layer: LayerParameter, i: number, shape: number[], isInput = false): string {
    const blob = layer.top[i];
    if (blob === undefined) this.fail(ErrorCodes.MALFORMED, layer, `needs at least ${i + 1} top(s), has ${layer.top.length}`);
    this.checkShape(layer, shape);
    let name: string;
    if (!this.current.has(blob) && !this.producedValues.has(blob)) {
      name = blob;
    } else {
      name = this.unique(`${blob}/${layer.name}`);
    }
    this.current.set(blob, name);
    this.shapes.set(name, shape);
    this.produced.push({ value: name, blob, layer: layer.name, isInput });
    this.producedValues.add(name);
    return name;
  }

  /** Values some blob currently refers to (the candidates for net outputs). */
  currentValues(): Set<string> {
    return new Set(this.current.values());
  }

  /** Top `i` is the same value as `value` (Split, Dropout): no node. */
  alias(layer: LayerParameter, i: number, value: string): void {
    const blob = layer.top[i];
    if (blob === undefined) this.fail(ErrorCodes.MALFORMED, layer, `needs at least ${i + 1} top(s)`);
    this.current.set(blob, value);
  }

  /** Register a graph input value for `blob`. */
  defineInput(layer: LayerParameter, i: number, shape: number[]): string {
    return this.top(layer, i, shape, true);
  }

  /** Intermediate value (not a Caffe blob). */
  temp(base: string, shape: number[]): string {
    const name = this.unique(base);
    this.shapes.set(name, shape);
    return name;
  }

  checkShape(layer: LayerParameter, shape: readonly number[]): void {
    let n = 1;
    for (const d of shape) {
      if (!Number.isSafeInteger(d) || d < 0) this.fail(ErrorCodes.OUT_OF_RANGE, layer, `invalid output shape [${shape.join(', ')}]`);
      n *= d;
      if (n > MAX_ELEMENTS) this.fail(ErrorCodes.OUT_OF_RANGE, layer, `output shape [${shape.join(', ')}] is too large`);
    }
    if (shape.length > 32) this.fail(ErrorCodes.OUT_OF_RANGE, layer, `output rank ${shape.length} is too large`);
  }

  /** Normalise a possibly negative Caffe axis against `rank`. */
  axis(layer: LayerParameter, axis: number, rank: number, what = 'axis'): number {
    const a = axis < 0 ? axis + rank : axis;
    if (!Number.isInteger(a) || a < 0 || a >= rank) this.fail(ErrorCodes.OUT_OF_RANGE, layer, `${what} ${axis} is out of range for a rank-${rank} input`);
    return a;
  }

  // -------------------------------------------------------------------------------------------
  // Weights
  // -------------------------------------------------------------------------------------------

  /** Blobs for `layer`: its own (deploy read from a caffemodel) or the weights net's, by layer name. */
  blobs(layer: LayerParameter): BlobProto[] {
    if (layer.blobs.length > 0) return layer.blobs;
    return this.weightsByName.get(layer.name)?.blobs ?? [];
  }

  /** Require at least `n` blobs, naming the layer when they are missing. */
  requireBlobs(layer: LayerParameter, n: number): BlobProto[] {
    const b = this.blobs(layer);
    if (b.length === 0) {
      this.fail(ErrorCodes.MALFORMED, layer, `has no weights: neither the deploy net nor the caffemodel holds blobs for layer '${layer.name}' (prototxt and caffemodel do not match)`);
    }
    if (b.length < n) this.fail(ErrorCodes.MALFORMED, layer, `needs ${n} weight blobs, the caffemodel has ${b.length}`);
    return b;
  }

  /** Blob `i` as float32 data of `shape` (legacy 4-D blobs accepted when the element count agrees). */
  blobData(layer: LayerParameter, blobs: BlobProto[], i: number, shape: readonly number[]): Float32Array {
    const b = blobs[i]!;
    const info = blobInfo(b, { tensor: `${layer.name}.${i}`, ...(this.path !== undefined ? { path: this.path } : {}) });
    const want = shapeNumel(shape, { tensor: `${layer.name}.${i}` });
    if (info.count !== want) {
      this.fail(ErrorCodes.TENSOR_SIZE, layer, `weight blob ${i} holds ${info.count} values (shape [${info.shape.join(', ')}]) but [${shape.join(', ')}] = ${want} are needed`);
    }
    return blobFloat32(b);
  }

  // -------------------------------------------------------------------------------------------
  // Graph builders
  // -------------------------------------------------------------------------------------------

  /** A float32 initializer named after the layer's blob role (same names as caffeWeights). */
  weight(layer: LayerParameter, blobIndex: number, dims: readonly number[], data: Float32Array, suffix?: string): string {
    const name = this.unique(suffix === undefined ? blobTensorName(layer, blobIndex) : `${layer.name}.${suffix}`);
    this.initializers.push(float32TensorProto(name, dims, data));
    this.shapes.set(name, [...dims]);
    return name;
  }

  constF32(base: string, dims: readonly number[], data: ArrayLike<number>): string {
    const name = this.unique(base);
    this.initializers.push(float32TensorProto(name, dims, Float32Array.from(data)));
    this.shapes.set(name, [...dims]);
    return name;
  }

  constI64(base: string, values: readonly number[]): string {
    const name = this.unique(base);
    const raw = new Uint8Array(values.length * 8);
    const dv = new DataView(raw.buffer);
    values.forEach((v, i) => dv.setBigInt64(i * 8, BigInt(v), true));
    this.initializers.push(create(TensorProtoSchema, { name, dims: [BigInt(values.length)], dataType: 7, rawData: raw }));
    this.shapes.set(name, [values.length]);
    return name;
  }

  node(layer: LayerParameter, opType: string, inputs: string[], outputs: string[], attrs: Record<string, AttrValue> = {}): NodeProto {
    const n = create(NodeProtoSchema, {
      name: this.unique(`${layer.name}/${opType}`),
      opType,
      input: inputs,
      output: outputs,
      attribute: Object.entries(attrs).map(([k, v]) => attr(k, v)),
    });
    this.nodes.push(n);
    return n;
  }

  /** The layer after the current one (for fusions such as BatchNorm + Scale). */
  peekNext(): LayerParameter | undefined {
    return this.layers[this.index + 1];
  }
}

function push(m: Map<string, number[]>, k: string, i: number): void {
  const list = m.get(k);
  if (!list) m.set(k, [i]);
  else if (list[list.length - 1] !== i) list.push(i);
}

/** First element of the ascending `list` that is greater than `after` (binary search), or undefined. */
export function firstAfter(list: readonly number[] | undefined, after: number): number | undefined {
  if (!list) return undefined;
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]! > after) hi = mid;
    else lo = mid + 1;
  }
  return list[lo];
}

function attr(name: string, v: AttrValue): AttributeProto {
  if (typeof v === 'number') return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(v) });
  if (typeof v === 'string') return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.STRING, s: new TextEncoder().encode(v) });
  if (Array.isArray(v)) return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INTS, ints: v.map((x) => BigInt(x)) });
  if ('float' in v) return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.FLOAT, f: v.float });
  return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.FLOATS, floats: v.floats });
}
