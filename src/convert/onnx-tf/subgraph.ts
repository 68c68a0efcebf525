/**
 * ONNX subgraphs (If branches, Loop and Scan bodies) converted with the same handlers as the main
 * graph, through a child scope of the converter context:
 *  - an *inline* scope emits into its parent's node list (a branch taken by a constant condition,
 *    an unrolled iteration) and sees the parent's values as they are;
 *  - a *function* scope emits the body of a FunctionDef. A value of the enclosing scope read inside
 *    becomes a function input ("capture"): TF functions see nothing but their arguments. Weights
 *    are captured too (so a big one stays one bundle variable), small ones become Consts inside.
 * Function bodies name tensors `node:outarg:index` (the op's output argument), not the flat
 * `node:index` of a GraphDef, so the flat references the handlers write are translated at the end.
 */
import { create } from '@bufbuild/protobuf';
import type { GraphProto, NodeProto, TensorShapeProto, ValueInfoProto } from 'onnx-buf';
import type { DType } from '../../core/dtype.js';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { numel, type Tensor } from '../../core/tensor.js';
import { shapeProto, tfDtype } from '../../formats/savedmodel/build.js';
import {
  AttrValueSchema, AttrValue_ListValueSchema, FunctionDefSchema, NameAttrListSchema, OpDefSchema, OpDef_ArgDefSchema,
  type AttrValue, type FunctionDef, type NodeDef,
} from '../../formats/savedmodel/gen/tensorflow/graph_pb.js';
import type { DataType } from '../../formats/savedmodel/gen/tensorflow/types_pb.js';
import { parseInput } from '../../formats/savedmodel/graph-utils.js';
import type { LazyTensor } from '../../formats/weights.js';
import { CARRIER_OPS, carrierOf, toCarrier } from './carriers.js';
import { Cx, onnxDtype, sanitizeName, type ConvertCounters, type Val } from './context.js';
import { handlerFor } from './registry.js';
import { a } from './tf-attr.js';

/** Ops that take a sequence value (stacked on axis 0). */
export const SEQUENCE_OPS = new Set([
  'Identity', 'SequenceAt', 'SequenceLength', 'SequenceInsert', 'SequenceErase', 'ConcatFromSequence', 'Loop',
]);
/** Subgraph nesting beyond this is refused: bounds recursion on hostile models. */
export const MAX_SUBGRAPH_DEPTH = 16;
/** Default cap on converted nodes (convert.ts's `maxNodes`). */
const DEFAULT_MAX_NODES = 200_000;
/** Unrolled iterations (Scan, Loop with a constant trip count) at most. */
export const MAX_UNROLL = 64;

function isDefaultDomain(d: string): boolean {
  return d === '' || d === 'ai.onnx';
}

/** Op type as the registry knows it, or with its domain for other domains. */
export function opKey(domain: string, op: string): string {
  return isDefaultDomain(domain) ? op : `${domain}::${op}`;
}

/** Op keys without a handler in `nodes` and every subgraph below them, with counts. */
export function unsupportedOps(nodes: readonly NodeProto[], into: Record<string, number> = {}, depth = 0): Record<string, number> {
  if (depth > MAX_SUBGRAPH_DEPTH) return into;
  for (const n of nodes) {
    const k = opKey(n.domain, n.opType);
    if (!handlerFor(k)) into[k] = (into[k] ?? 0) + 1;
    for (const at of n.attribute) {
      for (const g of [...(at.g ? [at.g] : []), ...at.graphs]) unsupportedOps(g.node, into, depth + 1);
    }
  }
  return into;
}

/** Nodes of `nodes` and of every subgraph below them (what a conversion may have to convert). */
export function totalNodes(nodes: readonly NodeProto[], depth = 0): number {
  let n = nodes.length;
  if (depth > MAX_SUBGRAPH_DEPTH) return n;
  for (const x of nodes) for (const at of x.attribute) for (const g of [...(at.g ? [at.g] : []), ...at.graphs]) n += totalNodes(g.node, depth + 1);
  return n;
}

/** Sequences and carried dtypes only go into the ops that know them; any other op would misread them. */
export function checkCarriedInputs(cx: Cx): void {
  for (const name of cx.node.input) {
    const v = name ? cx.vals.get(name) : undefined;
    if (v?.sequence && !SEQUENCE_OPS.has(cx.node.opType)) cx.unsupported(`${cx.node.opType} on sequence '${name}' (sequences convert through ${[...SEQUENCE_OPS].join(', ')} only)`);
    if (v && carrierOf(v.dtype) && !CARRIER_OPS.has(cx.node.opType)) cx.unsupported(`${cx.node.opType} on ${v.dtype} input '${name}' (ONNX takes ${v.dtype} only in casts, (de)quantizers and data movement)`);
  }
}

export function withNodeContext(e: unknown, cx: Cx, path: string): ModelsmithError {
  const op = `${cx.node.opType} '${cx.node.name || cx.node.output[0] || ''}'`;
  if (e instanceof ModelsmithError) {
    if (e.op !== undefined) return e;
    const msg = e.message.replace(/^E_[A-Z_]+: /, '').replace(/ \([^)]*\)$/, '');
    return new ModelsmithError(e.code, msg, { format: 'onnx', path, op, ...(e.tensor !== undefined ? { tensor: e.tensor } : {}), cause: e });
  }
  // A handler tripping over a malformed node must not surface as a TypeError/RangeError.
  return new ModelsmithError(ErrorCodes.MALFORMED, `cannot convert node: ${(e as Error)?.message ?? String(e)}`, { format: 'onnx', path, op, cause: e });
}

/** Converts `nodes` in order into `cx` (the main graph or a subgraph scope). */
export function runNodes(cx: Cx, nodes: readonly NodeProto[]): void {
  const path = cx.opts.path;
  const limit = cx.opts.maxNodes ?? DEFAULT_MAX_NODES;
  nodes.forEach((n, i) => {
    cx.begin(n, i);
    // Unrolled bodies and nested subgraphs multiply: the total work stays bounded on hostile models.
    cx.counters.nodesConverted = (cx.counters.nodesConverted ?? 0) + 1;
    if (cx.counters.nodesConverted > limit) cx.fail(ErrorCodes.LIMIT, `more than ${limit} nodes to convert, counting subgraph bodies and unrolled iterations`);
    try {
      const h = handlerFor(opKey(n.domain, n.opType));
      if (!h) cx.unsupported(`cannot convert to TensorFlow: unsupported op ${opKey(n.domain, n.opType)}`);
      checkCarriedInputs(cx);
      h(cx);
    } catch (e) {
      throw withNodeContext(e, cx, path);
    }
    for (const [k, o] of n.output.entries()) {
      if (o && !cx.vals.has(o)) cx.fail(ErrorCodes.UNSUPPORTED, `output ${k} ('${o}') is not produced by the conversion`);
    }
    cx.counters.opsMapped[n.opType] = (cx.counters.opsMapped[n.opType] ?? 0) + 1;
  });
}

/** dtype, static shape and sequence-ness of a subgraph input/output; undefined when it declares no type. */
export function valueType(vi: ValueInfoProto, path: string): { dtype: DType; shape: number[] | null; sequence: boolean } | undefined {
  const t = vi.type?.value;
  const dims = (s: TensorShapeProto | undefined): number[] | null =>
    s ? s.dim.map((d) => (d.value.case === 'dimValue' && d.value.value >= 0n && d.value.value <= 2n ** 31n ? Number(d.value.value) : -1)) : null;
  if (t?.case === 'tensorType') return { dtype: onnxDtype(t.value.elemType, { path, tensor: vi.name }), shape: dims(t.value.shape), sequence: false };
  if (t?.case === 'sequenceType') {
    const e = t.value.elemType?.value;
    if (e?.case !== 'tensorType') return undefined;
    const inner = dims(e.value.shape);
    return { dtype: onnxDtype(e.value.elemType, { path, tensor: vi.name }), shape: inner ? [-1, ...inner] : null, sequence: true };
  }
  return undefined;
}

/** A function input standing for a tensor of the enclosing scope. */
export interface Capture {
  /** The tensor in the enclosing scope. */
  outer: string;
  arg: string;
  dtype: DType;
}

/**
 * Captures shared by the scopes that become functions of one TF op (both If branches, or a While
 * body and its condition): they must all take the same arguments.
 */
export class Captures {
  readonly list: Capture[] = [];
  private readonly byOuter = new Map<string, Capture>();
  private readonly scopes: Cx[] = [];

  join(s: Cx): void {
    this.scopes.push(s);
    for (const c of this.list) s.reserve(c.arg);
  }

  /** A fresh argument name, free in every scope. */
  argName(base: string): string {
    let k = 0;
    let n = base;
    while (this.scopes.some((s) => s.isTaken(n))) n = `${base}_${++k}`;
    for (const s of this.scopes) s.reserve(n);
    return n;
  }

  get(outer: string, dtype: DType): string {
    const known = this.byOuter.get(outer);
    if (known) return known.arg;
    const c = { outer, dtype, arg: this.argName(`capture_${this.list.length}`) };
    this.list.push(c);
    this.byOuter.set(outer, c);
    return c.arg;
  }
}

/** Values of a scope: its own, else the enclosing scope's (captured when the scope is a function). */
class ScopeVals extends Map<string, Val> {
  constructor(private readonly scope: ScopeCx) {
    super();
  }

  override get(name: string): Val | undefined {
    const own = super.get(name);
    if (own !== undefined) return own;
    const v = this.scope.outer(name);
    if (v) super.set(name, v);
    return v;
  }

  override has(name: string): boolean {
    return super.has(name) || this.scope.parent.vals.has(name);
  }
}

const SMALL_CONST = 16;

export class ScopeCx extends Cx {
  override readonly nodes: NodeDef[];
  override readonly vals: Map<string, Val>;
  override readonly variables: LazyTensor[];
  override readonly counters: ConvertCounters;
  override readonly layoutPerms: Map<string, number[]>;
  override readonly functions: FunctionDef[];
  readonly depth: number;

  /** Without `captures` the scope is inline; with them it is the body of a function. */
  constructor(readonly parent: Cx, readonly captures?: Captures) {
    super(parent.opts);
    this.depth = (parent instanceof ScopeCx ? parent.depth : 0) + 1;
    if (this.depth > MAX_SUBGRAPH_DEPTH) parent.fail(ErrorCodes.LIMIT, `subgraphs nested deeper than ${MAX_SUBGRAPH_DEPTH}`);
    this.nodes = captures ? [] : parent.nodes;
    this.layoutPerms = captures ? new Map() : parent.layoutPerms;
    this.counters = parent.counters;
    this.functions = parent.functions;
    this.variables = parent.variables;
    this.vals = new ScopeVals(this);
    captures?.join(this);
  }

  override unique(base: string): string {
    return this.captures ? super.unique(base) : this.parent.unique(base);
  }

  override reserve(name: string): void {
    if (this.captures) super.reserve(name);
    else this.parent.reserve(name);
  }

  override isTaken(name: string): boolean {
    return this.captures ? super.isTaken(name) : this.parent.isTaken(name);
  }

  override derived(t: Tensor, key: string, ref?: string): string | undefined {
    return this.captures ? super.derived(t, key, ref) : this.parent.derived(t, key, ref);
  }

  override weight(t: Tensor, base?: string): string {
    if (!this.captures) return this.parent.weight(t, base);
    if (this.opts.constants || numel(t.shape) <= SMALL_CONST || t.dtype === 'string') return this.constNode(t, base);
    return this.captures.get(this.parent.weight(t, base), t.dtype);
  }

  /** The enclosing scope's value `name` as seen from here. */
  outer(name: string): Val | undefined {
    const v = this.parent.vals.get(name);
    if (!v || !this.captures) return v;
    const base = { dtype: v.dtype, shape: v.shape, ...(v.sequence ? { sequence: true } : {}), ...(v.emptySequence ? { emptySequence: true } : {}) };
    // Known values stay known (folding sees them); their tensor is made on first use.
    if (v.value) return { ...base, value: v.value };
    if (v.emptySequence) return base;
    return { ...base, ref: this.captures.get(this.parent.ref(v), v.dtype) };
  }
}

/** A subgraph attribute of the current node. */
export function graphAttr(cx: Cx, name: string): GraphProto {
  const g = cx.node.attribute.find((x) => x.name === name)?.g;
  if (!g) return cx.fail(ErrorCodes.MALFORMED, `attribute '${name}' (a graph) is missing`);
  return g;
}

/** Initializers of a subgraph as known values of `s`. */
export function addInitializers(s: Cx, g: GraphProto): void {
  for (const tp of g.initializer) {
    const t = s.tensorOf(tp);
    s.vals.set(tp.name, { dtype: t.dtype, shape: t.shape, value: toCarrier(t) });
  }
}

/** Outputs of a converted subgraph, in order. */
export function graphOutputs(s: Cx, g: GraphProto): Val[] {
  return g.output.map((o) => {
    const v = s.vals.get(o.name);
    if (!v) return s.fail(ErrorCodes.MALFORMED, `subgraph '${g.name}' output '${o.name}' is not produced by any node`);
    return v;
  });
}

// ---- FunctionDefs ------------------------------------------------------------------------------

/** Output arguments of ops with several (flat index → argument and index within it). */
const MULTI_OUT: Record<string, string[]> = {
  TopKV2: ['values', 'indices'],
  Unique: ['y', 'idx'],
  FusedBatchNormV3: ['y', 'batch_mean', 'batch_variance', 'reserve_space_1', 'reserve_space_2', 'reserve_space_3'],
};
/** Ops whose one output argument is a list (`output:k`). */
const LIST_OUT = new Set(['SplitV', 'Split', 'Unpack', 'IdentityN', 'StatelessIf', 'StatelessWhile', 'If', 'While']);
/** Output argument names other than `output` (from the TF OpDefs). */
const OUT_ARG: Record<string, string> = {};
for (const op of ['Transpose', 'Cast', 'ZerosLike', 'OnesLike', 'Abs', 'Neg', 'Exp', 'Log', 'Log1p', 'Expm1', 'Sqrt', 'Rsqrt', 'Square', 'Reciprocal', 'Inv',
  'Floor', 'Ceil', 'Round', 'Rint', 'Sign', 'Sin', 'Cos', 'Tan', 'Asin', 'Acos', 'Atan', 'Sinh', 'Cosh', 'Asinh', 'Acosh', 'Atanh', 'Erf', 'Erfc',
  'Tanh', 'Sigmoid', 'IsNan', 'IsInf', 'IsFinite', 'LogicalNot', 'Invert']) OUT_ARG[op] = 'y';
for (const op of ['AddV2', 'Add', 'Sub', 'Mul', 'Div', 'RealDiv', 'FloorDiv', 'FloorMod', 'Mod', 'TruncateDiv', 'TruncateMod', 'Maximum', 'Minimum', 'Pow',
  'SquaredDifference', 'Atan2', 'Equal', 'NotEqual', 'Less', 'LessEqual', 'Greater', 'GreaterEqual', 'LogicalAnd', 'LogicalOr', 'BitwiseAnd',
  'BitwiseOr', 'BitwiseXor', 'LeftShift', 'RightShift', 'DivNoNan', 'MulNoNan', 'Xdivy', 'Xlogy']) OUT_ARG[op] = 'z';
for (const op of ['Relu', 'Relu6', 'Elu', 'Selu', 'LeakyRelu', 'Softplus', 'Softsign']) OUT_ARG[op] = 'activations';
Object.assign(OUT_ARG, {
  MatMul: 'product', Where: 'index', BroadcastArgs: 'r0', Softmax: 'softmax', LogSoftmax: 'logsoftmax', AddN: 'sum', Cumsum: 'out', Cumprod: 'out',
  ResizeBilinear: 'resized_images', ResizeNearestNeighbor: 'resized_images', CropAndResize: 'crops', MatrixBandPart: 'band', ReadVariableOp: 'value',
});

function outArg(op: string, index: number): string {
  const multi = MULTI_OUT[op];
  if (multi) return `${multi[index] ?? 'output'}:0`;
  if (LIST_OUT.has(op)) return `output:${index}`;
  return `${OUT_ARG[op] ?? 'output'}:${index}`;
}

function typeOf(d: DType): DataType {
  return tfDtype(carrierOf(d) ?? d) as DataType;
}

export function funcAttr(name: string): AttrValue {
  return create(AttrValueSchema, { value: { case: 'func', value: create(NameAttrListSchema, { name }) } });
}

export function typesAttr(ds: readonly DType[]): AttrValue {
  return a.types(ds.map(typeOf));
}

export function shapesAttr(shapes: ReadonlyArray<number[] | null>): AttrValue {
  return create(AttrValueSchema, { value: { case: 'list', value: create(AttrValue_ListValueSchema, { shape: shapes.map((s) => shapeProto(s)) }) } });
}

/** A function name free in the library (names are global to the GraphDef). */
export function functionName(cx: Cx, base: string): string {
  const clean = sanitizeName(base).replace(/[^A-Za-z0-9_]/g, '_');
  const taken = new Set(cx.functions.map((f) => f.signature?.name));
  let n = clean;
  for (let k = 1; taken.has(n); k++) n = `${clean}_${k}`;
  return n;
}

export interface FunctionArg {
  name: string;
  dtype: DType;
}

/**
 * Closes function scope `s` into a library FunctionDef: arguments `args` then the captures, results
 * `rets` (each through its own Identity, so a result may be an argument or repeat another one).
 */
export function finishFunction(s: ScopeCx, name: string, args: readonly FunctionArg[], rets: ReadonlyArray<{ ref: string; dtype: DType }>): FunctionDef {
  const all = [...args, ...s.captures!.list.map((c) => ({ name: c.arg, dtype: c.dtype }))];
  const argNames = new Set(all.map((x) => x.name));
  const retNames = rets.map((r, k) => s.add('Identity', [r.ref], { T: a.dt(r.dtype) }, `ret_${k}`));
  const ops = new Map(s.nodes.map((n) => [n.name, n.op]));
  const ref = (input: string): string => {
    if (input.startsWith('^')) return input;
    const p = parseInput(input);
    if (argNames.has(p.node)) {
      if (p.index !== 0) return s.fail(ErrorCodes.MALFORMED, `function argument '${p.node}' read at output ${p.index}`);
      return p.node;
    }
    const op = ops.get(p.node);
    if (op === undefined) return s.fail(ErrorCodes.MALFORMED, `function '${name}' reads '${input}', which it does not define`);
    return `${p.node}:${outArg(op, p.index)}`;
  };
  const nodeDef = s.nodes.map((n) => ({ ...n, input: n.input.map(ref) }));
  const fn = create(FunctionDefSchema, {
    signature: create(OpDefSchema, {
      name,
      inputArg: all.map((x) => create(OpDef_ArgDefSchema, { name: x.name, type: typeOf(x.dtype) })),
      outputArg: rets.map((r, k) => create(OpDef_ArgDefSchema, { name: `output_${k}`, type: typeOf(r.dtype) })),
    }),
    nodeDef,
    ret: Object.fromEntries(retNames.map((n, k) => [`output_${k}`, `${n}:output:0`])),
  });
  s.functions.push(fn);
  return fn;
}

/** Static shapes of two values merged: equal dims kept, others unknown; null when ranks differ. */
export function mergeShapes(x: number[] | null, y: number[] | null): number[] | null {
  if (!x || !y || x.length !== y.length) return null;
  return x.map((d, i) => (d === y[i] ? d : -1));
}

/**
 * The functions `nodes` call, directly or through other functions, in library order: bodies converted
 * more than once (a Loop body whose variables changed shape) leave unused copies behind.
 */
export function usedFunctions(nodes: readonly NodeDef[], functions: readonly FunctionDef[]): FunctionDef[] {
  const byName = new Map(functions.map((f) => [f.signature?.name ?? '', f]));
  const used = new Set<string>();
  const stack = [...nodes];
  while (stack.length > 0) {
    const n = stack.pop()!;
    for (const v of Object.values(n.attr)) {
      const name = v.value.case === 'func' ? v.value.value.name : undefined;
      const f = name !== undefined ? byName.get(name) : undefined;
      if (!f || used.has(name!)) continue;
      used.add(name!);
      stack.push(...f.nodeDef);
    }
  }
  return functions.filter((f) => used.has(f.signature?.name ?? ''));
}
