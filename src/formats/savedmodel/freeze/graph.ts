/**
 * The freezing walk: from a signature's outputs back to its inputs, through data edges only,
 * rewriting what TF.js (or any plain executor) cannot run:
 *  - function calls (StatefulPartitionedCall, PartitionedCall, or a library function used as an op)
 *    are inlined: inner nodes get the call's name as prefix, arguments become the caller's inputs,
 *    `node:outarg:i` references become flat `node:k`, and the call node itself becomes an IdentityN
 *    of the function's results so that references to `call:k` (signature outputs included) stay valid;
 *  - variable reads (ReadVariableOp of a VarHandleOp, a TF1 VariableV2 read by Identity) become Consts
 *    holding the checkpoint value; ResourceGather becomes GatherV2 of such a Const;
 *  - control inputs are dropped: a frozen graph has no state whose updates need ordering.
 * Only nodes the outputs need are visited, so saver, initializer and training nodes are never
 * touched, and functions are inlined lazily (a 6 GB model's unused signatures cost nothing).
 */
import { create } from '@bufbuild/protobuf';
import type { DType } from '../../../core/dtype.js';
import { ErrorCodes, ModelsmithError, type Diagnostic } from '../../../core/errors.js';
import type { LazyTensor } from '../../weights.js';
import { loadStrings } from '../bundle/read.js';
import { attr, int32Tensor, node, shapeProto, tfDtype } from '../build.js';
import { GraphDefSchema, NodeDefSchema, type AttrValue, type FunctionDef, type GraphDef, type NodeDef } from '../gen/tensorflow/graph_pb.js';
import { TensorProtoSchema, type DataType } from '../gen/tensorflow/types_pb.js';
import { parseInput } from '../graph-utils.js';
import { flatOutputIndex } from './output-args.js';
import { VARIABLE_OPS } from './variables.js';

export interface FreezeEndpoint {
  key: string;
  node: string;
  index: number;
  dtype: DType;
  shape: number[] | null;
}

export interface FreezeGraphInput {
  graph: GraphDef;
  signature: string;
  inputs: FreezeEndpoint[];
  outputs: FreezeEndpoint[];
  /** Top-level variable node → its checkpoint value. */
  values: Map<string, LazyTensor>;
  path?: string;
}

/** Inlining depth and size caps: recursive or hostile libraries end in E_LIMIT, not a hang. */
export const MAX_INLINE_DEPTH = 64;
export const MAX_FROZEN_NODES = 250_000;

const CALL_OPS = new Set(['StatefulPartitionedCall', 'PartitionedCall']);
/** Ops that write a variable: a signature whose outputs need one cannot be frozen. */
const WRITES = /^(Assign|AssignAdd|AssignSub|CountUpTo|DestroyResourceOp|Scatter\w*|ResourceScatter\w*|Apply\w*|SparseApply\w*|ResourceApply\w*|ResourceSparseApply\w*|ResourceCountUpTo|Assign\w*VariableOp)$/;
const DT_BOOL = 10 as DataType;
const DT_INT32 = 3 as DataType;

class Freezer {
  private readonly nodes = new Map<string, NodeDef>();
  private readonly depth = new Map<string, number>();
  private readonly library: Map<string, FunctionDef>;
  private readonly emitted = new Map<string, NodeDef>();
  private readonly inputs: Map<string, FreezeEndpoint>;
  private readonly frozenVariables = new Set<string>();
  private readonly inlinedFunctions = new Set<string>();
  /** Call nodes already inlined: now IdentityN nodes whose input k is the call's output k. */
  private readonly inlined = new Set<string>();
  private inlinedCalls = 0;

  constructor(private readonly x: FreezeGraphInput) {
    for (const n of x.graph.node) {
      if (this.nodes.has(n.name)) throw this.err(ErrorCodes.MALFORMED, `duplicate node name '${n.name}'`, n.name);
      this.nodes.set(n.name, n);
    }
    this.library = new Map((x.graph.library?.function ?? []).map((f) => [f.signature?.name ?? '', f]));
    this.inputs = new Map(x.inputs.map((i) => [i.node, i]));
  }

  private err(code: (typeof ErrorCodes)[keyof typeof ErrorCodes], message: string, op?: string): ModelsmithError {
    return new ModelsmithError(code, `signature '${this.x.signature}': ${message}`, { format: 'savedmodel', ...(this.x.path !== undefined ? { path: this.x.path } : {}), ...(op !== undefined ? { op } : {}) });
  }

  private calledFunction(n: NodeDef): string | undefined {
    if (CALL_OPS.has(n.op)) {
      const f = n.attr['f']?.value;
      if (f?.case !== 'func') throw this.err(ErrorCodes.MALFORMED, `${n.op} without a function attr 'f'`, n.name);
      return f.value.name;
    }
    return this.library.has(n.op) ? n.op : undefined;
  }

  /** The variable node a (resource or ref) tensor comes from, through Identity/IdentityN, if any. */
  private variableOf(input: string): NodeDef | undefined {
    let ref = parseInput(input);
    for (let hops = 0; hops < 64; hops++) {
      const n = this.nodes.get(ref.node);
      if (!n) return undefined;
      if (VARIABLE_OPS.has(n.op)) return n;
      const data = n.input.filter((i) => !i.startsWith('^'));
      if (n.op === 'Identity' && data.length > 0) ref = parseInput(data[0]!);
      else if (n.op === 'IdentityN' && ref.index < data.length) ref = parseInput(data[ref.index]!);
      else return undefined;
    }
    return undefined;
  }

  /**
   * A tensor reference with calls seen through: the call is inlined if needed and `call:k` becomes
   * the tensor its function returns, so consumers read the result directly.
   */
  private resolve(input: string): string {
    for (let hops = 0; hops < MAX_FROZEN_NODES; hops++) {
      const r = parseInput(input);
      const n = this.nodes.get(r.node);
      if (!n || this.inputs.has(r.node)) return input;
      if (!this.inlined.has(r.node) && this.calledFunction(n) !== undefined) {
        this.inline(n);
        continue;
      }
      if (!this.inlined.has(r.node)) return input;
      const next = n.input[r.index];
      if (next === undefined) throw this.err(ErrorCodes.MALFORMED, `'${input}' reads output ${r.index} of a call with ${n.input.length} outputs`, r.node);
      input = next;
    }
    throw this.err(ErrorCodes.LIMIT, `cannot resolve '${input}'`);
  }

  /** Tensor names of the outputs in the frozen graph (`node`, or `node:k` for k > 0). */
  outputNames: string[] = [];

  async run(): Promise<{ graph: GraphDef; diagnostics: Diagnostic[] }> {
    this.outputNames = this.x.outputs.map((o) => {
      const r = parseInput(this.resolve(`${o.node}:${o.index}`));
      return r.index === 0 ? r.node : `${r.node}:${r.index}`;
    });
    // Unused inputs are kept too: callers feed every signature input.
    const stack = [...this.outputNames.map((o) => parseInput(o).node), ...this.x.inputs.map((i) => i.node)].reverse();
    while (stack.length > 0) {
      const name = stack.pop()!;
      if (this.emitted.has(name)) continue;
      const n = this.nodes.get(name);
      if (!n) throw this.err(ErrorCodes.MALFORMED, `node '${name}' is read but no node has that name`, name);
      if (this.inputs.has(name)) {
        const e = this.emitInput(n, this.inputs.get(name)!);
        stack.push(...e);
        continue;
      }
      if (this.calledFunction(n) !== undefined) {
        this.inline(n);
        stack.push(name);
        continue;
      }
      stack.push(...(await this.emit(n)));
    }
    return { graph: this.result(), diagnostics: this.diagnostics() };
  }

  /** Signature inputs become Placeholders (a PlaceholderWithDefault keeps its default). */
  private emitInput(n: NodeDef, e: FreezeEndpoint): string[] {
    if (e.index !== 0) throw this.err(ErrorCodes.UNSUPPORTED, `input '${e.key}' is output ${e.index} of '${n.name}'; only :0 inputs can be frozen`, n.name);
    if (n.op === 'Placeholder') {
      this.emitted.set(n.name, create(NodeDefSchema, { ...n, input: [] }));
      return [];
    }
    if (n.op === 'PlaceholderWithDefault') {
      const data = n.input.filter((i) => !i.startsWith('^')).map((i) => this.resolve(i));
      this.emitted.set(n.name, create(NodeDefSchema, { ...n, input: data }));
      return data.map((i) => parseInput(i).node);
    }
    // TF1 graphs may feed any tensor (half_plus_two feeds an Identity of ParseExample's output).
    this.emitted.set(n.name, node(n.name, 'Placeholder', [], { dtype: attr.type(tfDtype(e.dtype, { tensor: e.key })), shape: attr.shape(e.shape) }));
    return [];
  }

  private async emit(n: NodeDef): Promise<string[]> {
    const data = n.input.filter((i) => !i.startsWith('^')).map((i) => this.resolve(i));
    if (n.op === 'Placeholder') {
      // TF's loader refuses this too ("A SavedModel signature needs an input for each placeholder").
      throw this.err(ErrorCodes.MALFORMED, `the outputs need placeholder '${n.name}', which is not a signature input`, n.name);
    }
    if (n.op === 'ReadVariableOp') {
      const v = data[0] !== undefined ? this.variableOf(data[0]) : undefined;
      if (!v) throw this.err(ErrorCodes.UNSUPPORTED, `ReadVariableOp '${n.name}' reads a resource that is not a variable of the SavedModel`, n.name);
      this.emitted.set(n.name, await this.variableConst(n.name, v, n.attr['dtype']));
      return [];
    }
    if (n.op === 'VariableV2' || n.op === 'Variable' || n.op === 'VariableV1') {
      // A TF1 ref variable read by value (through `a/read` = Identity(a)): the node itself becomes the value.
      this.emitted.set(n.name, await this.variableConst(n.name, n, n.attr['dtype']));
      return [];
    }
    if (n.op === 'VarIsInitializedOp' && data[0] !== undefined && this.variableOf(data[0])) {
      this.emitted.set(n.name, node(n.name, 'Const', [], { dtype: attr.type(DT_BOOL), value: attr.tensor(create(TensorProtoSchema, { dtype: DT_BOOL, boolVal: [true] })) }));
      return [];
    }
    if (n.op === 'ResourceGather' && data.length >= 2) {
      const v = this.variableOf(data[0]!);
      if (v) return this.emitGather(n, v, data);
    }
    for (const i of data) {
      const v = this.variableOf(i);
      if (!v) continue;
      if (WRITES.test(n.op)) throw this.err(ErrorCodes.UNSUPPORTED, `the outputs need ${n.op} '${n.name}', which writes variable '${v.name}': a frozen graph holds no state`, n.name);
      if (v.op === 'VarHandleOp') throw this.err(ErrorCodes.UNSUPPORTED, `${n.op} '${n.name}' takes the handle of variable '${v.name}'; only reads (ReadVariableOp, ResourceGather) can be frozen`, n.name);
    }
    this.emitted.set(n.name, create(NodeDefSchema, { ...n, input: data }));
    return data.map((i) => parseInput(i).node);
  }

  private async emitGather(n: NodeDef, v: NodeDef, data: string[]): Promise<string[]> {
    const params = `${n.name}/params`;
    const axis = `${n.name}/axis`;
    for (const extra of [params, axis]) if (this.nodes.has(extra)) throw this.err(ErrorCodes.MALFORMED, `node '${extra}' exists; cannot rewrite ResourceGather '${n.name}'`, n.name);
    const c = await this.variableConst(params, v, n.attr['dtype']);
    this.emitted.set(params, c);
    this.emitted.set(axis, node(axis, 'Const', [], { dtype: attr.type(DT_INT32), value: attr.tensor(int32Tensor([0], [])) }));
    const attrs: Record<string, AttrValue> = { Taxis: attr.type(DT_INT32) };
    if (n.attr['dtype']) attrs['Tparams'] = n.attr['dtype'];
    if (n.attr['Tindices']) attrs['Tindices'] = n.attr['Tindices'];
    if (n.attr['batch_dims']) attrs['batch_dims'] = n.attr['batch_dims'];
    this.emitted.set(n.name, node(n.name, 'GatherV2', [params, data[1]!, axis], attrs));
    return [parseInput(data[1]!).node];
  }

  private async variableConst(name: string, v: NodeDef, wanted: AttrValue | undefined): Promise<NodeDef> {
    const t = this.x.values.get(v.name);
    if (!t) throw this.err(ErrorCodes.MALFORMED, `variable '${v.name}' has no value in the checkpoint`, v.name);
    const dt = tfDtype(t.dtype, { tensor: t.name });
    const w = wanted?.value;
    if (w?.case === 'type' && w.value !== dt && w.value !== dt + 100) {
      throw new ModelsmithError(ErrorCodes.DTYPE, `signature '${this.x.signature}': '${name}' reads variable '${v.name}' as DataType ${w.value}, the checkpoint holds ${t.dtype}`, { format: 'savedmodel', tensor: t.name, op: name, ...(this.x.path !== undefined ? { path: this.x.path } : {}) });
    }
    const proto = t.dtype === 'string'
      ? create(TensorProtoSchema, { dtype: dt, tensorShape: shapeProto(t.shape), stringVal: await loadStrings(t) })
      : create(TensorProtoSchema, { dtype: dt, tensorShape: shapeProto(t.shape), tensorContent: await t.load() });
    this.frozenVariables.add(v.name);
    return node(name, 'Const', [], { dtype: attr.type(dt), value: attr.tensor(proto) });
  }

  /** Replaces call node `n` by an IdentityN of its function's results and adds the function body. */
  private inline(n: NodeDef): void {
    const fname = this.calledFunction(n)!;
    const fn = this.library.get(fname);
    if (!fn?.signature) throw this.err(ErrorCodes.MALFORMED, `node '${n.name}' calls function '${fname}', which the library does not define`, n.name);
    const depth = (this.depth.get(n.name) ?? 0) + 1;
    if (depth > MAX_INLINE_DEPTH) throw this.err(ErrorCodes.LIMIT, `function calls nest deeper than ${MAX_INLINE_DEPTH} (recursive function '${fname}'?)`, n.name);
    if (this.nodes.size + fn.nodeDef.length > MAX_FROZEN_NODES) throw this.err(ErrorCodes.LIMIT, `inlining '${fname}' would exceed ${MAX_FROZEN_NODES} nodes`, n.name);
    const sig = fn.signature;
    for (const a of [...sig.inputArg, ...sig.outputArg]) {
      if (a.numberAttr || a.typeListAttr) throw this.err(ErrorCodes.UNSUPPORTED, `function '${fname}' has list argument '${a.name}'`, n.name);
    }
    const data = n.input.filter((i) => !i.startsWith('^'));
    if (data.length !== sig.inputArg.length) {
      throw this.err(ErrorCodes.MALFORMED, `node '${n.name}' passes ${data.length} inputs to '${fname}', which takes ${sig.inputArg.length}`, n.name);
    }
    const args = new Map(sig.inputArg.map((a, i) => [a.name, data[i]!]));
    let prefix = `${n.name}/`;
    for (let k = 1; fn.nodeDef.some((m) => this.nodes.has(prefix + m.name)); k++) prefix = `${n.name}/_inlined${k}/`;
    const inner = new Map(fn.nodeDef.map((m) => [m.name, m]));
    const ref = (s: string, where: string): string => {
      const arg = args.get(s);
      if (arg !== undefined) return arg;
      const parts = s.split(':');
      const m = inner.get(parts[0]!);
      if (!m) throw this.err(ErrorCodes.MALFORMED, `function '${fname}': '${where}' reads '${s}', which is neither an argument nor a node`, n.name);
      if (parts.length === 1) return prefix + m.name;
      const idx = Number(parts[parts.length - 1]);
      if (!Number.isSafeInteger(idx) || idx < 0) throw this.err(ErrorCodes.MALFORMED, `function '${fname}': bad reference '${s}'`, n.name);
      const flat = parts.length === 3 ? flatOutputIndex(m, parts[1]!, idx) : idx;
      if (flat === undefined) throw this.err(ErrorCodes.MALFORMED, `function '${fname}': ${m.op} '${m.name}' has no output '${parts[1]}'`, n.name);
      return flat === 0 ? prefix + m.name : `${prefix}${m.name}:${flat}`;
    };
    for (const m of fn.nodeDef) {
      for (const [k, a] of Object.entries(m.attr)) {
        if (a.value.case === 'placeholder') throw this.err(ErrorCodes.UNSUPPORTED, `function '${fname}' is polymorphic (attr '${k}' of '${m.name}' is a placeholder)`, n.name);
      }
      const name = prefix + m.name;
      this.nodes.set(name, create(NodeDefSchema, { ...m, name, input: m.input.filter((i) => !i.startsWith('^')).map((i) => ref(i, m.name)) }));
      this.depth.set(name, depth);
    }
    const results = sig.outputArg.map((a) => {
      const r = fn.ret[a.name];
      if (r === undefined) throw this.err(ErrorCodes.MALFORMED, `function '${fname}' returns nothing for output '${a.name}'`, n.name);
      return ref(r, `ret ${a.name}`);
    });
    const tout = n.attr['Tout']?.value;
    const types = tout?.case === 'list' && tout.value.type.length === results.length ? tout.value.type : sig.outputArg.map((a) => a.type);
    this.nodes.set(n.name, results.length > 0 ? node(n.name, 'IdentityN', results, { T: attr.types(types) }) : node(n.name, 'NoOp', []));
    this.inlined.add(n.name);
    this.inlinedCalls++;
    this.inlinedFunctions.add(fname);
  }

  private result(): GraphDef {
    const kept = [...this.emitted.values()];
    // If/While branches stay functions (TF.js runs them); everything they reach is kept as is.
    const used = new Map<string, FunctionDef>();
    const stack = [...kept];
    while (stack.length > 0) {
      const m = stack.pop()!;
      for (const a of Object.values(m.attr)) {
        const names = a.value.case === 'func' ? [a.value.value.name] : a.value.case === 'list' ? a.value.value.func.map((f) => f.name) : [];
        for (const f of names) {
          const fn = this.library.get(f);
          if (fn && !used.has(f)) {
            used.set(f, fn);
            stack.push(...fn.nodeDef);
          }
        }
      }
    }
    return create(GraphDefSchema, {
      node: kept,
      ...(this.x.graph.versions ? { versions: this.x.graph.versions } : {}),
      ...(used.size > 0 ? { library: { function: [...used.values()] } as never } : {}),
    });
  }

  private diagnostics(): Diagnostic[] {
    const out: Diagnostic[] = [{
      level: 'info',
      code: 'TF_FREEZE_SUMMARY',
      message: `signature '${this.x.signature}': ${this.emitted.size} nodes kept, ${this.inlinedCalls} function calls inlined, ${this.frozenVariables.size} variables turned into Consts`,
    }];
    // Writes the signature performs besides computing its outputs (a training step, a counter) are lost.
    const writes = new Map<string, number>();
    for (const f of this.inlinedFunctions) {
      for (const m of this.library.get(f)?.nodeDef ?? []) if (WRITES.test(m.op)) writes.set(m.op, (writes.get(m.op) ?? 0) + 1);
    }
    if (writes.size > 0) {
      out.push({
        level: 'warning',
        code: 'TF_FREEZE_STATE_DROPPED',
        message: `signature '${this.x.signature}' also updates variables (${[...writes].map(([op, k]) => (k > 1 ? `${op} ×${k}` : op)).join(', ')}); the frozen graph computes its outputs only`,
      });
    }
    return out;
  }
}

/** Frozen graph, the tensor to fetch for each output (in order), and diagnostics. */
export async function freezeGraph(x: FreezeGraphInput): Promise<{ graph: GraphDef; outputNames: string[]; diagnostics: Diagnostic[] }> {
  const f = new Freezer(x);
  const r = await f.run();
  return { ...r, outputNames: f.outputNames };
}
