/**
 * 4-bit blockwise weight-only quantization for MatMul: every default-domain `MatMul` whose B input is a
 * float32 2-D weight [K, N] (an initializer or a `Constant` node, in the node's graph or an enclosing
 * one) is replaced by onnxruntime's contrib op
 *
 *   com.microsoft::MatMulNBits(A, B_q uint8 [N, k_blocks, block_size/2], scales float [N, k_blocks]
 *                               [, zero_points uint8 [N, ceil(k_blocks/2)]])
 *   attributes K, N, bits = 4, block_size (a power of two in 16..256, default 32), accuracy_level
 *
 * with the same output name. The weight is transposed to [N, K] on the host and quantized per block of
 * `block_size` values along K (kernels/quantize.ts quantizeMatMulNBits). Symmetric (default) stores no
 * zero points (onnxruntime's default 8); asymmetric stores packed per-block zero points. A weight read
 * by several MatMuls is quantized once; the float weight is removed when nothing else reads it.
 *
 * MatMul requires A and B of the same type, so a float32 B implies a float32 A. Skipped, with the
 * reason in the report: excluded names, non-float32 or non-2-D weights, weights with NaN/Inf, K smaller
 * than the block size, and B inputs that are computed (not a constant). `com.microsoft` opset 1 is
 * imported when missing; ir_version < 4 is raised to 4 (initializers need not be inputs).
 *
 * Embedding tables: a default-domain `Gather` (axis 0) whose data is a float32 2-D constant [V, D]
 * becomes
 *
 *   com.microsoft::GatherBlockQuantized(data uint8 [V, D/2], indices, scales float [V, ceil(D/bs)]
 *                                        [, zero_points uint8 [V, ceil(ceil(D/bs)/2)]])
 *   attributes bits = 4, block_size, gather_axis = 0, quantize_axis = 1
 *
 * blocks along D, the same codes as MatMulNBits (symmetric: zero point 8, not stored). Unlike
 * MatMulNBits the rows are not padded to whole blocks (onnxruntime derives D from the packed width),
 * so an odd D cannot be represented and is skipped. onnxruntime-node 1.30 runs it on the CPU (negative
 * indices included; tested).
 * A table read by a MatMul too (tied embeddings) gets both forms.
 */
import { create } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  TensorProtoSchema,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
} from 'onnx-buf';
import { allFinite, typedView } from '../../core/tensor.js';
import type { Diagnostic } from '../../core/errors.js';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import type { OnnxModel } from '../../formats/onnx/read.js';
import { modelTensorContext, tensorDType, tensorFromProto, tensorShape } from '../../formats/onnx/tensor.js';
import { initKernels } from '../../kernels/loader.js';
import { dequantizeBlockwise4, dequantizeMatMulNBits, quantizeBlockwise4, quantizeMatMulNBits } from '../../kernels/quantize.js';
import { packZeroPointRows } from '../../kernels/reference/quantize.js';
import { transpose2d } from '../../kernels/layout.js';
import { errorStats } from '../../eval/metrics.js';
import { sizeReport, tensorBytes, type SizeReport } from '../report.js';
import { isDefaultDomain } from './registry.js';
import { readCounts, resolveConst, subgraphs, uniqueNamer, walkNodes, type ConstFrame, type ConstRef } from '../graph.js';

export interface QuantizeInt4Options {
  /** Block size along K: a power of two in 16..256 (default 32). */
  blockSize?: number;
  /** Symmetric codes around 8 (default true); false stores per-block zero points. */
  symmetric?: boolean;
  /** MatMulNBits accuracy_level attribute (0 = unset, 1 fp32, 2 fp16, 3 bf16, 4 int8); default 0 (omitted). */
  accuracyLevel?: number;
  /** Leave MatMuls / Gathers alone by weight name or node name. */
  exclude?: { names?: string[] };
  /** Ops to rewrite (default both): 'MatMul' → MatMulNBits, 'Gather' → GatherBlockQuantized. */
  opTypes?: Int4Op[];
}

export type Int4Op = 'MatMul' | 'Gather';

export interface Int4Tensor {
  /** Weight (B input) name. */
  name: string;
  /** MatMul or Gather node names (or op#index) replaced. */
  nodes: string[];
  /** The op rewritten: MatMul → MatMulNBits, Gather → GatherBlockQuantized. */
  op: Int4Op;
  scope: string;
  kind: 'initializer' | 'constant';
  /** [K, N] as MatMul reads it; [V, D] for a Gather table. */
  shape: [number, number];
  blockSize: number;
  symmetric: boolean;
  bytesBefore: number;
  bytesAfter: number;
  maxAbs: number;
  meanAbs: number;
  snrDb: number;
  cosine: number;
}

export interface Int4Skipped {
  name: string;
  node: string;
  scope: string;
  reason: string;
}

export interface QuantizeInt4Report {
  options: { blockSize: number; symmetric: boolean; accuracyLevel: number; opTypes: Int4Op[] };
  quantized: Int4Tensor[];
  skipped: Int4Skipped[];
  size: SizeReport;
  diagnostics: Diagnostic[];
}

// ---------------------------------------------------------------------------------------------
// Quantization helpers shared with dynamic.ts (model-wide graph helpers are in ../graph.ts).

/**
 * Resolve the B input (input 1) of a MatMul/Conv to its constant weight, or record in `skipped` why
 * it is not rewritten (excluded by weight or node name, or computed at run time).
 */
export function constantWeightInput(
  n: NodeProto,
  label: string,
  frames: ConstFrame[],
  exNames: Set<string>,
  skipped: { name: string; node: string; scope: string; reason: string }[],
): ConstRef | undefined {
  const b = n.input[1]!;
  const scope = frames[0]!.scope;
  if (exNames.has(b) || (n.name !== '' && exNames.has(n.name))) {
    skipped.push({ name: b, node: label, scope, reason: 'excluded' });
    return undefined;
  }
  const ref = resolveConst(b, frames);
  if (!ref) skipped.push({ name: b, node: label, scope, reason: 'B is computed, not a constant weight' });
  return ref;
}

export function intAttr(name: string, i: number) {
  return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(i) });
}

export function bytesOf(a: ArrayBufferView): Uint8Array<ArrayBuffer> {
  return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength) as ArrayBuffer);
}

export function constantNode(tp: TensorProto, name: string): NodeProto {
  return create(NodeProtoSchema, {
    opType: 'Constant',
    name,
    output: [tp.name],
    attribute: [create(AttributeProtoSchema, { name: 'value', type: AttributeProto_AttributeType.TENSOR, t: tp })],
  });
}

/**
 * Pending edits of a pass: new tensors placed beside the weight they derive from, float weights to
 * drop, nodes to replace. Applied in one walk at the end.
 */
export class GraphEdits {
  /** initializer → tensors to add after it (the initializer itself kept unless in dropInits). */
  readonly addInits = new Map<GraphProto, TensorProto[]>();
  /** Constant node → Constant nodes to put before it. */
  readonly addBefore = new Map<NodeProto, NodeProto[]>();
  readonly dropInits = new Set<TensorProto>();
  readonly dropNodes = new Set<NodeProto>();
  readonly replace = new Map<NodeProto, NodeProto[]>();
  addedInitializers = false;

  /** Add tensors where `ref` lives: as initializers of its graph, or Constant nodes before its Constant. */
  place(ref: ConstRef, tensors: TensorProto[], unique: (b: string) => string): void {
    if (ref.kind === 'initializer') {
      const l = this.addInits.get(ref.frame.graph) ?? [];
      l.push(...tensors);
      this.addInits.set(ref.frame.graph, l);
      this.addedInitializers = true;
    } else {
      const l = this.addBefore.get(ref.constNode!) ?? [];
      l.push(...tensors.map((t) => constantNode(t, unique(`${t.name}_Constant`))));
      this.addBefore.set(ref.constNode!, l);
    }
  }

  drop(ref: ConstRef): void {
    if (ref.kind === 'initializer') this.dropInits.add(ref.proto);
    else this.dropNodes.add(ref.constNode!);
  }

  apply(proto: ModelProto): void {
    const edit = (g: GraphProto): void => {
      const add = this.addInits.get(g);
      if (add || g.initializer.some((t) => this.dropInits.has(t))) {
        const removed = new Set(g.initializer.filter((t) => this.dropInits.has(t)).map((t) => t.name));
        g.initializer = [...g.initializer.filter((t) => !this.dropInits.has(t)), ...(add ?? [])];
        g.input = g.input.filter((v) => !removed.has(v.name));
      }
      if (g.node.some((n) => this.addBefore.has(n) || this.dropNodes.has(n) || this.replace.has(n))) {
        g.node = g.node.flatMap((n) => {
          const pre = this.addBefore.get(n) ?? [];
          const self = this.dropNodes.has(n) ? [] : (this.replace.get(n) ?? [n]);
          return [...pre, ...self];
        });
      }
      for (const n of g.node) subgraphs(n).forEach(edit);
    };
    if (proto.graph) edit(proto.graph);
  }
}

export function ensureOpset(proto: ModelProto, domain: string, version: number, diagnostics: Diagnostic[]): void {
  if (proto.opsetImport.some((o) => o.domain === domain)) return;
  proto.opsetImport.push(create(OperatorSetIdProtoSchema, { domain, version: BigInt(version) }));
  diagnostics.push({ level: 'info', code: 'quantize.opset_added', message: `opset_import ${domain} version ${version} added` });
}

export function raiseIr(proto: ModelProto, diagnostics: Diagnostic[]): void {
  if (proto.irVersion < 4n) {
    diagnostics.push({ level: 'info', code: 'quantize.ir_version_raised', message: `ir_version raised from ${proto.irVersion} to 4 so the new initializers need not be graph inputs` });
    proto.irVersion = 4n;
  }
}

// ---------------------------------------------------------------------------------------------

function checkOptions(o: QuantizeInt4Options): { blockSize: number; symmetric: boolean; accuracyLevel: number; opTypes: Int4Op[] } {
  const blockSize = o.blockSize ?? 32;
  if (!Number.isInteger(blockSize) || blockSize < 16 || blockSize > 256 || (blockSize & (blockSize - 1)) !== 0) {
    throw new ModelsmithError(ErrorCodes.USAGE, `block size must be a power of two in 16..256, got ${String(o.blockSize)}`);
  }
  const accuracyLevel = o.accuracyLevel ?? 0;
  if (!Number.isInteger(accuracyLevel) || accuracyLevel < 0 || accuracyLevel > 4) {
    throw new ModelsmithError(ErrorCodes.USAGE, `accuracy level must be an integer in 0..4, got ${String(o.accuracyLevel)}`);
  }
  const opTypes = o.opTypes ?? ['MatMul', 'Gather'];
  for (const t of opTypes) if (t !== 'MatMul' && t !== 'Gather') throw new ModelsmithError(ErrorCodes.USAGE, `4-bit quantization rewrites MatMul and Gather, not '${String(t)}'`);
  return { blockSize, symmetric: o.symmetric ?? true, accuracyLevel, opTypes: [...opTypes] };
}

interface Int4Candidate {
  name: string;
  ref: ConstRef;
  nodes: { node: NodeProto; label: string }[];
}

function attrOf(n: NodeProto, name: string, dflt: number): number {
  const a = n.attribute.find((x) => x.name === name);
  return a ? Number(a.i) : dflt;
}

/** Replace MatMuls with float32 constant weights by MatMulNBits, in place (the same object is returned). */
export async function quantizeInt4(model: OnnxModel, opts: QuantizeInt4Options = {}): Promise<{ model: OnnxModel; report: QuantizeInt4Report }> {
  const o = checkOptions(opts);
  const opTypes = o.opTypes;
  await initKernels();
  const proto = model.proto;
  const before = tensorBytes(model);
  const diagnostics: Diagnostic[] = [];
  const quantized: Int4Tensor[] = [];
  const skipped: Int4Skipped[] = [];
  const exNames = new Set(opts.exclude?.names ?? []);

  const byProto = new Map<TensorProto, Int4Candidate>();
  const gathers = new Map<TensorProto, Int4Candidate>();
  walkNodes(proto, (n, label, frames) => {
    if (!isDefaultDomain(n.domain) || n.input.length < 2) return;
    if (n.opType === 'Gather' && opTypes.includes('Gather')) {
      const d = n.input[0]!;
      const scope = frames[0]!.scope;
      if (exNames.has(d) || (n.name !== '' && exNames.has(n.name))) { skipped.push({ name: d, node: label, scope, reason: 'excluded' }); return; }
      // Gathers of computed tensors (shapes, indices) are everywhere and not weights: not worth a skip line.
      const ref = resolveConst(d, frames);
      if (!ref) return;
      const axis = attrOf(n, 'axis', 0);
      if (axis !== 0 && axis !== -2) { skipped.push({ name: d, node: label, scope, reason: `Gather axis ${axis} (GatherBlockQuantized here gathers rows, axis 0)` }); return; }
      let c = gathers.get(ref.proto);
      if (!c) gathers.set(ref.proto, (c = { name: d, ref, nodes: [] }));
      c.nodes.push({ node: n, label });
      return;
    }
    if (n.opType !== 'MatMul' || !opTypes.includes('MatMul')) return;
    const b = n.input[1]!;
    const ref = constantWeightInput(n, label, frames, exNames, skipped);
    if (!ref) return;
    let c = byProto.get(ref.proto);
    if (!c) byProto.set(ref.proto, (c = { name: b, ref, nodes: [] }));
    c.nodes.push({ node: n, label });
  });

  const finish = (): { model: OnnxModel; report: QuantizeInt4Report } => ({
    model,
    report: { options: o, quantized, skipped, size: sizeReport(before, tensorBytes(model)), diagnostics },
  });
  if (byProto.size === 0 && gathers.size === 0 && skipped.length === 0) {
    diagnostics.push({ level: 'info', code: 'quantize.no_matmul', message: `no ${opTypes.join('/')} weights: nothing to quantize to 4 bits` });
    return finish();
  }

  const unique = uniqueNamer(proto);
  const reads = readCounts(proto);
  const ctx = modelTensorContext(model);
  const edits = new GraphEdits();
  /** Readers of each weight that were rewritten (MatMul and Gather uses of one table add up). */
  const replaced = new Map<TensorProto, { ref: ConstRef; name: string; count: number }>();
  const noteReplaced = (c: Int4Candidate): void => {
    const r = replaced.get(c.ref.proto) ?? { ref: c.ref, name: c.name, count: 0 };
    r.count += c.nodes.length;
    replaced.set(c.ref.proto, r);
  };

  for (const c of byProto.values()) {
    const scope = c.ref.frame.scope;
    const skipAll = (reason: string): void => {
      for (const u of c.nodes) skipped.push({ name: c.name, node: u.label, scope, reason });
    };
    const dtype = tensorDType(c.ref.proto, model.path);
    if (dtype !== 'float32') { skipAll(`dtype ${dtype} (only float32 weights)`); continue; }
    const shape = tensorShape(c.ref.proto, model.path);
    if (shape.length !== 2) { skipAll(`B has rank ${shape.length} (MatMulNBits needs a 2-D weight)`); continue; }
    const [K, N] = shape as [number, number];
    if (K < o.blockSize) { skipAll(`K = ${K} < block size ${o.blockSize}`); continue; }
    if (N < 1) { skipAll('empty weight'); continue; }
    const t = await tensorFromProto(c.ref.proto, ctx);
    const w = typedView(t) as Float32Array;
    const finite = allFinite(w);
    if (!finite) { skipAll('holds NaN or infinite values'); continue; }

    const wt = transpose2d(w, K, N); // [N, K]
    const m = quantizeMatMulNBits(wt, N, K, o.blockSize, o.symmetric);
    const err = errorStats(wt, dequantizeMatMulNBits(m));
    const kb = Math.ceil(K / o.blockSize);
    const bName = unique(`${c.name}_Q4`);
    const sName = unique(`${c.name}_scales`);
    const tensors = [
      create(TensorProtoSchema, { name: bName, dims: [BigInt(N), BigInt(kb), BigInt(o.blockSize / 2)], dataType: 2, rawData: bytesOf(m.B) }),
      create(TensorProtoSchema, { name: sName, dims: [BigInt(N), BigInt(kb)], dataType: 1, rawData: bytesOf(m.scales) }),
    ];
    const inputs = ['', bName, sName];
    if (m.zeroPoints) {
      const zName = unique(`${c.name}_zero_points`);
      tensors.push(create(TensorProtoSchema, { name: zName, dims: [BigInt(N), BigInt(Math.ceil(kb / 2))], dataType: 2, rawData: bytesOf(m.zeroPoints) }));
      inputs.push(zName);
    }
    edits.place(c.ref, tensors, unique);
    for (const u of c.nodes) {
      const attribute = [intAttr('K', K), intAttr('N', N), intAttr('bits', 4), intAttr('block_size', o.blockSize)];
      if (o.accuracyLevel) attribute.push(intAttr('accuracy_level', o.accuracyLevel));
      edits.replace.set(u.node, [create(NodeProtoSchema, {
        opType: 'MatMulNBits',
        domain: 'com.microsoft',
        name: unique(`${u.node.name || c.name}_MatMulNBits`),
        input: [u.node.input[0]!, ...inputs.slice(1)],
        output: [...u.node.output],
      })]);
      edits.replace.get(u.node)![0]!.attribute = attribute;
    }
    noteReplaced(c);
    quantized.push({
      name: c.name, nodes: c.nodes.map((u) => u.label), op: 'MatMul', scope, kind: c.ref.kind, shape: [K, N], blockSize: o.blockSize, symmetric: o.symmetric,
      bytesBefore: w.byteLength, bytesAfter: tensors.reduce((a, x) => a + x.rawData.byteLength, 0),
      maxAbs: err.maxAbs, meanAbs: err.meanAbs, snrDb: err.snrDb, cosine: err.cosine,
    });
  }

  for (const c of gathers.values()) {
    const q = await quantizeGather(c, model, ctx, o, unique, edits, skipped);
    if (!q) continue;
    noteReplaced(c);
    quantized.push(q);
  }
  // Drop a float weight when the rewritten nodes were its only readers.
  for (const r of replaced.values()) if ((reads.get(r.name) ?? 0) === r.count) edits.drop(r.ref);

  if (quantized.length) {
    edits.apply(proto);
    ensureOpset(proto, 'com.microsoft', 1, diagnostics);
    if (edits.addedInitializers) raiseIr(proto, diagnostics);
  }
  return finish();
}

/**
 * One embedding table → GatherBlockQuantized for each of its Gathers (edits queued), or undefined
 * with the reason in `skipped`.
 */
async function quantizeGather(c: Int4Candidate, model: OnnxModel, ctx: ReturnType<typeof modelTensorContext>,
  o: { blockSize: number; symmetric: boolean }, unique: (b: string) => string, edits: GraphEdits, skipped: Int4Skipped[]): Promise<Int4Tensor | undefined> {
  const scope = c.ref.frame.scope;
  const skipAll = (reason: string): undefined => {
    for (const u of c.nodes) skipped.push({ name: c.name, node: u.label, scope, reason });
    return undefined;
  };
  const dtype = tensorDType(c.ref.proto, model.path);
  if (dtype !== 'float32') return skipAll(`dtype ${dtype} (only float32 tables)`);
  const shape = tensorShape(c.ref.proto, model.path);
  if (shape.length !== 2) return skipAll(`data has rank ${shape.length} (GatherBlockQuantized is used for 2-D tables)`);
  const [V, D] = shape as [number, number];
  if (D < o.blockSize) return skipAll(`D = ${D} < block size ${o.blockSize}`);
  // onnxruntime takes the row width from the packed uint8 width times two: an odd D has no encoding.
  if (D % 2) return skipAll(`D = ${D} is odd (packed rows need an even width)`);
  if (V < 1) return skipAll('empty table');
  const w = typedView(await tensorFromProto(c.ref.proto, ctx)) as Float32Array;
  if (!allFinite(w)) return skipAll('holds NaN or infinite values');

  const b = quantizeBlockwise4(w, [V, D], o.blockSize, o.symmetric ? 'uint4-sym' : 'uint4');
  const err = errorStats(w, dequantizeBlockwise4(b));
  const kb = Math.ceil(D / o.blockSize);
  const dName = unique(`${c.name}_Q4`);
  const sName = unique(`${c.name}_scales`);
  const tensors = [
    create(TensorProtoSchema, { name: dName, dims: [BigInt(V), BigInt(D / 2)], dataType: 2, rawData: bytesOf(b.data) }),
    create(TensorProtoSchema, { name: sName, dims: [BigInt(V), BigInt(kb)], dataType: 1, rawData: bytesOf(b.scales) }),
  ];
  const params = [sName];
  if (!o.symmetric) {
    const zName = unique(`${c.name}_zero_points`);
    tensors.push(create(TensorProtoSchema, { name: zName, dims: [BigInt(V), BigInt(Math.ceil(kb / 2))], dataType: 2, rawData: bytesOf(packZeroPointRows(b.zeroPoints, V, kb)) }));
    params.push(zName);
  }
  edits.place(c.ref, tensors, unique);
  for (const u of c.nodes) {
    const node = create(NodeProtoSchema, {
      opType: 'GatherBlockQuantized',
      domain: 'com.microsoft',
      name: unique(`${u.node.name || c.name}_GatherBlockQuantized`),
      input: [dName, u.node.input[1]!, ...params],
      output: [...u.node.output],
    });
    node.attribute = [intAttr('bits', 4), intAttr('block_size', o.blockSize), intAttr('gather_axis', 0), intAttr('quantize_axis', 1)];
    edits.replace.set(u.node, [node]);
  }
  return {
    name: c.name, nodes: c.nodes.map((u) => u.label), op: 'Gather', scope, kind: c.ref.kind, shape: [V, D], blockSize: o.blockSize, symmetric: o.symmetric,
    bytesBefore: w.byteLength, bytesAfter: tensors.reduce((a, x) => a + x.rawData.byteLength, 0),
    maxAbs: err.maxAbs, meanAbs: err.meanAbs, snrDb: err.snrDb, cosine: err.cosine,
  };
}
