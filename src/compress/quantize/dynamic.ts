/**
 * Dynamic int8 quantization of MatMul, Gemm and Conv, the way onnxruntime.quantization.quantize_dynamic
 * writes it: the weight is stored as int8 (symmetric, zero point 0) and the activation is quantized
 * at run time:
 *
 *   A ─► DynamicQuantizeLinear ─► A_q (uint8), A_scale, A_zp
 *   MatMulInteger(A_q, W_q, A_zp, W_zp) ─► int32 ─► Cast(to=FLOAT) ─► Mul(·, A_scale * W_scale) ─► Y
 *   ConvInteger(A_q, W_q, A_zp, W_zp)   ─► int32 ─► Cast(to=FLOAT) ─► Mul(·, A_scale * W_scale) ─► Add(bias) ─► Y
 *
 *   Gemm (transA = 0) is a MatMul on the quantized [K, N] weight (transB weights are transposed once,
 *   when quantized) followed by Mul(alpha) when alpha ≠ 1 and Add(beta · C) when C is given:
 *   MatMulInteger ─► Cast ─► Mul(scale) [─► Mul(alpha)] [─► Add(beta·C)] ─► Y
 *
 * (A_scale * W_scale is one Mul.) The output keeps the node's name; Conv attributes are copied to
 * ConvInteger, the bias is added after the rescale (reshaped to [M, 1, …] to broadcast over the
 * spatial axes). A float32 activation read by several nodes of the same graph is quantized once.
 * `perChannel` gives one scale per output channel (MatMul: per column of B, scale shape [N]; Conv:
 * per output channel, shape [M, 1, …]); the integer op still sees one zero point (0), which is what
 * onnxruntime's ConvInteger requires, and the per-channel scale is applied in the rescale Mul.
 * `reduceRange` limits the weight codes to 7 bits (scale = absmax / 63, codes in [-63, 63]) for CPUs
 * whose u8×s8 dot products saturate. Needs ai.onnx opset ≥ 11 (DynamicQuantizeLinear); older models
 * are raised to 11 when every op keeps its meaning (opset-upgrade.ts), else left alone with a diagnostic. The float weight is removed when
 * nothing else reads it.
 */
import { create } from '@bufbuild/protobuf';
import { NodeProtoSchema, TensorProtoSchema, type GraphProto, type NodeProto, type TensorProto } from 'onnx-buf';
import { allFinite, typedView } from '../../core/tensor.js';
import type { Diagnostic } from '../../core/errors.js';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import type { OnnxModel } from '../../formats/onnx/read.js';
import { modelTensorContext, tensorDType, tensorFromProto, tensorShape } from '../../formats/onnx/tensor.js';
import { initKernels } from '../../kernels/loader.js';
import { dequantizeLinear, quantizeLinear } from '../../kernels/quantize.js';
import { minMax, minMaxAxis } from '../../kernels/stats.js';
import { errorStats } from '../../eval/metrics.js';
import { sizeReport, tensorBytes, type SizeReport } from '../report.js';
import { isDefaultDomain } from './registry.js';
import { GraphEdits, bytesOf, constantWeightInput, intAttr, raiseIr } from './int4.js';
import { transpose2d } from '../../kernels/layout.js';
import { upgradeToOpset11 } from '../opset-upgrade.js';
import { defaultOpset, readCounts, resolveConst, uniqueNamer, walkNodes, type ConstRef } from '../graph.js';

export interface QuantizeDynamicOptions {
  /** 7-bit weights (codes in [-63, 63]) as onnxruntime's reduce_range. Default false. */
  reduceRange?: boolean;
  /** One weight scale per output channel (default false: one per tensor, as quantize_dynamic). */
  perChannel?: boolean;
  /** Op types to rewrite (default all): 'MatMul', 'Gemm', 'Conv'. */
  opTypes?: DynamicOp[];
  /** Leave MatMuls alone by weight name or node name. */
  exclude?: { names?: string[] };
  /** Skip weights with fewer elements than this (default 16). */
  minElements?: number;
  /**
   * Below opset 11, raise the model to opset 11 when every op keeps its meaning (opset-upgrade.ts;
   * default true). With false, such models are left alone.
   */
  upgradeOpset?: boolean;
}

export type DynamicOp = 'MatMul' | 'Gemm' | 'Conv';

export interface DynamicTensor {
  name: string;
  nodes: string[];
  scope: string;
  kind: 'initializer' | 'constant';
  op: DynamicOp;
  /** Shape of the stored int8 weight (a transB Gemm weight is stored transposed, [K, N]). */
  shape: number[];
  scheme: 'per-channel' | 'per-tensor';
  /** The scale (per tensor) or the largest scale (per channel). */
  scale: number;
  reduceRange: boolean;
  bytesBefore: number;
  bytesAfter: number;
  maxAbs: number;
  meanAbs: number;
  snrDb: number;
  cosine: number;
}

export interface DynamicSkipped {
  name: string;
  node: string;
  scope: string;
  reason: string;
}

export interface QuantizeDynamicReport {
  options: { reduceRange: boolean; perChannel: boolean; minElements: number; opTypes: string[] };
  quantized: DynamicTensor[];
  skipped: DynamicSkipped[];
  size: SizeReport;
  diagnostics: Diagnostic[];
}

interface Use {
  node: NodeProto;
  label: string;
  graph: GraphProto;
  /** Conv bias, when given and constant. */
  bias?: ConstRef;
  /** Gemm attributes (alpha/beta default 1) and its C input. */
  gemm?: { transB: boolean; alpha: number; beta: number; c?: string };
}

interface Candidate {
  name: string;
  op: DynamicOp;
  ref: ConstRef;
  uses: Use[];
}

const FLOAT = 1;
const INT8 = 3;

/** Rewrite MatMuls with constant float32 weights to dynamic int8, in place (the same object is returned). */
export async function quantizeDynamic(model: OnnxModel, opts: QuantizeDynamicOptions = {}): Promise<{ model: OnnxModel; report: QuantizeDynamicReport }> {
  const minElements = opts.minElements ?? 16;
  if (!Number.isSafeInteger(minElements) || minElements < 1) {
    throw new ModelsmithError(ErrorCodes.USAGE, `minElements must be a positive integer, got ${String(opts.minElements)}`);
  }
  const reduceRange = Boolean(opts.reduceRange);
  const perChannel = Boolean(opts.perChannel);
  const opTypes = opts.opTypes ?? ['MatMul', 'Gemm', 'Conv'];
  for (const t of opTypes) if (t !== 'MatMul' && t !== 'Conv' && t !== 'Gemm') throw new ModelsmithError(ErrorCodes.USAGE, `dynamic quantization handles MatMul, Gemm and Conv, not '${String(t)}'`);
  await initKernels();
  const proto = model.proto;
  const before = tensorBytes(model);
  const diagnostics: Diagnostic[] = [];
  const quantized: DynamicTensor[] = [];
  const skipped: DynamicSkipped[] = [];
  const exNames = new Set(opts.exclude?.names ?? []);
  const finish = (): { model: OnnxModel; report: QuantizeDynamicReport } => ({
    model,
    report: { options: { reduceRange, perChannel, minElements, opTypes: [...opTypes] }, quantized, skipped, size: sizeReport(before, tensorBytes(model)), diagnostics },
  });

  const byProto = new Map<TensorProto, Candidate>();
  walkNodes(proto, (n, label, frames) => {
    const op = n.opType as DynamicOp;
    if (!opTypes.includes(op) || !isDefaultDomain(n.domain) || n.input.length < 2) return;
    const b = n.input[1]!;
    const scope = frames[0]!.scope;
    if (op === 'Gemm' && attrInt(n, 'transA', 0) !== 0) {
      skipped.push({ name: b, node: label, scope, reason: 'Gemm with transA = 1' });
      return;
    }
    const ref = constantWeightInput(n, label, frames, exNames, skipped);
    if (!ref) return;
    const use: Use = { node: n, label, graph: frames[0]!.graph };
    if (op === 'Gemm') {
      use.gemm = { transB: attrInt(n, 'transB', 0) !== 0, alpha: attrFloat(n, 'alpha', 1), beta: attrFloat(n, 'beta', 1), ...(n.input[2] ? { c: n.input[2] } : {}) };
    }
    if (op === 'Conv' && n.input[2]) {
      const bias = resolveConst(n.input[2], frames);
      if (!bias || tensorDType(bias.proto, model.path) !== 'float32') {
        skipped.push({ name: b, node: label, scope, reason: 'Conv bias is not a constant float32 tensor' });
        return;
      }
      use.bias = bias;
    }
    let c = byProto.get(ref.proto);
    if (!c) byProto.set(ref.proto, (c = { name: b, op, ref, uses: [] }));
    if (c.op !== op) {
      skipped.push({ name: b, node: label, scope, reason: `weight also read by ${c.op}` });
      return;
    }
    if (op === 'Gemm' && c.uses.length && c.uses[0]!.gemm!.transB !== use.gemm!.transB) {
      skipped.push({ name: b, node: label, scope, reason: 'weight read by Gemms with different transB' });
      return;
    }
    c.uses.push(use);
  });
  if (byProto.size === 0 && skipped.length === 0) {
    diagnostics.push({ level: 'info', code: 'quantize.no_matmul', message: `no ${opTypes.join('/')} weights: nothing to quantize dynamically` });
    return finish();
  }
  const opset = defaultOpset(proto) ?? 0;
  const upgrade = opset < 11 && opts.upgradeOpset !== false && byProto.size > 0 ? upgradeToOpset11(proto, diagnostics) : undefined;
  if (opset < 11 && !upgrade?.upgraded) {
    const why = upgrade ? `it cannot be raised to 11 without changing what these ops mean: ${upgrade.blockers.join(', ')}` : 'the opset is not raised (upgradeOpset: false)';
    diagnostics.push({
      level: 'warning',
      code: 'quantize.opset_too_old',
      message: `the model imports ai.onnx opset ${opset || '(none)'}; DynamicQuantizeLinear needs opset 11, so nothing was quantized: ${why}`,
    });
    for (const c of byProto.values()) for (const u of c.uses) skipped.push({ name: c.name, node: u.label, scope: c.ref.frame.scope, reason: `ai.onnx opset ${opset} < 11` });
    return finish();
  }

  const unique = uniqueNamer(proto);
  const reads = readCounts(proto);
  const ctx = modelTensorContext(model);
  const edits = new GraphEdits();
  /** (graph, activation) → the DynamicQuantizeLinear outputs, created before the first MatMul reading it. */
  const dql = new Map<GraphProto, Map<string, [string, string, string]>>();
  const activation = (u: Use): [string, string, string] => {
    const a = u.node.input[0]!;
    let m = dql.get(u.graph);
    if (!m) dql.set(u.graph, (m = new Map()));
    let outs = m.get(a);
    if (!outs) {
      const base = a || 'A';
      outs = [unique(`${base}_quantized`), unique(`${base}_scale`), unique(`${base}_zero_point`)];
      m.set(a, outs);
      const node = create(NodeProtoSchema, { opType: 'DynamicQuantizeLinear', name: unique(`${base}_DynamicQuantizeLinear`), input: [a], output: outs });
      const list = edits.replace.get(u.node) ?? [u.node];
      edits.replace.set(u.node, [node, ...list]);
    }
    return outs;
  };
  /** Later MatMuls of a graph come after the first one, so DynamicQuantizeLinear goes before the earliest. */
  const ordered = [...byProto.values()].flatMap((c) => c.uses.map((u) => ({ c, u })));
  const position = new Map<NodeProto, number>();
  walkNodes(proto, (n) => position.set(n, position.size));
  ordered.sort((x, y) => position.get(x.u.node)! - position.get(y.u.node)!);

  const biasDone = new Map<TensorProto, string>();
  const done = new Map<Candidate, { q: string; s: string; z: string; scale: number } | null>();
  for (const { c, u } of ordered) {
    let w = done.get(c);
    if (w === undefined) {
      w = null;
      const scope = c.ref.frame.scope;
      const skipAll = (reason: string): void => {
        for (const x of c.uses) skipped.push({ name: c.name, node: x.label, scope, reason });
      };
      const dtype = tensorDType(c.ref.proto, model.path);
      const shape = tensorShape(c.ref.proto, model.path);
      const count = shape.reduce((a, d) => a * d, 1);
      if (dtype !== 'float32') skipAll(`dtype ${dtype} (only float32 weights)`);
      else if (shape.length < 2) skipAll(`rank ${shape.length} (< 2)`);
      else if (count < minElements) skipAll(`${count} elements (< ${minElements})`);
      else {
        let x = typedView(await tensorFromProto(c.ref.proto, ctx)) as Float32Array;
        // A transB Gemm weight is [N, K]: store it as MatMulInteger's [K, N] once.
        const transB = c.op === 'Gemm' && c.uses[0]!.gemm!.transB;
        if (transB) {
          if (shape.length !== 2) throw new ModelsmithError(ErrorCodes.MALFORMED, `Gemm weight has rank ${shape.length}`, { tensor: c.name, path: model.path });
          x = transpose2d(x, shape[0]!, shape[1]!);
          shape.reverse();
        }
        const finite = allFinite(x);
        if (!finite) skipAll('holds NaN or infinite values');
        else {
          const qmax = reduceRange ? 63 : 127;
          const axis = c.op === 'Conv' ? 0 : shape.length - 1;
          const toScale = (absmax: number): number => {
            const sc = Math.fround(absmax / qmax);
            return sc >= 2 ** -126 && Number.isFinite(sc) ? sc : 1;
          };
          let scales: Float32Array;
          let q: Int8Array;
          let deq: Float32Array;
          if (perChannel) {
            scales = Float32Array.from(minMaxAxis(x, shape, axis).absmax, toScale);
            const params = { scale: scales, zeroPoint: 0, shape, axis };
            q = quantizeLinear(x, { type: 'int8', ...params });
            deq = dequantizeLinear(q, params);
          } else {
            scales = Float32Array.of(toScale(minMax(x).absmax));
            q = quantizeLinear(x, { type: 'int8', scale: scales[0]!, zeroPoint: 0 });
            deq = dequantizeLinear(q, { scale: scales[0]!, zeroPoint: 0 });
          }
          const err = errorStats(x, deq);
          const scale = scales.reduce((a, v) => Math.max(a, v), 0);
          const sDims = !perChannel ? [] : c.op !== 'Conv' ? [shape[axis]!] : [shape[0]!, ...shape.slice(2).map(() => 1)];
          const names = { q: unique(`${c.name}_quantized`), s: unique(`${c.name}_scale`), z: unique(`${c.name}_zero_point`), scale };
          const tensors = [
            create(TensorProtoSchema, { name: names.q, dims: shape.map(BigInt), dataType: INT8, rawData: bytesOf(q) }),
            create(TensorProtoSchema, { name: names.s, dims: sDims.map(BigInt), dataType: FLOAT, rawData: bytesOf(scales) }),
            create(TensorProtoSchema, { name: names.z, dims: [], dataType: INT8, rawData: new Uint8Array(1) }),
          ];
          edits.place(c.ref, tensors, unique);
          if ((reads.get(c.name) ?? 0) === c.uses.length) edits.drop(c.ref);
          quantized.push({
            name: c.name, nodes: c.uses.map((y) => y.label), scope, kind: c.ref.kind, op: c.op, shape, scheme: perChannel ? 'per-channel' : 'per-tensor', scale, reduceRange,
            bytesBefore: x.byteLength, bytesAfter: tensors.reduce((a, t) => a + t.rawData.byteLength, 0),
            maxAbs: err.maxAbs, meanAbs: err.meanAbs, snrDb: err.snrDb, cosine: err.cosine,
          });
          w = names;
        }
      }
      done.set(c, w);
    }
    if (!w) continue;
    const [aq, as, az] = activation(u);
    const base = u.node.name || c.name;
    const y = u.node.output[0]!;
    const yi = unique(`${y}_int32`);
    const yf = unique(`${y}_float`);
    const sc = unique(`${y}_combined_scale`);
    const integerOp = c.op === 'Conv' ? 'ConvInteger' : 'MatMulInteger';
    const g = u.gemm;
    const tail = Boolean(u.bias) || (g !== undefined && (g.alpha !== 1 || g.c !== undefined));
    const scaled = tail ? unique(`${y}_scaled`) : y;
    const nodes = [
      create(NodeProtoSchema, { opType: integerOp, name: unique(`${base}_${integerOp}`), input: [aq, w.q, az, w.z], output: [yi], attribute: c.op === 'Conv' ? [...u.node.attribute] : [] }),
      create(NodeProtoSchema, { opType: 'Cast', name: unique(`${base}_Cast`), input: [yi], output: [yf], attribute: [intAttr('to', FLOAT)] }),
      create(NodeProtoSchema, { opType: 'Mul', name: unique(`${base}_scale_Mul`), input: [as, w.s], output: [sc] }),
      create(NodeProtoSchema, { opType: 'Mul', name: unique(`${base}_Mul`), input: [yf, sc], output: [scaled] }),
    ];
    if (u.bias) {
      const b = u.node.input[2]!;
      let rb = biasDone.get(u.bias.proto);
      if (!rb) {
        const bv = typedView(await tensorFromProto(u.bias.proto, ctx)) as Float32Array;
        const wshape = tensorShape(c.ref.proto, model.path);
        rb = unique(`${b}_reshaped`);
        edits.place(u.bias, [create(TensorProtoSchema, { name: rb, dims: [BigInt(bv.length), ...wshape.slice(2).map(() => 1n)], dataType: FLOAT, rawData: bytesOf(bv) })], unique);
        biasDone.set(u.bias.proto, rb);
        if ((reads.get(b) ?? 0) === 1) edits.drop(u.bias);
      }
      nodes.push(create(NodeProtoSchema, { opType: 'Add', name: unique(`${base}_bias_Add`), input: [scaled, rb], output: [y] }));
    }
    if (g) nodes.push(...gemmTail(g, scaled, y, base, unique, (t) => edits.place(c.ref, [t], unique)));
    const list = edits.replace.get(u.node) ?? [u.node];
    edits.replace.set(u.node, [...list.filter((n) => n !== u.node), ...nodes]);
  }

  if (quantized.length) {
    edits.apply(proto);
    if (edits.addedInitializers) raiseIr(proto, diagnostics);
  }
  return finish();
}

/**
 * After the rescale of a Gemm: Y = alpha · (A·B) + beta · C. alpha and beta go in as scalar constants
 * (placed beside the weight), so a computed C works as well as a constant one; Add broadcasts C as
 * Gemm's unidirectional broadcast does.
 */
function gemmTail(g: NonNullable<Use['gemm']>, scaled: string, y: string, base: string, unique: (b: string) => string, place: (t: TensorProto) => void): NodeProto[] {
  const nodes: NodeProto[] = [];
  const scalar = (v: number, what: string): string => {
    const name = unique(`${base}_${what}`);
    place(create(TensorProtoSchema, { name, dims: [], dataType: FLOAT, rawData: bytesOf(Float32Array.of(v)) }));
    return name;
  };
  let cur = scaled;
  if (g.alpha !== 1) {
    const next = g.c !== undefined ? unique(`${y}_alpha`) : y;
    nodes.push(create(NodeProtoSchema, { opType: 'Mul', name: unique(`${base}_alpha_Mul`), input: [cur, scalar(g.alpha, 'alpha')], output: [next] }));
    cur = next;
  }
  if (g.c !== undefined) {
    let c = g.c;
    if (g.beta !== 1) {
      const bc = unique(`${g.c}_beta`);
      nodes.push(create(NodeProtoSchema, { opType: 'Mul', name: unique(`${base}_beta_Mul`), input: [g.c, scalar(g.beta, 'beta')], output: [bc] }));
      c = bc;
    }
    nodes.push(create(NodeProtoSchema, { opType: 'Add', name: unique(`${base}_C_Add`), input: [cur, c], output: [y] }));
  }
  return nodes;
}

function attrInt(n: NodeProto, name: string, dflt: number): number {
  const a = n.attribute.find((x) => x.name === name);
  return a ? Number(a.i) : dflt;
}

function attrFloat(n: NodeProto, name: string, dflt: number): number {
  const a = n.attribute.find((x) => x.name === name);
  return a ? a.f : dflt;
}
