/**
 * The executor: runs an ONNX main graph on the registered op handlers and replays a recorded tape
 * backwards for gradients. Built once per model (`createEngine`): everything that can be refused is
 * refused there (unsupported ops all listed in one error, handler `check`s, dangling inputs, cycles),
 * so a training loop never fails half-way through an epoch on a model it accepted.
 */
import { clone } from '@bufbuild/protobuf';
import { ModelProtoSchema, TensorProtoSchema, type ModelProto, type NodeProto, type ValueInfoProto } from 'onnx-buf';
import { dtypeFromOnnx } from '../core/dtype.js';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import { numel } from '../core/tensor.js';
import { float32TensorProto } from '../formats/onnx/build.js';
import { onnxModel, type OnnxModel } from '../formats/onnx/read.js';
import { modelTensorContext, tensorFromProto } from '../formats/onnx/tensor.js';
import { initKernels, type Kernels } from '../kernels/loader.js';
import { Attrs } from './attrs.js';
import { getOp } from './registry.js';
import type { EngineApi, FValue, OpContext, OpDef, RunOptions, Tape, Value } from './types.js';
import { fvalue, opLabel, toValue } from './values.js';
import './ops/index.js';

export interface EngineOptions {
  /** Kernel instance (default: `initKernels()`). */
  kernels?: Kernels;
  /** Model path for messages (default: the OnnxModel's path). */
  path?: string;
}

/** What the last `run`/`forward` kept alive: observable proof that intermediate values are released. */
export interface RunStats {
  nodesRun: number;
  /** Largest number of intermediate values held at once. */
  peakLive: number;
  /** Intermediate values dropped once no later node needed them. */
  freed: number;
}

interface Step {
  node: NodeProto;
  def: OpDef;
  ctx: OpContext;
  /** The same context with `training` set, made once rather than per recorded step. */
  trainCtx: OpContext;
  label: string;
}

interface Plan {
  steps: Step[];
  /** Names to drop after step i. */
  freeAfter: string[][];
  /** Graph inputs the plan reads. */
  inputs: string[];
}

interface TapeEntry {
  step: Step;
  inputs: (Value | undefined)[];
  outputs: Value[];
  saved: unknown;
}

interface TapeImpl extends Tape {
  owner: Engine;
  entries: TapeEntry[];
  /** Values that depend on a parameter or a float graph input (only these receive gradients). */
  requiresGrad: Set<string>;
  dims: Map<string, number[]>;
}

interface InputSpec {
  name: string;
  dtype?: string;
  /** Fixed dims as numbers, symbolic ones as undefined; undefined when the rank is unknown. */
  dims?: (number | undefined)[];
}

const SUBGRAPH_OPS = new Set(['If', 'Loop', 'Scan']);
const isDefaultDomain = (d: string): boolean => d === '' || d === 'ai.onnx';

function modelOf(model: OnnxModel | ModelProto, path?: string): OnnxModel {
  if ((model as OnnxModel).format === 'onnx' && (model as OnnxModel).proto) return model as OnnxModel;
  return onnxModel(model as ModelProto, path !== undefined ? { path } : {});
}

function protoOf(model: OnnxModel | ModelProto): ModelProto {
  return (model as OnnxModel).format === 'onnx' && (model as OnnxModel).proto ? (model as OnnxModel).proto : (model as ModelProto);
}

/**
 * Every main-graph node the engine cannot run: ops from other domains, ops with no handler, and
 * subgraph ops (If/Loop/Scan: the executor runs one flat graph). Listed in graph order.
 */
export function unsupportedOps(model: OnnxModel | ModelProto): { opType: string; node: string }[] {
  const out: { opType: string; node: string }[] = [];
  for (const n of protoOf(model).graph?.node ?? []) {
    const opType = isDefaultDomain(n.domain) ? n.opType : `${n.domain}::${n.opType}`;
    const subgraph = SUBGRAPH_OPS.has(n.opType) || n.attribute.some((a) => a.g !== undefined || a.graphs.length > 0);
    if (!isDefaultDomain(n.domain) || subgraph || !getOp(n.opType)) out.push({ opType, node: n.name });
  }
  return out;
}

/** Loads the model's initializers (external data included) and builds the executor. */
export async function createEngine(model: OnnxModel | ModelProto, opts: EngineOptions = {}): Promise<Engine> {
  const m = modelOf(model, opts.path);
  const path = opts.path ?? m.path;
  const graph = m.proto.graph;
  if (!graph) throw new ModelsmithError(ErrorCodes.MALFORMED, 'the model has no graph', { path, format: 'onnx' });
  const bad = unsupportedOps(m);
  if (bad.length) {
    const list = bad.map((b) => `${b.opType} (${b.node || 'unnamed'})`).join(', ');
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `the execution engine cannot run ${bad.length} node(s): ${list}`, { path, format: 'onnx' });
  }
  if (graph.sparseInitializer.length) {
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `sparse initializers (${graph.sparseInitializer.length}) are not supported by the engine`, { path, format: 'onnx' });
  }
  const kernels = opts.kernels ?? (await initKernels());
  const tctx = modelTensorContext(m);
  if (opts.path !== undefined) tctx.path = opts.path;
  const inits = new Map<string, Value>();
  for (const tp of graph.initializer) {
    try {
      inits.set(tp.name, toValue(await tensorFromProto(tp, tctx)));
    } catch (e) {
      if (e instanceof ModelsmithError && e.path !== undefined) throw e;
      const code = e instanceof ModelsmithError ? e.code : ErrorCodes.MALFORMED;
      throw new ModelsmithError(code, `initializer: ${stripCode(e)}`, { path, format: 'onnx', tensor: tp.name, cause: e });
    }
  }
  return new Engine(m.proto, inits, kernels, path);
}

function stripCode(e: unknown): string {
  return String((e as Error)?.message ?? e).replace(/^E_[A-Z_]+: /, '');
}

function opsetOf(proto: ModelProto): number {
  const o = proto.opsetImport.find((x) => isDefaultDomain(x.domain));
  // No default-domain import: IR < 3 models implied opset 1.
  return o ? Number(o.version) : 1;
}

function inputSpec(vi: ValueInfoProto): InputSpec {
  const spec: InputSpec = { name: vi.name };
  if (vi.type?.value.case !== 'tensorType') return spec;
  const tt = vi.type.value.value;
  const dt = dtypeFromOnnx(tt.elemType);
  if (dt) spec.dtype = dt.name;
  if (tt.shape) spec.dims = tt.shape.dim.map((d) => (d.value.case === 'dimValue' ? Number(d.value.value) : undefined));
  return spec;
}

/** Own properties only: a value named `constructor` must not find Object.prototype's. */
const feedOf = (feeds: Record<string, Value>, name: string): Value | undefined => (Object.hasOwn(feeds, name) ? feeds[name] : undefined);

/** Distinct output selections whose plans are kept (calibration asks for a few; a loop asking for many must not grow memory). */
const MAX_PLANS = 32;

function addArrays(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! + b[i]!;
  return out;
}

const fmtDims = (d: readonly (number | undefined)[]): string => `[${d.map((x) => (x === undefined ? '?' : x)).join(',')}]`;

export class Engine implements EngineApi {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly params = new Map<string, FValue>();
  readonly opset: number;
  /** Statistics of the last `run`/`forward`. */
  lastRun: RunStats = { nodesRun: 0, peakLive: 0, freed: 0 };

  private readonly consts = new Map<string, Value>();
  private readonly steps: Step[] = [];
  private readonly inputSpecs = new Map<string, InputSpec>();
  private readonly plans = new Map<string, Plan>();

  constructor(
    private readonly proto: ModelProto,
    inits: Map<string, Value>,
    readonly kernels: Kernels,
    private readonly path: string,
  ) {
    const graph = proto.graph!;
    this.opset = opsetOf(proto);
    for (const [name, v] of inits) {
      if (v.dtype === 'float32') this.params.set(name, v as FValue);
      else this.consts.set(name, v);
    }
    // Old exporters list every initializer as a graph input too; those are parameters, not feeds.
    const inputs = graph.input.filter((vi) => !inits.has(vi.name));
    this.inputNames = inputs.map((vi) => vi.name);
    for (const vi of inputs) this.inputSpecs.set(vi.name, inputSpec(vi));
    this.outputNames = graph.output.map((vi) => vi.name);

    const unsupported: string[] = [];
    for (const node of graph.node) {
      const label = opLabel(node);
      const def = isDefaultDomain(node.domain) ? getOp(node.opType) : undefined;
      if (!def) {
        // createEngine refused these already; a direct `new Engine` still gets the same answer.
        unsupported.push(`${label}: no handler`);
        continue;
      }
      const ctx: OpContext = { node, attrs: new Attrs(node), opset: this.opset, kernels, training: false };
      try {
        def.check?.({ node, attrs: ctx.attrs, opset: this.opset });
      } catch (e) {
        if (e instanceof ModelsmithError && e.code === ErrorCodes.UNSUPPORTED) {
          unsupported.push(`${label}: ${stripCode(e).replace(/ \(op '[^']*'\)$/, '')}`);
          continue;
        }
        throw this.wrap(e, label);
      }
      if (node.opType === 'Constant' && node.input.length === 0 && node.output.length === 1 && node.output[0] !== '') {
        // Folded now: a Constant's value never changes, so it is a constant like an int64 initializer.
        const v = this.call(def, ctx, [], label).outputs[0]!;
        this.consts.set(node.output[0]!, v);
        continue;
      }
      this.steps.push({ node, def, ctx, trainCtx: { ...ctx, training: true }, label });
    }
    if (unsupported.length) {
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `the execution engine cannot run ${unsupported.length} node(s): ${unsupported.join('; ')}`, { path: this.path, format: 'onnx' });
    }
    this.steps = this.topoSort(this.steps);
  }

  // ----------------------------------------------------------------------------------------------
  // graph structure
  // ----------------------------------------------------------------------------------------------

  private isSource(name: string): boolean {
    return this.inputSpecs.has(name) || this.params.has(name) || this.consts.has(name);
  }

  /** Kahn's algorithm, ready nodes taken in file order (keeps the exporter's order when it is already sorted). */
  private topoSort(steps: Step[]): Step[] {
    const producer = new Map<string, number>();
    steps.forEach((s, i) => {
      for (const o of s.node.output) {
        if (o === '') continue;
        if (producer.has(o) || this.isSource(o)) throw new ModelsmithError(ErrorCodes.MALFORMED, `value '${o}' is produced twice`, { path: this.path, op: s.label });
        producer.set(o, i);
      }
    });
    const consumers: number[][] = steps.map(() => []);
    const pending = new Int32Array(steps.length);
    steps.forEach((s, i) => {
      for (const name of new Set(s.node.input)) {
        if (name === '' || this.isSource(name)) continue;
        const p = producer.get(name);
        if (p === undefined) throw new ModelsmithError(ErrorCodes.MALFORMED, `input '${name}' is not produced by any node, initializer or graph input`, { path: this.path, op: s.label });
        consumers[p]!.push(i);
        pending[i]!++;
      }
    });
    const order: Step[] = [];
    const ready: number[] = [];
    for (let i = 0; i < steps.length; i++) if (pending[i] === 0) ready.push(i);
    for (let k = 0; k < ready.length; k++) {
      const i = ready[k]!;
      order.push(steps[i]!);
      for (const c of consumers[i]!) if (--pending[c]! === 0) ready.push(c);
    }
    if (order.length !== steps.length) {
      const stuck = steps.filter((_, i) => pending[i]! > 0).map((s) => s.label);
      throw new ModelsmithError(ErrorCodes.MALFORMED, `the graph has a cycle through ${stuck.slice(0, 5).join(', ')}${stuck.length > 5 ? ', …' : ''}`, { path: this.path });
    }
    return order;
  }

  /** The steps needed for `wanted`, and when each intermediate value can be dropped. */
  private plan(wanted: readonly string[]): Plan {
    const key = wanted.join('\0');
    const hit = this.plans.get(key);
    if (hit) return hit;
    const produced = new Set(this.steps.flatMap((s) => s.node.output));
    for (const w of wanted) {
      if (w === '' || (!produced.has(w) && !this.isSource(w))) {
        throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `unknown value '${w}' requested as an output`, { path: this.path });
      }
    }
    const needed = new Set(wanted);
    const steps: Step[] = [];
    for (let i = this.steps.length - 1; i >= 0; i--) {
      const s = this.steps[i]!;
      if (!s.node.output.some((o) => needed.has(o))) continue;
      steps.push(s);
      for (const n of s.node.input) if (n !== '') needed.add(n);
    }
    steps.reverse();
    const lastUse = new Map<string, number>();
    steps.forEach((s, i) => {
      for (const n of s.node.input) lastUse.set(n, i);
      // An output nobody reads (a Dropout mask) is dropped right after it is made.
      for (const o of s.node.output) if (!lastUse.has(o)) lastUse.set(o, i);
    });
    const keep = new Set(wanted);
    const freeAfter: string[][] = steps.map(() => []);
    for (const [name, i] of lastUse) if (name !== '' && !keep.has(name) && !this.isSource(name)) freeAfter[i]!.push(name);
    const plan: Plan = { steps, freeAfter, inputs: this.inputNames.filter((n) => needed.has(n)) };
    if (this.plans.size >= MAX_PLANS) this.plans.clear();
    this.plans.set(key, plan);
    return plan;
  }

  // ----------------------------------------------------------------------------------------------
  // execution
  // ----------------------------------------------------------------------------------------------

  private wrap(e: unknown, label: string): ModelsmithError {
    if (e instanceof ModelsmithError && e.op !== undefined) return e;
    // Everything leaving the engine is a ModelsmithError naming the node: a RangeError here is an
    // allocation the data asked for (E_LIMIT), anything else a handler refusing its inputs.
    const code = e instanceof ModelsmithError ? e.code : e instanceof RangeError ? ErrorCodes.LIMIT : ErrorCodes.KERNEL_ARG;
    return new ModelsmithError(code, stripCode(e), { path: this.path, op: label, cause: e });
  }

  private call(def: OpDef, ctx: OpContext, inputs: (Value | undefined)[], label: string) {
    try {
      return def.forward(ctx, inputs);
    } catch (e) {
      throw this.wrap(e, label);
    }
  }

  private checkFeeds(feeds: Record<string, Value>, needed: readonly string[]): void {
    for (const name of Object.keys(feeds)) {
      if (!this.inputSpecs.has(name)) throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `'${name}' is not a graph input (inputs: ${this.inputNames.join(', ')})`, { path: this.path, tensor: name });
    }
    for (const name of needed) {
      const v = feedOf(feeds, name);
      const spec = this.inputSpecs.get(name)!;
      const want = `${spec.dtype ?? 'any type'} ${spec.dims ? fmtDims(spec.dims) : '(any shape)'}`;
      if (!v) throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `input '${name}' is missing (expected ${want})`, { path: this.path, tensor: name });
      let ok = spec.dtype === undefined || spec.dtype === v.dtype;
      if (ok && spec.dims) ok = spec.dims.length === v.dims.length && spec.dims.every((d, i) => d === undefined || d === v.dims[i]);
      if (!ok) throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `input '${name}' expects ${want}, got ${v.dtype} ${fmtDims(v.dims)}`, { path: this.path, tensor: name });
      if (numel(v.dims, { tensor: name }) !== v.data.length) {
        throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `input '${name}' has ${v.data.length} elements for shape ${fmtDims(v.dims)}`, { path: this.path, tensor: name });
      }
    }
  }

  private execute(feeds: Record<string, Value>, opts: RunOptions | undefined, tape: TapeImpl | undefined): Record<string, Value> {
    const wanted = opts?.outputs ?? this.outputNames;
    const plan = this.plan(wanted);
    this.checkFeeds(feeds, plan.inputs);
    const live = new Map<string, Value>();
    const lookup = (n: string): Value | undefined => live.get(n) ?? feedOf(feeds, n) ?? this.params.get(n) ?? this.consts.get(n);
    const stats: RunStats = { nodesRun: 0, peakLive: 0, freed: 0 };
    if (tape) {
      for (const n of this.params.keys()) tape.requiresGrad.add(n);
      for (const [n, v] of Object.entries(feeds)) if (v.dtype === 'float32') tape.requiresGrad.add(n);
    }
    plan.steps.forEach((s, i) => {
      const inputs = s.node.input.map((n) => (n === '' ? undefined : lookup(n)));
      const ctx = tape ? s.trainCtx : s.ctx;
      const res = this.call(s.def, ctx, inputs, s.label);
      s.node.output.forEach((o, k) => {
        if (o === '') return;
        const v = res.outputs[k];
        if (!v) throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `produced no value for output '${o}'`, { path: this.path, op: s.label });
        live.set(o, v);
      });
      if (tape) {
        for (const o of s.node.output) if (o !== '') tape.dims.set(o, live.get(o)!.dims);
        if (s.node.input.some((n) => tape.requiresGrad.has(n))) {
          tape.entries.push({ step: s, inputs, outputs: res.outputs, saved: res.saved });
          s.node.output.forEach((o, k) => o !== '' && res.outputs[k]?.dtype === 'float32' && tape.requiresGrad.add(o));
        }
      }
      stats.nodesRun++;
      stats.peakLive = Math.max(stats.peakLive, live.size);
      for (const n of plan.freeAfter[i]!) if (live.delete(n)) stats.freed++;
    });
    this.lastRun = stats;
    const out: Record<string, Value> = {};
    for (const w of wanted) out[w] = lookup(w)!;
    return out;
  }

  run(feeds: Record<string, Value>, opts?: RunOptions): Record<string, Value> {
    return this.execute(feeds, opts, undefined);
  }

  forward(feeds: Record<string, Value>, opts?: RunOptions): { values: Record<string, Value>; tape: Tape } {
    const tape: TapeImpl = { kind: 'tape', owner: this, entries: [], requiresGrad: new Set(), dims: new Map() };
    for (const [n, v] of Object.entries(feeds)) tape.dims.set(n, v.dims);
    for (const [n, v] of this.params) tape.dims.set(n, v.dims);
    const values = this.execute(feeds, opts, tape);
    return { values, tape };
  }

  backward(tape: Tape, seeds: Record<string, FValue>, wrt: readonly string[] = []): Map<string, FValue> {
    const t = tape as TapeImpl;
    if (t.owner !== this) throw new ModelsmithError(ErrorCodes.KERNEL_ARG, 'the tape was recorded by another engine', { path: this.path });
    for (const w of wrt) {
      if (!this.inputSpecs.has(w)) throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `wrt: '${w}' is not a graph input`, { path: this.path, tensor: w });
    }
    const grads = new Map<string, FValue>();
    const seedData = new Set<unknown>();
    for (const [name, s] of Object.entries(seeds)) {
      const dims = t.dims.get(name);
      if (!dims) throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `seed for '${name}', which the forward pass did not compute`, { path: this.path, tensor: name });
      if (s.dtype !== 'float32' || s.data.length !== numel(dims) || s.dims.length !== dims.length || s.dims.some((d, i) => d !== dims[i])) {
        throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `seed for '${name}' must be float32 ${fmtDims(dims)}, got ${s.dtype} ${fmtDims(s.dims)}`, { path: this.path, tensor: name });
      }
      if (t.requiresGrad.has(name)) {
        grads.set(name, s);
        seedData.add(s.data);
      }
    }
    // Values whose gradient someone asked for (directly or through what they feed): the tape records
    // every float path, but graph inputs outside `wrt` need none.
    const need = new Set<string>([...this.params.keys(), ...wrt]);
    for (const { step } of t.entries) {
      if (step.node.input.some((n) => need.has(n))) for (const o of step.node.output) if (o !== '') need.add(o);
    }
    for (let e = t.entries.length - 1; e >= 0; e--) {
      const { step, inputs, outputs, saved } = t.entries[e]!;
      const needsGrad = step.node.input.map((n) => n !== '' && need.has(n));
      if (!needsGrad.some(Boolean)) continue;
      const gOut = step.node.output.map((o) => (o === '' ? undefined : grads.get(o)));
      if (gOut.every((g) => g === undefined)) continue;
      if (!step.def.backward) {
        throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `${step.node.opType} has no gradient, and a parameter or input depends on it`, { path: this.path, op: step.label });
      }
      let gIn: (FValue | undefined)[];
      try {
        gIn = step.def.backward({ ...step.trainCtx, needsGrad }, inputs, outputs, gOut, saved);
      } catch (err) {
        throw this.wrap(err, step.label);
      }
      // Intermediate gradients are done with once their producer has run (reverse topological order).
      for (const o of step.node.output) grads.delete(o);
      step.node.input.forEach((name, i) => {
        const g = gIn[i];
        if (!g || !needsGrad[i] || !t.requiresGrad.has(name)) return;
        const x = inputs[i]!;
        if (g.data.length !== x.data.length) {
          throw new ModelsmithError(ErrorCodes.KERNEL_ARG, `gradient of input ${i} has ${g.data.length} elements, the input ${x.data.length}`, { path: this.path, op: step.label });
        }
        const prev = grads.get(name);
        // A value read by several nodes sums their gradients; new arrays, since handlers may return views of their gradOutputs.
        grads.set(name, prev ? fvalue(x.dims, addArrays(prev.data, g.data)) : g.dims.length === x.dims.length ? g : fvalue(x.dims, g.data));
      });
    }
    const out = new Map<string, FValue>();
    const own = (g: FValue): FValue => (seedData.has(g.data) ? fvalue(g.dims, g.data.slice()) : g);
    for (const name of this.params.keys()) {
      const g = grads.get(name);
      if (g) out.set(name, own(g));
    }
    for (const w of wrt) {
      const g = grads.get(w);
      out.set(w, g ? own(g) : fvalue(t.dims.get(w) ?? [0]));
    }
    return out;
  }

  /**
   * The model with initializers replaced by the current parameter values (everything else cloned
   * unchanged, including Constant nodes and non-float initializers).
   */
  exportModel(): ModelProto {
    const g = this.proto.graph!;
    const inits = g.initializer;
    // Clone without the initializers: copying every weight just to replace it would double peak memory.
    g.initializer = [];
    let copy: ModelProto;
    try {
      copy = clone(ModelProtoSchema, this.proto);
    } finally {
      g.initializer = inits;
    }
    copy.graph!.initializer = inits.map((tp) => {
      const p = this.params.get(tp.name);
      return p ? float32TensorProto(tp.name, p.dims, p.data) : clone(TensorProtoSchema, tp);
    });
    return copy;
  }
}
