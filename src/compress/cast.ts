/**
 * float32 → float16 / bfloat16 conversion pass over an ONNX model (edits `model.proto` in place).
 *
 * float16 ("full" mode): every node of the main graph runs in float16 except blocked ops
 * (cast-blocklist.ts, `blockOps`, other domains, If/Loop/Scan). Values are given the representation
 * their consumers need; a missing one is made by one Cast (shared by all consumers), always from the
 * value as its producer makes it, so the pass never creates a Cast→Cast chain. Constants (initializers,
 * Constant / ConstantOfShape values) are converted directly, never through a Cast. Weights beyond
 * ±65504 are clamped to ±65504 (not Inf), and non-zero values below 2^-24 become ±2^-24 rather than 0
 * (an epsilon or divisor flushed to zero would give Inf/NaN at run time).
 *
 * bfloat16 ("weights-only" mode): onnxruntime CPU has almost no bfloat16 kernels, so computation stays
 * float32; initializers and Constant values of at least BF16_MIN_ELEMENTS elements are stored as
 * bfloat16 and widened by a Cast(to=FLOAT) right after. The file about halves, the graph stays valid
 * on every runtime that has Cast(bfloat16) (opset ≥ 13; older models are refused).
 *
 * keepIoTypes (default true): graph inputs and outputs stay float32, with Casts at the boundary.
 * Subgraphs (If/Loop/Scan bodies, nested too) are converted the same way, but behind float32
 * interfaces: the If/Loop/Scan node itself keeps float32 inputs/outputs (so then/else branches and
 * loop-carried values always agree), and each body casts at its own boundary. A body reads the outer
 * graph's float initializers and Constant outputs in the target type (so weights stored outside the
 * body are converted once), and every other outer float value in float32 (references inside the body
 * are renamed to the right representation when needed).
 * Element types are inferred per op (rules below, plus value_info); a value whose type cannot be
 * inferred (e.g. a custom-domain op without value_info) makes the pass refuse the model (E_UNSUPPORTED,
 * naming the values) rather than guess. value_info entries are updated to the new types (every
 * original name keeps one representation, so none has to be dropped). Model-local functions and training_info graphs are left unchanged
 * (calls to local functions are non-ONNX-domain nodes, so they stay float32).
 */
import { clone, create } from '@bufbuild/protobuf';
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  NodeProtoSchema,
  TensorProto_DataType,
  type AttributeProto,
  type GraphProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from 'onnx-buf';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import type { OnnxModel } from '../formats/onnx/read.js';
import { modelTensorContext, payloadReader, tensorShape, tensorToProto } from '../formats/onnx/tensor.js';
import { numel } from '../core/tensor.js';
import { initKernels, kernels } from '../kernels/loader.js';
import { withArenaAsync } from './arena-lock.js';
import { payloadOut, type Spill } from './spill.js';
import { DEFAULT_BLOCKED_OPS, FLOAT32_INPUTS } from './cast-blocklist.js';

export type CastTarget = 'float16' | 'bfloat16';

export interface CastOptions {
  to: CastTarget;
  /** Keep graph inputs/outputs float32 with Casts at the boundary (default true). */
  keepIoTypes?: boolean;
  /** More op types to keep in float32 (added to the default blocklist). */
  blockOps?: string[];
  /**
   * Write converted payloads of big tensors to this spill's scratch file instead of keeping them in
   * memory (see ./spill.ts), so memory stays bounded by one tensor. The caller disposes of it after
   * writing the model.
   */
  spill?: Spill;
}

export interface CastReport {
  to: CastTarget;
  mode: 'full' | 'weights-only';
  keepIoTypes: boolean;
  /** Tensors (initializers, Constant / ConstantOfShape values) converted. */
  tensorsConverted: number;
  /** Elements converted in those tensors. */
  elementsConverted: number;
  /** Finite values beyond the target's range, stored as ±max instead of ±Inf. */
  clampedValues: number;
  /** Non-zero float16 values below 2^-24 stored as ±2^-24 instead of 0 (they would flush to zero). */
  tinyValuesRaised: number;
  castNodesInserted: number;
  /** Existing Cast(to=FLOAT) nodes retargeted. */
  castNodesPatched: number;
  nodesConverted: number;
  /** Nodes kept float32 (float16 mode; every graph), by op type. Empty in weights-only mode, where all compute is float32. */
  nodesKeptFloat32: Record<string, number>;
  /** How many of those sit inside If/Loop/Scan bodies. */
  subgraphNodesKeptFloat32: number;
  /** value_info / graph input / output entries whose element type was changed. */
  valueInfoUpdated: number;
  warnings: string[];
}

const FLOAT = TensorProto_DataType.FLOAT;
const F16 = TensorProto_DataType.FLOAT16;
const BF16 = TensorProto_DataType.BFLOAT16;
const INT64 = TensorProto_DataType.INT64;
const INT32 = TensorProto_DataType.INT32;
const BOOL = TensorProto_DataType.BOOL;
const UINT8 = TensorProto_DataType.UINT8;
const STRING = TensorProto_DataType.STRING;

/** In weights-only (bfloat16) mode, smaller tensors stay float32: no size gain, only precision loss. */
export const BF16_MIN_ELEMENTS = 64;
const F16_MAX = 65504;
/** Smallest positive float16 (subnormal), 2^-24. */
const F16_MIN_SUBNORMAL = 2 ** -24;
const BF16_MAX = 3.3895313892515355e38;
/** Elements per arena window of the streamed conversion (16 MiB of float32). */
const CAST_WINDOW_ELEMENTS = 4 * 2 ** 20;
/** Elements per kernel call inside a window (1 MiB of float32: stays in cache). */
const CAST_STEP_ELEMENTS = 2 ** 18;

const isDefaultDomain = (d: string): boolean => d === '' || d === 'ai.onnx';

// ------------------------------------------------------------------------------------------------
// element-type inference (what the original model computes)
// ------------------------------------------------------------------------------------------------

function attr(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute.find((a) => a.name === name);
}

function valueType(v: ValueInfoProto | undefined): number | undefined {
  const t = v?.type?.value;
  if (t?.case === 'tensorType') return t.value.elemType || undefined;
  if (t) return -1; // sequence / map / optional: not a float32 tensor
  return undefined;
}

function constantType(node: NodeProto): number | undefined {
  for (const a of node.attribute) {
    switch (a.name) {
      case 'value': return a.t?.dataType;
      case 'value_float': case 'value_floats': return FLOAT;
      case 'value_int': case 'value_ints': return INT64;
      case 'value_string': case 'value_strings': return STRING;
      case 'sparse_value': return a.sparseTensor?.values?.dataType;
    }
  }
  return undefined;
}

const BOOL_OPS = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Xor', 'IsNaN', 'IsInf']);
const INT64_OPS = new Set(['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin', 'NonMaxSuppression', 'StringLength']);

/** Output element types of a default-domain node, or undefined when no rule applies. */
function outputTypes(node: NodeProto, typeOf: (name: string) => number | undefined, outerTypes: Map<string, number>): (number | undefined)[] | undefined {
  const n = node.output.length;
  const all = (t: number | undefined): (number | undefined)[] => Array.from({ length: n }, () => t);
  const inT = (i: number): number | undefined => (node.input[i] ? typeOf(node.input[i]!) : undefined);
  const dtypeAttr = (name: string, dflt: number | undefined): number | undefined => {
    const a = attr(node, name);
    return a ? Number(a.i) : dflt;
  };
  const op = node.opType;
  if (BOOL_OPS.has(op)) return all(BOOL);
  if (INT64_OPS.has(op)) return all(INT64);
  switch (op) {
    case 'Cast': return all(dtypeAttr('to', undefined));
    case 'CastLike': return all(inT(1));
    case 'Constant': return all(constantType(node));
    case 'ConstantOfShape': return all(attr(node, 'value')?.t?.dataType ?? FLOAT);
    case 'EyeLike': case 'RandomNormalLike': case 'RandomUniformLike': case 'Bernoulli': return all(dtypeAttr('dtype', inT(0)));
    case 'RandomNormal': case 'RandomUniform': return all(dtypeAttr('dtype', FLOAT));
    case 'Multinomial': return all(dtypeAttr('dtype', INT32));
    case 'HannWindow': case 'HammingWindow': case 'BlackmanWindow': case 'MelWeightMatrix': return all(dtypeAttr('output_datatype', FLOAT));
    case 'Where': return all(inT(1));
    case 'OneHot': return all(inT(2));
    case 'TopK': case 'MaxPool': return [inT(0), INT64].slice(0, n);
    case 'Unique': return [inT(0), INT64, INT64, INT64].slice(0, n);
    case 'Dropout': return [inT(0), BOOL].slice(0, n);
    case 'QuantizeLinear': return all(node.input[2] ? inT(2) : UINT8);
    case 'DequantizeLinear': return all(inT(1));
    case 'DynamicQuantizeLinear': return [UINT8, FLOAT, UINT8].slice(0, n);
    case 'MatMulInteger': case 'ConvInteger': return all(INT32);
    case 'QLinearConv': return all(inT(7));
    case 'QLinearMatMul': return all(inT(7));
    case 'If': return bodyOutputTypes(node, attr(node, 'then_branch')?.g, 0, n, outerTypes);
    case 'Loop': {
      // Loop-carried outputs have the type of their initial value; scan outputs that of the body output.
      const t = bodyOutputTypes(node, attr(node, 'body')?.g, 1, n, outerTypes);
      return t?.map((x, i) => x ?? inT(i + 2));
    }
    case 'Scan': return bodyOutputTypes(node, attr(node, 'body')?.g, 0, n, outerTypes);
    case 'OptionalHasElement': return all(BOOL);
    case 'SequenceLength': return all(INT64);
    case 'SequenceConstruct': case 'SequenceEmpty': case 'SplitToSequence': case 'SequenceInsert': case 'SequenceErase':
    case 'Optional':
      return all(-1);
    case 'Mod': case 'BitShift':
      return all(inT(0));
  }
  if (op.startsWith('Sequence') || op.startsWith('Optional') || op === 'ConcatFromSequence') return undefined;
  return all(inT(0));
}

/** `outer` plus the types of a Loop/Scan body's untyped inputs, taken from the node's inputs. */
function withBodyInputs(node: NodeProto, g: GraphProto, outer: Map<string, number>): Map<string, number> {
  const m = new Map(outer);
  const typeOf = (k: number): number | undefined => (node.input[k] ? outer.get(node.input[k]!) : undefined);
  g.input.forEach((v, i) => {
    if (valueType(v) !== undefined || !v.name) return;
    let t: number | undefined;
    if (node.opType === 'Loop') t = i === 0 ? INT64 : i === 1 ? BOOL : typeOf(i);
    else if (node.opType === 'Scan') t = typeOf(i);
    if (t !== undefined) m.set(v.name, t);
  });
  return m;
}

/** Element types of a body's outputs from `first` on: declared, else inferred inside the body. */
function bodyOutputTypes(node: NodeProto, g: GraphProto | undefined, first: number, n: number, outer: Map<string, number>): (number | undefined)[] | undefined {
  if (!g) return undefined;
  let inner: Map<string, number> | undefined;
  return Array.from({ length: n }, (_, i) => {
    const o = g.output[i + first];
    if (!o) return undefined;
    const t = valueType(o);
    if (t !== undefined) return t;
    inner ??= inferTypes(g, withBodyInputs(node, g, outer)).types;
    return inner.get(o.name);
  });
}

interface Types {
  types: Map<string, number>;
  unknown: string[];
}

function inferTypes(g: GraphProto, outer: Map<string, number>): Types {
  const types = new Map<string, number>(outer);
  for (const v of [...g.input, ...g.output, ...g.valueInfo]) {
    const t = valueType(v);
    if (t !== undefined && v.name) types.set(v.name, t);
  }
  for (const t of g.initializer) types.set(t.name, t.dataType);
  for (const s of g.sparseInitializer) if (s.values) types.set(s.values.name, s.values.dataType);
  const unknown: string[] = [];
  g.node.forEach((node, i) => {
    const declared = node.output.map((o) => (o ? types.get(o) : -1));
    if (declared.every((t) => t !== undefined)) return;
    const inferred = isDefaultDomain(node.domain) ? outputTypes(node, (n) => types.get(n), types) : undefined;
    node.output.forEach((o, k) => {
      if (!o || types.has(o)) return;
      const t = inferred?.[k];
      if (t === undefined) unknown.push(`${node.name || `${node.opType}#${i}`} (${node.domain ? node.domain + '.' : ''}${node.opType}) output '${o}'`);
      else types.set(o, t);
    });
  });
  return { types, unknown };
}

// ------------------------------------------------------------------------------------------------
// helpers
// ------------------------------------------------------------------------------------------------

/** Names a subgraph (recursively) reads from outer scopes. */
function freeNames(g: GraphProto, out: Set<string>): void {
  const defined = new Set<string>([...g.input.map((v) => v.name), ...g.initializer.map((t) => t.name)]);
  for (const s of g.sparseInitializer) if (s.values) defined.add(s.values.name);
  for (const node of g.node) {
    for (const i of node.input) if (i && !defined.has(i)) out.add(i);
    for (const a of node.attribute) {
      for (const sg of a.g ? [a.g, ...a.graphs] : a.graphs) {
        const inner = new Set<string>();
        freeNames(sg, inner);
        for (const n of inner) if (!defined.has(n)) out.add(n);
      }
    }
    for (const o of node.output) if (o) defined.add(o);
  }
  for (const o of g.output) if (!defined.has(o.name)) out.add(o.name);
}

function renameFree(g: GraphProto, from: string, to: string): void {
  const defined = new Set<string>([...g.input.map((v) => v.name), ...g.initializer.map((t) => t.name)]);
  if (defined.has(from)) return;
  for (const node of g.node) {
    node.input = node.input.map((i) => (i === from ? to : i));
    for (const a of node.attribute) for (const sg of a.g ? [a.g, ...a.graphs] : a.graphs) renameFree(sg, from, to);
    if (node.output.includes(from)) return; // shadowed from here on
  }
  for (const o of g.output) if (o.name === from) o.name = to;
}

function setElemType(v: ValueInfoProto, t: number): boolean {
  const tt = v.type?.value;
  if (tt?.case !== 'tensorType') return false;
  tt.value.elemType = t;
  return true;
}

// ------------------------------------------------------------------------------------------------
// the pass
// ------------------------------------------------------------------------------------------------

type Rep = 'f32' | 'tgt';

interface ValueState {
  /** How its producer makes it after the pass. */
  natural?: Rep;
  need: Set<Rep>;
  names: Partial<Record<Rep, string>>;
}

export async function castModel(model: OnnxModel, opts: CastOptions): Promise<{ model: OnnxModel; report: CastReport }> {
  const to = opts.to;
  if (to !== 'float16' && to !== 'bfloat16') {
    throw new ModelsmithError(ErrorCodes.USAGE, `cast target must be float16 or bfloat16, got '${String(to)}'`, { path: model.path });
  }
  const keepIoMain = opts.keepIoTypes ?? true;
  const root = model.proto.graph;
  if (!root) throw new ModelsmithError(ErrorCodes.MALFORMED, 'the model has no graph', { path: model.path, format: 'onnx' });
  const weightsOnly = to === 'bfloat16';
  const TGT = weightsOnly ? BF16 : F16;
  if (weightsOnly) {
    const opset = model.proto.opsetImport.find((o) => isDefaultDomain(o.domain))?.version ?? 1n;
    if (opset < 13n) {
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `bfloat16 needs Cast from opset 13; the model imports opset ${opset} (convert it to float16, or upgrade its opset first)`, { path: model.path, format: 'onnx' });
    }
  }
  await initKernels();

  const blocked = new Set(DEFAULT_BLOCKED_OPS.map((b) => b.op));
  for (const op of opts.blockOps ?? []) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(op)) throw new ModelsmithError(ErrorCodes.USAGE, `--block-ops: '${op}' is not an op type name`);
    blocked.add(op);
  }

  const report: CastReport = {
    to, mode: weightsOnly ? 'weights-only' : 'full', keepIoTypes: keepIoMain,
    tensorsConverted: 0, elementsConverted: 0, clampedValues: 0, tinyValuesRaised: 0, castNodesInserted: 0, castNodesPatched: 0,
    nodesConverted: 0, nodesKeptFloat32: {}, subgraphNodesKeptFloat32: 0, valueInfoUpdated: 0, warnings: [],
  };

  // Before the tensor context is made: spilled payloads resolve through the model's resolver chain.
  opts.spill?.attach(model);
  const ctx = modelTensorContext(model);
  /** Clamp / raise in place (the window is a copy in the arena), counting what changed. */
  const adjustValues = (f32: Float32Array): void => {
    const max = weightsOnly ? BF16_MAX : F16_MAX;
    let clamped = 0;
    let raised = 0;
    for (let i = 0; i < f32.length; i++) {
      const x = f32[i]!;
      const ax = Math.abs(x);
      if (Number.isFinite(x) && ax > max) {
        f32[i] = x > 0 ? max : -max;
        clamped++;
      } else if (!weightsOnly && ax > 0 && ax < F16_MIN_SUBNORMAL) {
        // Would round to 0: an epsilon or divisor constant that becomes 0 gives Inf/NaN downstream.
        f32[i] = x > 0 ? F16_MIN_SUBNORMAL : -F16_MIN_SUBNORMAL;
        raised++;
      }
    }
    report.clampedValues += clamped;
    report.tinyValuesRaised += raised;
  };
  // Payloads stream through the arena in windows (read straight from the external file when there is
  // one), and the converted bytes go to the spill or to one output buffer: no float32 copy of the
  // tensor is held in JS, so converting a 6 GB model needs memory for one window, not one tensor.
  const convertTensor = async (tp: TensorProto, name: string): Promise<TensorProto> => {
    const shape = tensorShape(tp, model.path);
    const count = numel(shape);
    const reader = await payloadReader(tp, ctx);
    const k = kernels();
    const out = await withArenaAsync(k, async () => {
      const per = Math.max(1, Math.min(count, CAST_WINDOW_ELEMENTS));
      const x = k.alloc(per * 4);
      const y = k.alloc(per * 2);
      const o = await payloadOut(opts.spill, count * 2);
      for (let start = 0; start < count; start += per) {
        const n = Math.min(per, count - start);
        await reader.readInto(start * 4, k.u8(x, n * 4));
        adjustValues(k.f32(x, n));
        // Cache-sized steps: the kernel reads what the scan just touched (see kernels/window.ts).
        for (let s0 = 0; s0 < n; s0 += CAST_STEP_ELEMENTS) {
          const m = Math.min(CAST_STEP_ELEMENTS, n - s0);
          if (weightsOnly) k.raw.cast_f32_bf16(x + s0 * 4, m, y + s0 * 2);
          else k.raw.cast_f32_f16(x + s0 * 4, m, y + s0 * 2, 1);
        }
        await o.write(k.u8(y, n * 2));
      }
      return o;
    });
    report.tensorsConverted++;
    report.elementsConverted += count;
    const res = tensorToProto({ name, dtype: weightsOnly ? 'bfloat16' : 'float16', shape, data: new Uint8Array(0) });
    out.finish(res);
    if (tp.docString) res.docString = tp.docString;
    return res;
  };

  const taken = new Set<string>();
  const note = (n: string): void => { if (n) taken.add(n); };
  const noteGraph = (g: GraphProto): void => {
    for (const v of [...g.input, ...g.output, ...g.valueInfo]) note(v.name);
    for (const t of g.initializer) note(t.name);
    for (const n of g.node) {
      n.output.forEach(note);
      note(n.name);
      for (const a of n.attribute) for (const sg of a.g ? [a.g, ...a.graphs] : a.graphs) noteGraph(sg);
    }
  };
  noteGraph(root);
  const fresh = (base: string): string => {
    let name = base;
    for (let i = 1; taken.has(name); i++) name = `${base}_${i}`;
    taken.add(name);
    return name;
  };
  const suffix = weightsOnly ? 'bf16' : 'fp16';

  // `outerTgt`: outer-scope names a body reads in the target type (float initializers, float16 mode).
  const convertGraph = async (g: GraphProto, outer: Map<string, number>, keepIo: boolean, depth: number, outerTgt: Set<string>): Promise<void> => {
    const { types, unknown } = inferTypes(g, outer);
    if (unknown.length) {
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED,
        `cannot tell the element type of ${unknown.length} value(s), so the pass cannot convert around them: ${unknown.slice(0, 8).join('; ')}${unknown.length > 8 ? '; …' : ''} (declare them in graph.value_info, or run shape inference first)`,
        { path: model.path, format: 'onnx' });
    }
    const isF = (name: string): boolean => types.get(name) === FLOAT;
    const initByName = new Map(g.initializer.map((t) => [t.name, t] as const));
    const constOut = new Set<string>();
    for (const n of g.node) if (n.opType === 'Constant' && isDefaultDomain(n.domain) && n.output[0] && isF(n.output[0])) constOut.add(n.output[0]);
    /** How a body of this graph reads outer value `n`. */
    const bodyRep = (n: string): Rep => (!weightsOnly && (initByName.has(n) || constOut.has(n) || outerTgt.has(n)) ? 'tgt' : 'f32');

    // Subgraph bodies first: converted with float32 interfaces (their If/Loop/Scan node stays float32);
    // they read this graph's float initializers in the target type, other outer values in float32.
    const innerTgt = new Set(outerTgt);
    if (!weightsOnly) for (const n of [...initByName.keys(), ...constOut]) if (isF(n)) innerTgt.add(n);
    for (const node of g.node) {
      for (const a of node.attribute) for (const sg of a.g ? [a.g, ...a.graphs] : a.graphs) await convertGraph(sg, withBodyInputs(node, sg, types), true, depth + 1, innerTgt);
    }

    // Node roles.
    type Role = 'convert' | 'block' | 'flex';
    const role = new Map<NodeProto, Role>();
    for (const node of g.node) {
      const hasGraph = node.attribute.some((a) => a.g || a.graphs.length);
      let r: Role;
      if (weightsOnly) r = node.opType === 'Constant' && isDefaultDomain(node.domain) ? 'flex' : 'block';
      else if (!isDefaultDomain(node.domain) || hasGraph || blocked.has(node.opType)) r = 'block';
      else if (node.opType === 'Constant' || node.opType === 'ConstantOfShape' || (node.opType === 'Cast' && node.output.every(isF))) r = 'flex';
      else r = 'convert';
      role.set(node, r);
      if (r === 'block' && !weightsOnly) {
        const label = isDefaultDomain(node.domain) ? node.opType : `${node.domain}.${node.opType}`;
        report.nodesKeptFloat32[label] = (report.nodesKeptFloat32[label] ?? 0) + 1;
        if (depth > 0) report.subgraphNodesKeptFloat32++;
      }
    }

    const state = new Map<string, ValueState>();
    const st = (name: string): ValueState => {
      let s = state.get(name);
      if (!s) { s = { need: new Set(), names: {} }; state.set(name, s); }
      return s;
    };

    // Demands.
    const anyInput = (node: NodeProto, i: number): boolean =>
      i === 0 && (node.opType === 'Cast' || node.opType === 'Shape' || node.opType === 'Size' || node.opType === 'CastLike');
    const inputNeed = new Map<NodeProto, (Rep | 'any' | undefined)[]>();
    const implicit = new Map<NodeProto, string[]>();
    for (const node of g.node) {
      const r = role.get(node)!;
      const forced = isDefaultDomain(node.domain) ? FLOAT32_INPUTS[node.opType] ?? [] : [];
      const needs = node.input.map((inp, i): Rep | 'any' | undefined => {
        if (!inp || !isF(inp)) return undefined;
        if (anyInput(node, i) && r !== 'block') return 'any';
        if (r === 'block' || forced.includes(i)) return 'f32';
        return 'tgt';
      });
      needs.forEach((n, i) => { if (n === 'f32' || n === 'tgt') st(node.input[i]!).need.add(n); });
      inputNeed.set(node, needs);
      const free = new Set<string>();
      for (const a of node.attribute) for (const sg of a.g ? [a.g, ...a.graphs] : a.graphs) freeNames(sg, free);
      const fl = [...free].filter(isF);
      fl.forEach((n) => st(n).need.add(bodyRep(n)));
      implicit.set(node, fl);
    }
    for (const o of g.output) if (isF(o.name)) st(o.name).need.add(keepIo ? 'f32' : 'tgt');

    // Natural representations.
    const inputNames = new Set(g.input.map((v) => v.name));
    for (const v of g.input) {
      if (isF(v.name) && !initByName.has(v.name)) st(v.name).natural = keepIo ? 'f32' : 'tgt';
    }
    if (depth > 0) {
      // Outer-scope values a body reads: weights in the target type, the rest float32 (the outer graph
      // renames the references to the matching representation).
      const free = new Set<string>();
      freeNames(g, free);
      for (const n of free) if (isF(n) && !initByName.has(n)) st(n).natural = outerTgt.has(n) ? 'tgt' : 'f32';
    }
    for (const node of g.node) {
      const r = role.get(node)!;
      for (const o of node.output) {
        if (!o || !isF(o)) continue;
        const s = st(o);
        if (r === 'convert') s.natural = 'tgt';
        else if (r === 'block') s.natural = 'f32';
        else s.natural = s.need.has('tgt') && !weightsOnly ? 'tgt' : 'f32';
      }
    }

    // Anything else still demanded (sparse initializers, …) is float32 as it is; Casts make the rest.
    for (const [name, s] of state) if (s.natural === undefined && !initByName.has(name) && s.need.size > 0) s.natural = 'f32';

    // Which representation keeps the original name.
    const outputNames = new Set(g.output.map((o) => o.name));
    const mainRep = (name: string, s: ValueState): Rep => (outputNames.has(name) ? (keepIo ? 'f32' : 'tgt') : s.natural!);

    const head: NodeProto[] = [];
    const after = new Map<NodeProto, NodeProto[]>();
    const castNode = (input: string, output: string, toType: number, place: NodeProto | undefined): void => {
      const n = create(NodeProtoSchema, {
        opType: 'Cast', name: fresh(`${output}_cast`), input: [input], output: [output],
        attribute: [create(AttributeProtoSchema, { name: 'to', type: AttributeProto_AttributeType.INT, i: BigInt(toType) })],
      });
      report.castNodesInserted++;
      if (place) {
        const list = after.get(place) ?? [];
        list.push(n);
        after.set(place, list);
      } else head.push(n);
    };

    // Initializers.
    const newInits: TensorProto[] = [];
    for (const tp of g.initializer) {
      const s = state.get(tp.name);
      if (!isF(tp.name) || !s || s.need.size === 0) { newInits.push(tp); continue; }
      const count = tp.dims.reduce((a, d) => a * Number(d), 1);
      if (weightsOnly || !s.need.has('tgt')) {
        // Only float32 consumers (always so in weights-only mode): bfloat16 storage + Cast, or unchanged.
        if (weightsOnly && count >= BF16_MIN_ELEMENTS && !inputNames.has(tp.name)) {
          const stored = fresh(`${tp.name}_${suffix}`);
          newInits.push(await convertTensor(tp, stored));
          castNode(stored, tp.name, FLOAT, undefined);
        } else newInits.push(tp);
        s.names.f32 = tp.name;
        if (s.need.has('tgt')) { s.names.tgt = fresh(`${tp.name}_${suffix}`); castNode(tp.name, s.names.tgt, TGT, undefined); }
        continue;
      }
      if (s.need.has('f32')) {
        newInits.push(tp);
        s.names.f32 = tp.name;
        s.names.tgt = fresh(`${tp.name}_${suffix}`);
        newInits.push(await convertTensor(tp, s.names.tgt));
      } else {
        newInits.push(await convertTensor(tp, tp.name));
        s.names.tgt = tp.name;
        for (const v of g.input) if (v.name === tp.name && setElemType(v, TGT)) report.valueInfoUpdated++;
      }
    }
    g.initializer = newInits;

    // Flexible nodes and Constant values. A flexible node needed both ways is duplicated (the copy keeps
    // float32) rather than followed by a Cast, so no Cast chain and no rounding of the float32 copy.
    const flexCopies = new Map<NodeProto, NodeProto>();
    for (const node of g.node) {
      if (role.get(node) !== 'flex' || weightsOnly) continue;
      const s = state.get(node.output[0] ?? '');
      if (s?.natural === 'tgt' && (s.need.has('f32') || (keepIo && outputNames.has(node.output[0]!)))) flexCopies.set(node, clone(NodeProtoSchema, node));
    }
    for (const node of g.node) {
      if (role.get(node) !== 'flex') continue;
      const o = node.output[0];
      if (!o || !isF(o)) continue;
      const s = st(o);
      if (node.opType === 'Cast') {
        if (s.natural === 'tgt') {
          attr(node, 'to')!.i = BigInt(TGT);
          report.castNodesPatched++;
        }
        continue;
      }
      const convertAttr = async (): Promise<void> => {
        const a = node.attribute.find((x) => x.name === 'value' || x.name === 'value_float' || x.name === 'value_floats');
        if (!a) return;
        let tp: TensorProto;
        if (a.name === 'value') tp = a.t!;
        else {
          const vals = a.name === 'value_float' ? Float32Array.of(a.f) : Float32Array.from(a.floats);
          tp = tensorToProto({ name: '', dtype: 'float32', shape: a.name === 'value_float' ? [] : [vals.length], data: new Uint8Array(vals.buffer) });
        }
        const conv = await convertTensor(tp, tp.name);
        const idx = node.attribute.indexOf(a);
        node.attribute[idx] = create(AttributeProtoSchema, { name: 'value', type: AttributeProto_AttributeType.TENSOR, t: conv });
      };
      if (s.natural === 'tgt') {
        await convertAttr();
      } else if (weightsOnly && node.opType === 'Constant') {
        const a = attr(node, 'value');
        const count = a?.t ? a.t.dims.reduce((x, d) => x * Number(d), 1) : 0;
        if (a?.t && count >= BF16_MIN_ELEMENTS && !outputNames.has(o)) {
          const stored = fresh(`${o}_${suffix}`);
          await convertAttr();
          node.output[0] = stored;
          castNode(stored, o, FLOAT, node);
          s.names.f32 = o;
        }
      }
    }

    // Names of every representation, and the Casts that make the missing ones.
    const copySources = new Map<NodeProto, NodeProto>();
    const producer = new Map<string, NodeProto>();
    for (const node of g.node) for (const o of node.output) if (o) producer.set(o, node);
    for (const [name, s] of state) {
      if (s.natural === undefined || initByName.has(name)) continue;
      if (s.names.f32 === name) continue; // weights-only Constant, done above
      const main = mainRep(name, s);
      const p = producer.get(name);
      const natName = main === s.natural ? name : fresh(`${name}_${s.natural === 'tgt' ? suffix : 'fp32'}`);
      s.names[s.natural] = natName;
      if (natName !== name) {
        // Rename the producer's output (graph inputs are never renamed: their main rep is natural).
        if (p) p.output = p.output.map((o) => (o === name ? natName : o));
      }
      const other: Rep = s.natural === 'tgt' ? 'f32' : 'tgt';
      if (s.need.has(other) || main === other) {
        const otherName = main === other ? name : fresh(`${name}_${other === 'tgt' ? suffix : 'fp32'}`);
        s.names[other] = otherName;
        const copy = p && flexCopies.get(p);
        if (copy) {
          copy.output = copy.output.map((o) => (o === name ? otherName : o));
          if (copy.name) copy.name = fresh(`${copy.name}_fp32`);
          const list = after.get(p!) ?? [];
          list.push(copy);
          after.set(p!, list);
          copySources.set(copy, p!);
        } else castNode(natName, otherName, other === 'tgt' ? TGT : FLOAT, p);
      }
    }

    // Rewire consumers.
    for (const node of g.node) {
      const needs = inputNeed.get(node)!;
      node.input = node.input.map((inp, i) => {
        const n = needs[i];
        if (!n) return inp;
        const s = state.get(inp);
        if (!s) return inp;
        if (n === 'any') return (s.natural && s.names[s.natural]) || s.names.tgt || s.names.f32 || inp;
        return s.names[n] ?? inp;
      });
      for (const name of implicit.get(node) ?? []) {
        const f32 = state.get(name)?.names[bodyRep(name)];
        if (f32 && f32 !== name) for (const a of node.attribute) for (const sg of a.g ? [a.g, ...a.graphs] : a.graphs) renameFree(sg, name, f32);
      }
      if (role.get(node) === 'convert') report.nodesConverted++;
    }

    // Duplicated Casts read what the original reads (after rewiring).
    for (const [copy, orig] of copySources) copy.input = [...orig.input];

    // Graph inputs (not keepIo): declared as the target type.
    if (!keepIo) for (const v of g.input) if (isF(v.name) && !initByName.has(v.name) && setElemType(v, TGT)) report.valueInfoUpdated++;
    if (!keepIo) for (const v of g.output) if (isF(v.name) && setElemType(v, TGT)) report.valueInfoUpdated++;

    // Node order: head casts, then each node followed by its casts.
    const nodes: NodeProto[] = [...head];
    for (const node of g.node) { nodes.push(node); nodes.push(...(after.get(node) ?? [])); }
    g.node = nodes;

    // value_info: the original name now holds its main representation (initializers: their new type).
    const initType = new Map(g.initializer.map((t) => [t.name, t.dataType] as const));
    for (const v of g.valueInfo) {
      if (!isF(v.name)) continue;
      const s = state.get(v.name);
      let main: Rep | undefined;
      if (initType.has(v.name)) main = initType.get(v.name) === TGT ? 'tgt' : 'f32';
      else if (s && s.natural !== undefined) main = outputNames.has(v.name) ? mainRep(v.name, s) : s.names.f32 === v.name ? 'f32' : s.names.tgt === v.name ? 'tgt' : s.natural;
      if (main === 'tgt' && setElemType(v, TGT)) report.valueInfoUpdated++;
    }
  };

  await convertGraph(root, new Map(), keepIoMain, 0, new Set());

  if (report.subgraphNodesKeptFloat32 > 0) {
    report.warnings.push(`${report.subgraphNodesKeptFloat32} node(s) inside If/Loop/Scan bodies are blocked ops and run in float32`);
  }
  if (!weightsOnly && report.clampedValues > 0) {
    report.warnings.push(`${report.clampedValues} weight value(s) beyond ±65504 were clamped to ±65504`);
  }
  return { model, report };
}
