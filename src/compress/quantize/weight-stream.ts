/**
 * Weight-only int8/uint8 quantization of an ONNX model that is never held whole in memory: the
 * graph is decoded from a skeleton (formats/onnx/stream), big payloads stay in the source, and the
 * output is written by writeOnnx, which streams every payload window by window. The result is the
 * same bytes as readOnnx → quantizeWeights → writeOnnx (tested on the corpus).
 *
 * Two ways to read the source:
 * - 'random' (files, Blobs): the lazy model goes through quantizeWeights unchanged; each weight is read
 *   from the source when it is quantized, every other payload when it is written.
 *   Memory: graph structure + the int8 codes + one tensor in the kernel arena + one write window.
 * - 'forward' (a request body that can be read once, in order): each float weight is quantized
 *   *as the scan passes it*, because its bytes are gone afterwards. That needs the weight's channel
 *   axis before the rest of the file is read; protobuf writers emit a graph's nodes (field 1) before
 *   its initializers (field 5), so the consumers are known by then. The guess is checked against the
 *   full graph at the end and the model is refused (E_UNSUPPORTED) if the file's order made it
 *   wrong. Payloads that are not quantized are kept as they pass. The graph edits are then the same
 *   as quantizeWeights' (mirrored below: its per-tensor core is not exported).
 *   Memory: graph structure + codes + payloads not quantized + one float tensor in the arena.
 */
import { create } from '@bufbuild/protobuf';
import { applyWeightEdits, candidateOps, dequantizeForm, isExcluded, newWeightEdits, recordQuantizedWeight, weightPlan } from './weight-edits.js';
import {
  GraphProtoSchema,
  ModelProtoSchema,
  TensorProtoSchema,
  type GraphProto,
  type TensorProto,
} from 'onnx-buf';
import { dtypeInfo } from '../../core/dtype.js';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import type { ByteSink, ByteSource } from '../../io/source.js';
import type { OnnxModel } from '../../formats/onnx/read.js';
import { externalDataRef, modelTensorContext, payloadReader } from '../../formats/onnx/tensor.js';
import { writeOnnx, type WriteOnnxStats } from '../../formats/onnx/write.js';
import { readOnnxLazy, type LazyOnnxModel, type ReadOnnxLazyOptions } from '../../formats/onnx/stream/lazy.js';
import { PAYLOAD_LOCATION, type PayloadContext, type PayloadDecision, type PayloadRef } from '../../formats/onnx/stream/scan.js';
import type { ScanLimits } from '../../formats/onnx/wire.js';
import { initKernels, type Kernels } from '../../kernels/loader.js';
import { quantizeStatsWindows } from '../../kernels/quantize.js';
import { minMaxAxisWindows, minMaxWindows } from '../../kernels/stats.js';
import { withArenaAsync } from '../arena-lock.js';
import { defaultOpset, findWeightCandidates, uniqueNamer, type WeightCandidate } from '../graph.js';
import { raiseIr } from './int4.js';
import { checkOptions, quantizeWeights, weightParams, weightReport, type QuantizeWeightsOptions, type QuantizeWeightsReport } from './weight.js';

export interface QuantizeOnnxSourceOptions extends Omit<QuantizeWeightsOptions, 'spill'> {
  /** Name used in messages (default: the source name). */
  path?: string;
  /** Resolver for the model's own external data files, if any. */
  siblings?: ReadOnnxLazyOptions['siblings'];
  /** 'random' (default): the source can be read again; 'forward': it is read once, in order. */
  access?: 'random' | 'forward';
  /** raw_data of at least this many bytes is not copied into the decoded graph (default 64 KiB). */
  lazyThreshold?: number;
  /**
   * 'forward' only: the largest weight quantized as it passes (its floats sit in the kernel arena
   * at once); a bigger one is E_LIMIT. Default 256 MiB.
   */
  maxTensorBytes?: number;
  /**
   * 'forward' only: cap on the bytes kept in memory until the model is written (codes of the
   * weights quantized so far + payloads kept as they passed); over it is E_LIMIT, raised as soon as
   * it is reached. Default: no cap.
   */
  maxKeptBytes?: number;
  limits?: Partial<ScanLimits>;
}

export interface QuantizedOnnxSource {
  /** The quantized model; its untouched payloads are still in the source: write it before closing that. */
  model: OnnxModel;
  report: QuantizeWeightsReport;
  /** Where the big payloads went: quantized as the scan passed them, kept in memory, or left in the source. */
  payloads: { consumed: number; held: number; heldBytes: number; lazy: number };
}

function payloadStats(m: LazyOnnxModel): QuantizedOnnxSource['payloads'] {
  const p = m.scan.payloads;
  let heldBytes = 0;
  for (const b of m.scan.held.values()) heldBytes += b.byteLength;
  return {
    consumed: p.filter((x) => x.decision === 'consumed').length,
    held: p.filter((x) => x.decision === 'hold').length,
    heldBytes,
    lazy: p.filter((x) => x.decision === 'lazy').length,
  };
}

const FLOAT = dtypeInfo('float32').onnx;
/** Read step into the arena, as quantizeWeights (same chunks: the min/max kernels see the same calls). */
const READ_CHUNK_ELEMENTS = 2 * 2 ** 20;
const DEFAULT_MAX_TENSOR_BYTES = 256 * 2 ** 20;

/** Quantize the weights of the ONNX model in `source`; write the result with writeOnnx. */
export async function quantizeOnnxSource(source: ByteSource, opts: QuantizeOnnxSourceOptions): Promise<QuantizedOnnxSource> {
  const access = opts.access ?? 'random';
  if (access !== 'random' && access !== 'forward') throw new ModelsmithError(ErrorCodes.USAGE, `access must be 'random' or 'forward', got '${String(access)}'`);
  const lazyOpts: ReadOnnxLazyOptions = { path: opts.path ?? source.name };
  if (opts.siblings) lazyOpts.siblings = opts.siblings;
  if (opts.lazyThreshold !== undefined) lazyOpts.threshold = opts.lazyThreshold;
  if (opts.limits) lazyOpts.limits = opts.limits;
  const qopts: QuantizeWeightsOptions = { dtype: opts.dtype, perChannel: opts.perChannel, symmetric: opts.symmetric };
  if (opts.exclude) qopts.exclude = opts.exclude;
  if (opts.minElements !== undefined) qopts.minElements = opts.minElements;
  if (opts.arenaBytes !== undefined) qopts.arenaBytes = opts.arenaBytes;
  if (access === 'random') {
    const model = await readOnnxLazy(source, lazyOpts);
    const { report } = await quantizeWeights(model, qopts);
    return { model, report, payloads: payloadStats(model) };
  }
  return quantizeForward(source, lazyOpts, qopts, opts.maxTensorBytes ?? DEFAULT_MAX_TENSOR_BYTES, opts.maxKeptBytes ?? Number.MAX_SAFE_INTEGER);
}

/** quantizeOnnxSource + writeOnnx: the quantized model streamed to `sink`. */
export async function quantizeOnnxStream(source: ByteSource, sink: ByteSink, opts: QuantizeOnnxSourceOptions): Promise<QuantizedOnnxSource & { stats: WriteOnnxStats }> {
  const r = await quantizeOnnxSource(source, opts);
  const stats = await writeOnnx(r.model, sink);
  return { ...r, stats };
}

// ------------------------------------------------------------------------------------------------
// forward access
// ------------------------------------------------------------------------------------------------

interface Quantized {
  scale: number | Float32Array;
  zp: number | Int32Array;
  sums: Float64Array;
  codes: Uint8Array;
}

interface Speculation {
  axis: number | undefined;
  result: Quantized;
}

/**
 * The candidate a graph initializer would be, judged from the graph read so far plus this tensor:
 * its first registered consumer gives the axis. Undefined when no registered node reads it.
 */
function candidateSoFar(graph: GraphProto, ref: PayloadRef): WeightCandidate | undefined {
  const stub = create(TensorProtoSchema, { name: ref.name, dims: ref.dims.map((d) => BigInt(d)), dataType: ref.dataType });
  const g = create(GraphProtoSchema, { ...graph, initializer: [...graph.initializer, stub] });
  const m = create(ModelProtoSchema, { graph: g });
  return findWeightCandidates(m).find((c) => c.proto === stub);
}

async function quantizeForward(source: ByteSource, lazyOpts: ReadOnnxLazyOptions, opts: QuantizeWeightsOptions, maxTensorBytes: number, maxKept: number): Promise<QuantizedOnnxSource> {
  const minElements = checkOptions(opts);
  const path = lazyOpts.path ?? source.name;
  const k = await initKernels();
  const exNames = new Set(opts.exclude?.names ?? []);
  const exOps = new Set(opts.exclude?.opTypes ?? []);
  /** Payload offset → what was computed as it passed. */
  const speculated = new Map<number, Speculation>();

  let kept = 0;
  const keep = (bytes: number, ref: PayloadRef): void => {
    kept += bytes;
    if (kept > maxKept) {
      throw new ModelsmithError(ErrorCodes.LIMIT, `more than ${maxKept} bytes would be kept in memory until the model is written (quantized weights and tensors that are not quantized)`, { path, tensor: ref.name, offset: ref.offset, format: 'onnx' });
    }
  };
  const onPayload = async (ref: PayloadRef, pctx: PayloadContext): Promise<PayloadDecision | Uint8Array> => {
    const d = await decide(ref, pctx);
    keep(d === 'consumed' ? ref.length / 4 : ref.length, ref);
    return d;
  };
  const decide = async (ref: PayloadRef, pctx: PayloadContext): Promise<PayloadDecision | Uint8Array> => {
    if (ref.role !== 'initializer' || ref.dataType !== FLOAT || ref.dims.length < 2) return 'hold';
    const count = ref.length / 4;
    if (count < minElements || exNames.has(ref.name)) return 'hold';
    const graph = pctx.graphSoFar();
    if (!graph) return 'hold';
    const c = candidateSoFar(graph, ref);
    if (!c || isExcluded(c, exNames, exOps)) return 'hold';
    if (ref.length > maxTensorBytes) {
      throw new ModelsmithError(ErrorCodes.LIMIT, `weight of ${ref.length} bytes is over the ${maxTensorBytes}-byte limit for quantizing a stream as it is read`, { path, tensor: ref.name, offset: ref.offset, format: 'onnx' });
    }
    const axis = c.uses[0]!.axis(ref.dims.length);
    const channelAxis = opts.perChannel && axis >= 0 && axis < ref.dims.length ? axis : undefined;
    const q = await quantizeWhole(k, pctx.read, ref.dims, count, channelAxis, opts);
    if ('floats' in q) return q.floats; // NaN/Inf: quantizeWeights skips it, so it is written as it was
    speculated.set(ref.offset, { axis: channelAxis, result: q });
    return 'consumed';
  };

  const model = await readOnnxLazy(source, { ...lazyOpts, keep: 'hold', onPayload });
  const proto = model.proto;
  const offsetOf = (tp: TensorProto): number | undefined => {
    const ref = externalDataRef(tp, path);
    return ref?.location === PAYLOAD_LOCATION ? ref.offset : undefined;
  };
  const unsupported = (why: string, tensor?: string): never => {
    const ctx: { path: string; format: string; tensor?: string } = { path, format: 'onnx' };
    if (tensor !== undefined) ctx.tensor = tensor;
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `cannot quantize this model from a stream read once: ${why}; read it from a file or Blob instead`, ctx);
  };

  const { diagnostics, quantized, skipped, report } = weightReport(model, opts, minElements);
  const candidates = findWeightCandidates(proto);
  const opset = defaultOpset(proto);
  const opsOf = candidateOps;

  // Every weight used up by the scan must be quantized now, exactly as it was.
  const used = new Set<number>();
  for (const c of candidates) {
    const off = offsetOf(c.proto);
    if (off !== undefined && speculated.has(off)) used.add(off);
  }
  for (const [off] of speculated) {
    if (!used.has(off)) unsupported(`the weight at byte ${off} turned out not to be a weight once the whole graph was read (fields out of the usual order)`);
  }
  if (speculated.size > 0 && (opset === undefined || opset < 7)) unsupported(`ai.onnx opset ${opset ?? '(none)'} is only known at the end of the file and leaves weights unquantized`);

  const form = dequantizeForm(opset, opts.perChannel, diagnostics);
  if (!form) {
    for (const c of candidates) skipped.push({ name: c.name, op: opsOf(c), scope: c.frame.scope, reason: `ai.onnx opset ${opset ?? 'missing'} < 7` });
    return { model, report: report(), payloads: payloadStats(model) };
  }
  const perChannel = opts.perChannel;
  const unique = uniqueNamer(proto);
  const ctx = modelTensorContext(model);
  const edits = newWeightEdits();

  for (const c of candidates) {
    const op = opsOf(c);
    const skip = (reason: string): void => {
      skipped.push({ name: c.name, op, scope: c.frame.scope, reason });
    };
    const off = offsetOf(c.proto);
    const spec = off !== undefined ? speculated.get(off) : undefined;
    if (isExcluded(c, exNames, exOps)) {
      if (spec) unsupported('a weight quantized as it passed is excluded by a consumer that comes later in the file', c.name);
      skip('excluded');
      continue;
    }
    const plan = weightPlan(c, model.path, minElements, perChannel);
    if ('skip' in plan) { skip(plan.skip); continue; }
    const { shape, count, axis } = plan;
    let qr: Quantized | undefined;
    if (spec) {
      if (spec.axis !== axis) unsupported('the first consumer of a weight comes later in the file than the weight', c.name);
      qr = spec.result;
      speculated.delete(off!); // its codes now belong to the model only
    } else {
      const reader = await payloadReader(c.proto, ctx);
      const q = await quantizeWhole(k, (o, t) => reader.readInto(o, t), shape, count, axis, opts);
      qr = 'floats' in q ? undefined : q;
    }
    if (!qr) { skip('holds NaN or infinite values'); continue; }
    const codes = qr.codes;
    quantized.push(recordQuantizedWeight(edits, { scale: qr.scale, zp: qr.zp, sums: qr.sums, fill: (qT) => { qT.rawData = codes as Uint8Array<ArrayBuffer>; } }, {
      c, op, shape, count, axis, form, dtype: opts.dtype, symmetric: opts.symmetric, unique,
    }));
  }
  if (speculated.size > 0) unsupported('a weight quantized as it passed was not quantized once the whole graph was read');

  applyWeightEdits(proto, edits);
  if (edits.addedInitializers) raiseIr(proto, diagnostics);
  return { model, report: report(), payloads: payloadStats(model) };
}

/**
 * One float32 tensor read whole into the kernel arena (in the same chunks quantizeWeights uses), then
 * min/max → parameters → codes + error sums. With NaN/Inf the floats are returned instead, so a
 * caller that read them from a stream can keep them.
 */
async function quantizeWhole(k: Kernels, read: (offset: number, target: Uint8Array) => Promise<void>, shape: number[], count: number,
  axis: number | undefined, opts: QuantizeWeightsOptions): Promise<Quantized | { floats: Uint8Array }> {
  return withArenaAsync(k, async () => {
    const mm = axis === undefined ? minMaxWindows(k) : minMaxAxisWindows(k, shape, axis, count);
    const x = k.alloc(count * 4);
    for (let start = 0; start < count; start += READ_CHUNK_ELEMENTS) {
      const n = Math.min(READ_CHUNK_ELEMENTS, count - start);
      await read(start * 4, k.u8(x + start * 4, n * 4));
      mm.add(x + start * 4, start, n);
    }
    const r = mm.finish();
    if (r.nonFinite > 0) return { floats: k.u8(x, count * 4).slice() };
    const { scale, zp, params } = weightParams(r, axis, shape, opts);
    const qs = quantizeStatsWindows(k, params, count);
    const dst = k.alloc(count);
    qs.add(x, 0, count, dst);
    return { scale, zp, sums: qs.sums(), codes: k.u8(dst, count).slice() };
  });
}
