/**
 * Conversion state shared by the op handlers: the ONNX value table (dtype, static shape, folded
 * constant value, TF tensor), the emitted TF nodes, unique naming, and how weights become graph
 * constants or bundle variables. Handlers only talk to this class, never to the GraphDef directly.
 */
import type { AttributeProto, NodeProto, TensorProto as OnnxTensorProto } from 'onnx-buf';
import { dtypeFromOnnx, type DType } from '../../core/dtype.js';
import { ErrorCodes, ModelsmithError, type ErrorCode } from '../../core/errors.js';
import { numel, type Tensor } from '../../core/tensor.js';
import { node as tfNode } from '../../formats/savedmodel/build.js';
import type { AttrValue, FunctionDef, NodeDef } from '../../formats/savedmodel/gen/tensorflow/graph_pb.js';
import { tensorFromProtoSync } from '../../formats/onnx/tensor.js';
import type { LazyTensor } from '../../formats/weights.js';
import { a, tensorProtoOf } from './tf-attr.js';
import { numbersTensor, tensorNumbers } from './values.js';

export interface Val {
  dtype: DType;
  /** Static shape in ONNX layout; -1 = unknown dim, null = unknown rank. */
  shape: number[] | null;
  /** TF tensor (`node` or `node:i`) once it exists in the graph. */
  ref?: string;
  /** Known value: initializers, Constants and folded shape arithmetic (a carried dtype's in its carrier). */
  value?: Tensor;
  /** An ONNX sequence of tensors of `dtype`, held stacked on a new axis 0 (`shape` includes it). */
  sequence?: boolean;
  /** A sequence known to be empty whose element shape no op has fixed yet (SequenceEmpty): no tensor exists. */
  emptySequence?: boolean;
}

/** Prefix of the messages of `Cx.refuse` (and of dtype refusals at the graph boundary). */
export const REFUSED_FORM = 'unsupported form';

const NODE_NAME = /^[A-Za-z0-9.][A-Za-z0-9_.\-/>]*$/;
/** Weights at most this many elements stay graph Consts even in variables mode (axes, scalars, shapes). */
const SMALL_CONST = 16;

export function sanitizeName(s: string): string {
  let n = s.replace(/[^A-Za-z0-9_.\-/>]/g, '_').replace(/\/+/g, '/').replace(/\/$/, '_');
  if (!NODE_NAME.test(n)) n = `t${n}`;
  // write.ts owns the save/ scope of the restore subgraph.
  if (n === 'save' || n.startsWith('save/')) n = `x_${n}`;
  return n;
}

export interface ConvertCounters {
  transposesInserted: number;
  opsMapped: Record<string, number>;
  /** ONNX nodes converted so far, subgraph bodies and unrolled iterations included (bounded by `maxNodes`). */
  nodesConverted?: number;
}

export class Cx {
  readonly nodes: NodeDef[] = [];
  readonly vals = new Map<string, Val>();
  readonly variables: LazyTensor[] = [];
  readonly counters: ConvertCounters = { transposesInserted: 0, opsMapped: {} };
  /** Layout transposes this converter inserted: node name → perm (the cancellation pass reads it). */
  readonly layoutPerms = new Map<string, number[]>();
  /**
   * Static shapes of intermediate TF tensors a handler knows (outputs' shapes are in `vals`): the
   * layout pass lets transposes through binary ops whose other operand is scalar or per-channel.
   */
  readonly tensorShapes = new Map<string, number[]>();
  /** Library functions (If branches, While cond/body) for the GraphDef's library; subgraph scopes share the root's. */
  readonly functions: FunctionDef[] = [];
  private readonly taken = new Set<string>();
  private readonly suffixes = new Map<string, number>();
  private readonly varNames = new Map<Tensor, string>();
  private readonly derivedRefs = new Map<Tensor, Map<string, string>>();
  node!: NodeProto;
  private prefix = 'n';

  constructor(readonly opts: { path: string; opset: number; constants: boolean; maxNodes?: number }) {}

  get opset(): number {
    return this.opts.opset;
  }

  reserve(name: string): void {
    this.taken.add(name);
  }

  isTaken(name: string): boolean {
    return this.taken.has(name);
  }

  unique(base: string): string {
    let n = sanitizeName(base);
    if (!this.taken.has(n)) {
      this.taken.add(n);
      return n;
    }
    // Resume after the last suffix handed out for this base: names are never freed, so this gives
    // what a search from 1 would, without going quadratic when thousands of nodes share a base.
    for (let i = (this.suffixes.get(n) ?? 0) + 1; ; i++) {
      const c = `${n}_${i}`;
      if (!this.taken.has(c)) {
        this.taken.add(c);
        this.suffixes.set(n, i);
        return c;
      }
    }
  }

  begin(n: NodeProto, index: number): void {
    this.node = n;
    this.prefix = sanitizeName(n.name || `${n.opType}_${index}`);
  }

  fail(code: ErrorCode, message: string): never {
    throw new ModelsmithError(code, message, { format: 'onnx', path: this.opts.path, op: `${this.node.opType} '${this.node.name || this.node.output[0] || ''}'` });
  }

  unsupported(message: string): never {
    return this.fail(ErrorCodes.UNSUPPORTED, message);
  }

  /**
   * Refuse a form whose correct TF graph TF.js (our reference executor) cannot run: a known
   * executor limitation, not a converter gap. The message starts with REFUSED_FORM so benches can
   * count these apart from failures.
   */
  refuse(reason: string): never {
    return this.fail(ErrorCodes.UNSUPPORTED, `${REFUSED_FORM}: ${reason}`);
  }

  // ---- inputs and outputs ----------------------------------------------------------------------

  opt(i: number): Val | undefined {
    const name = this.node.input[i];
    if (name === undefined || name === '') return undefined;
    const v = this.vals.get(name);
    if (!v) this.fail(ErrorCodes.MALFORMED, `input '${name}' is not produced by any earlier node, graph input or initializer`);
    return v;
  }

  in(i: number): Val {
    const v = this.opt(i);
    if (!v) this.fail(ErrorCodes.MALFORMED, `required input ${i} is missing`);
    return v;
  }

  /** Static rank of an input; conversion needs it for axis handling. */
  rank(v: Val, what = 'input'): number {
    if (!v.shape) this.unsupported(`${what} has unknown rank (give the model static input ranks)`);
    return v.shape.length;
  }

  out(i: number, v: Val): void {
    const name = this.node.output[i];
    if (name === undefined || name === '') return;
    this.vals.set(name, v);
  }

  /** Output i as a TF tensor with an inferred shape. */
  outRef(i: number, ref: string, dtype: DType, shape: number[] | null): void {
    this.out(i, { ref, dtype, shape });
  }

  /** Known value of an input, as numbers (E_UNSUPPORTED if it is computed at run time). */
  constNums(v: Val | undefined, what: string): number[] {
    if (!v?.value) this.unsupported(`${what} must be a constant (initializer, Constant or static shape arithmetic)`);
    return tensorNumbers(v.value);
  }

  // ---- emitting --------------------------------------------------------------------------------

  add(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, suffix?: string): string {
    const name = this.unique(`${this.prefix}/${suffix ?? op}`);
    this.nodes.push(tfNode(name, op, inputs, attrs));
    return name;
  }

  /** TF tensor of a value, creating the Const / variable read on first use. */
  ref(v: Val): string {
    if (v.ref) return v.ref;
    if (!v.value) this.fail(ErrorCodes.MALFORMED, 'value has neither a tensor nor a constant');
    v.ref = this.weight(v.value);
    return v.ref;
  }

  /**
   * A weight tensor: large float-ish weights become bundle variables (read through ReadVariableOp)
   * unless `constants` was asked for; small ones and integer data stay Const nodes.
   */
  weight(t: Tensor, base?: string): string {
    const count = numel(t.shape);
    const asVar = !this.opts.constants && count > SMALL_CONST && t.dtype !== 'string';
    if (!asVar) return this.constNode(t, base);
    const known = this.varNames.get(t);
    if (known) return `${known}/Read/ReadVariableOp`;
    const name = this.unique(base ?? (t.name || `${this.prefix}/w`));
    for (const s of ['/Read/ReadVariableOp', '/Initializer/zeros/shape', '/Initializer/zeros/Const', '/Initializer/zeros', '/Assign']) this.reserve(name + s);
    this.varNames.set(t, name);
    this.variables.push({ name, dtype: t.dtype, shape: t.shape, byteLength: t.data.byteLength, load: async () => t.data });
    return `${name}/Read/ReadVariableOp`;
  }

  constNode(t: Tensor, base?: string): string {
    const name = this.unique(base ?? (t.name ? t.name : `${this.prefix}/Const`));
    this.nodes.push(tfNode(name, 'Const', [], { dtype: a.dt(t.dtype), value: a.tensor(tensorProtoOf(t)) }));
    return name;
  }

  i32(values: readonly number[], shape: number[] = [values.length]): string {
    return this.constNode(numbersTensor('', 'int32', shape, values), `${this.prefix}/Const`);
  }

  scalar(dtype: DType, value: number): string {
    return this.constNode(numbersTensor('', dtype, [], [value]), `${this.prefix}/Const`);
  }

  /** An ONNX-layout ↔ TF-layout transpose the layout pass may later cancel. */
  layoutTranspose(x: string, perm: number[], dtype: DType): string {
    const p = this.i32(perm);
    const name = this.add('Transpose', [x, p], { T: a.dt(dtype), Tperm: a.dt('int32') }, 'Transpose');
    this.layoutPerms.set(name, perm);
    this.counters.transposesInserted++;
    return name;
  }

  /** TF tensors derived from a weight at conversion time, by transform key: get, or set when `ref` is given. */
  derived(t: Tensor, key: string, ref?: string): string | undefined {
    let m = this.derivedRefs.get(t);
    if (!m) this.derivedRefs.set(t, (m = new Map()));
    if (ref !== undefined) m.set(key, ref);
    return m.get(key);
  }

  // ---- attributes ------------------------------------------------------------------------------

  private attr(name: string): AttributeProto | undefined {
    return this.node.attribute.find((x) => x.name === name);
  }

  has(name: string): boolean {
    return this.attr(name) !== undefined;
  }

  int(name: string, def: number): number {
    const x = this.attr(name);
    return x ? Number(x.i) : def;
  }

  float(name: string, def: number): number {
    const x = this.attr(name);
    return x ? x.f : def;
  }

  ints(name: string): number[] | undefined {
    const x = this.attr(name);
    return x ? x.ints.map((v) => Number(v)) : undefined;
  }

  floats(name: string): number[] | undefined {
    const x = this.attr(name);
    return x ? [...x.floats] : undefined;
  }

  str(name: string, def: string): string {
    const x = this.attr(name);
    return x ? new TextDecoder().decode(x.s) : def;
  }

  tensorAttr(name: string): OnnxTensorProto | undefined {
    return this.attr(name)?.t;
  }

  tensorOf(tp: OnnxTensorProto): Tensor {
    return tensorFromProtoSync(tp, { path: this.opts.path });
  }
}

export function onnxDtype(code: number, ctx: { path: string; tensor?: string }): DType {
  const d = dtypeFromOnnx(code);
  if (!d) throw new ModelsmithError(ErrorCodes.DTYPE, `unknown ONNX element type ${code}`, { format: 'onnx', ...ctx });
  return d.name;
}
