/**
 * Weight-only int8/uint8 quantization written as QDQ: each float32 weight W that feeds a registered
 * op (registry.ts) at its weight input is replaced by
 *
 *   W_quantized (int8/uint8) ─┐
 *   W_scale (float32)        ─┼─► DequantizeLinear ─► W   (same name: consumers are untouched)
 *   W_zero_point (int8/uint8)─┘
 *
 * Initializers stay initializers (the DequantizeLinear nodes go first in their graph); weights held
 * by `Constant` nodes (paddle2onnx, spox; also inside If/Loop bodies) become three Constant nodes and
 * the DequantizeLinear node in the Constant's place. A weight read by several nodes is quantized once
 * (per-channel along the axis of its first registered consumer). Zero is exactly representable
 * (chooseQuantParams keeps 0 inside the range and rounds the zero point to an integer).
 *
 * Opset and IR rules, decided here:
 * - From ai.onnx opset 13 the dequantization is a DequantizeLinear node (per axis with `axis`), and
 *   from opset 10 too when per-tensor is asked for.
 * - Otherwise (opset 7..12 with per-channel, opset 7..9 at all) the opset is NOT raised — ops such as
 *   Slice, Unsqueeze, Split, Clip, TopK changed signatures on the way, so a bump is not safe in
 *   general — and the weight is dequantized by Cast(to=FLOAT) → Sub(zero point, only when one is not
 *   0) → Mul(scale), with scales shaped to broadcast along the channel axis: the same (q - zp) * scale
 *   in float32, per channel or per tensor as asked (diagnostic `quantize.cast_mul_form`).
 * - Below opset 7 (no broadcasting Mul) nothing is quantized (diagnostic).
 * - An initializer that is also listed in graph.input (old exporters) is removed from the inputs when
 *   replaced, so a runtime cannot feed a float value over it.
 * - IR version < 4 requires every initializer to be a graph input; instead of exposing the quantized
 *   tensors as inputs (a caller could then override them) the model's ir_version is raised to 4, which
 *   changes nothing else about how the model is read (diagnostic).
 * Tensors inside model-local functions and training_info are not touched.
 *
 * Speed and memory: each weight goes from its payload (external data file or inline bytes) straight
 * into the kernel arena; one WASM pass finds the per-channel ranges and counts NaN/Inf, a second
 * writes the codes and accumulates the error statistics of the report (quantize_stats_* kernels), so
 * neither the dequantized tensor nor a JS copy of the weight is ever made. With `spill`, the codes of
 * big weights go to a scratch file as they are made, and memory stays bounded by one tensor.
 */
import { applyWeightEdits, candidateOps, dequantizeForm, isExcluded, newWeightEdits, recordQuantizedWeight, weightPlan } from './weight-edits.js';
import type { Diagnostic } from '../../core/errors.js';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import type { OnnxModel } from '../../formats/onnx/read.js';
import { modelTensorContext, payloadReader, type PayloadReader } from '../../formats/onnx/tensor.js';
import { initKernels, kernels, type Kernels } from '../../kernels/loader.js';
import { chooseQuantParams, chooseQuantParamsAxis, quantizeStatsWindows, type QuantizeParams } from '../../kernels/quantize.js';
import { minMaxAxisWindows, minMaxWindows } from '../../kernels/stats.js';
import { errorStatsFromSums } from '../../eval/metrics.js';
import { withArenaAsync } from '../arena-lock.js';
import { payloadOut, type PayloadOut, type Spill } from '../spill.js';
import { sizeReport, tensorBytes, type SizeReport } from '../report.js';
import { raiseIr } from './int4.js';
import { defaultOpset, findWeightCandidates, uniqueNamer } from '../graph.js';

export type WeightQType = 'int8' | 'uint8';

export interface QuantizeWeightsOptions {
  dtype: WeightQType;
  /** One scale (and zero point) per output channel instead of one per tensor (needs opset ≥ 13). */
  perChannel: boolean;
  /** Symmetric range (int8: zero point 0, codes −127..127; uint8: zero point 128). */
  symmetric: boolean;
  /** Leave weights alone by weight name, consumer node name, or consumer op type. */
  exclude?: { names?: string[]; opTypes?: string[] };
  /** Skip weights with fewer elements than this (default 16). */
  minElements?: number;
  /**
   * Write quantized payloads of big tensors to this spill's scratch file instead of keeping them in
   * memory (see ../spill.ts): memory then stays bounded by one tensor whatever the model size. The
   * caller disposes of the spill after writing the model.
   */
  spill?: Spill;
  /**
   * Weights of up to this many bytes are read into the kernel arena whole, once (default 256 MiB);
   * larger ones are read twice in windows of at most 16 MiB, so the arena (which never shrinks)
   * stays bounded whatever the tensor size.
   */
  arenaBytes?: number;
}

export interface QuantizedTensor {
  name: string;
  /** Op types of the registered consumers, e.g. "Conv" or "MatMul,Gather". */
  op: string;
  /** Graph the weight lives in ("graph", "graph/If_0:then_branch", …). */
  scope: string;
  kind: 'initializer' | 'constant';
  /** 'dq': DequantizeLinear; 'cast-mul': Cast → (Sub) → Mul for opsets without (per-axis) DequantizeLinear. */
  form: 'dq' | 'cast-mul';
  shape: number[];
  scheme: 'per-channel' | 'per-tensor';
  axis?: number;
  dtype: WeightQType;
  symmetric: boolean;
  bytesBefore: number;
  bytesAfter: number;
  /** Weight-space error of dequantize(quantize(W)) against W. */
  maxAbs: number;
  meanAbs: number;
  snrDb: number;
  cosine: number;
}

export interface SkippedTensor {
  name: string;
  op: string;
  scope: string;
  reason: string;
}

export interface QuantizeWeightsReport {
  options: { dtype: WeightQType; perChannel: boolean; symmetric: boolean; minElements: number };
  quantized: QuantizedTensor[];
  skipped: SkippedTensor[];
  size: SizeReport;
  diagnostics: Diagnostic[];
}

/** Checks the options both weight passes share; returns minElements. */
export function checkOptions(o: QuantizeWeightsOptions): number {
  if (o.dtype !== 'int8' && o.dtype !== 'uint8') {
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `weight-only quantization to '${String(o.dtype)}' is not supported (int8 or uint8)`);
  }
  if (o.arenaBytes !== undefined && (!Number.isSafeInteger(o.arenaBytes) || o.arenaBytes < 4)) {
    throw new ModelsmithError(ErrorCodes.USAGE, `arenaBytes must be an integer of at least 4, got ${String(o.arenaBytes)}`);
  }
  const minElements = o.minElements ?? 16;
  if (!Number.isSafeInteger(minElements) || minElements < 1) {
    throw new ModelsmithError(ErrorCodes.USAGE, `minElements must be a positive integer, got ${String(o.minElements)}`);
  }
  return minElements;
}

/** The report both weight passes build: entries collected as candidates are visited, sizes measured at the end. */
export function weightReport(model: OnnxModel, opts: QuantizeWeightsOptions, minElements: number) {
  const before = tensorBytes(model);
  const diagnostics: Diagnostic[] = [];
  const quantized: QuantizedTensor[] = [];
  const skipped: SkippedTensor[] = [];
  const report = (): QuantizeWeightsReport => ({
    options: { dtype: opts.dtype, perChannel: opts.perChannel, symmetric: opts.symmetric, minElements },
    quantized,
    skipped,
    size: sizeReport(before, tensorBytes(model)),
    diagnostics,
  });
  return { diagnostics, quantized, skipped, report };
}

/**
 * Quantize the weights of `model` in place (the same object is returned). Every weight that is not
 * quantized is listed in `report.skipped` with the reason.
 */
export async function quantizeWeights(model: OnnxModel, opts: QuantizeWeightsOptions): Promise<{ model: OnnxModel; report: QuantizeWeightsReport }> {
  const minElements = checkOptions(opts);
  await initKernels();
  const proto = model.proto;
  const { diagnostics, quantized, skipped, report } = weightReport(model, opts, minElements);
  const exNames = new Set(opts.exclude?.names ?? []);
  const exOps = new Set(opts.exclude?.opTypes ?? []);
  const candidates = findWeightCandidates(proto);
  const opset = defaultOpset(proto);
  const opsOf = candidateOps;

  const form = dequantizeForm(opset, opts.perChannel, diagnostics);
  if (!form) {
    for (const c of candidates) skipped.push({ name: c.name, op: opsOf(c), scope: c.frame.scope, reason: `ai.onnx opset ${opset ?? 'missing'} < 7` });
    return { model, report: report() };
  }
  const perChannel = opts.perChannel;

  const unique = uniqueNamer(proto);
  // Before the tensor context is made: spilled payloads resolve through the model's resolver chain.
  opts.spill?.attach(model);
  const ctx = modelTensorContext(model);
  const edits = newWeightEdits();

  for (const c of candidates) {
    const op = opsOf(c);
    const skip = (reason: string): void => {
      skipped.push({ name: c.name, op, scope: c.frame.scope, reason });
    };
    if (isExcluded(c, exNames, exOps)) { skip('excluded'); continue; }
    const plan = weightPlan(c, model.path, minElements, perChannel);
    if ('skip' in plan) { skip(plan.skip); continue; }
    const { shape, count, axis } = plan;
    const reader = await payloadReader(c.proto, ctx);
    const qr = await quantizeStreamed(kernels(), reader, shape, count, axis, opts, opts.spill);
    if (!qr) { skip('holds NaN or infinite values'); continue; }
    quantized.push(recordQuantizedWeight(edits, { scale: qr.scale, zp: qr.zp, sums: qr.sums, fill: (qT) => qr.out.finish(qT) }, {
      c, op, shape, count, axis, form, dtype: opts.dtype, symmetric: opts.symmetric, unique,
    }));
  }

  applyWeightEdits(proto, edits);
  if (edits.addedInitializers) raiseIr(proto, diagnostics);
  return { model, report: report() };
}

/**
 * Quantization parameters from a weight's min/max (per channel along `axis` when given): the kernel
 * parameters plus the scale and zero point the graph stores. Shared with the streaming pass.
 */
export function weightParams(r: { min: number | Float32Array; max: number | Float32Array }, axis: number | undefined, shape: number[],
  opts: Pick<QuantizeWeightsOptions, 'dtype' | 'symmetric'>): { scale: number | Float32Array; zp: number | Int32Array; params: QuantizeParams } {
  if (axis !== undefined && typeof r.min !== 'number') {
    const p = chooseQuantParamsAxis(r.min, r.max as Float32Array, opts.dtype, opts.symmetric);
    return { scale: p.scales, zp: p.zeroPoints, params: { type: opts.dtype, scale: p.scales, zeroPoint: p.zeroPoints, shape, axis } };
  }
  const p = chooseQuantParams(r.min as number, r.max as number, opts.dtype, opts.symmetric);
  return { scale: p.scale, zp: p.zeroPoint, params: { type: opts.dtype, scale: p.scale, zeroPoint: p.zeroPoint, shape } };
}

/** Tensors up to this size are read into the arena once and scanned twice (min/max, then quantize). */
const WHOLE_TENSOR_BYTES = 256 * 2 ** 20;
/** Larger tensors are read twice, in windows of this size: memory stays bounded whatever their size. */
const WINDOW_BYTES = 16 * 2 ** 20;

/** Read step of a whole tensor: the read of the next 8 MiB runs (in the I/O thread) while the kernel folds this one. */
const READ_CHUNK_ELEMENTS = 2 * 2 ** 20;

/**
 * Reads `count` floats in windows of `per` into the arena at `target(j)` and calls `fn` on each,
 * starting the read of window j + 1 before `fn` runs on window j, so file reads overlap the
 * kernels. Every arena allocation must be made before: a read in flight holds a view of the
 * arena, which a memory.grow would detach.
 */
async function pipelined(k: Kernels, reader: PayloadReader, count: number, per: number, target: (j: number) => number,
  fn: (ptr: number, start: number, n: number) => void | Promise<void>): Promise<void> {
  const windows = Math.ceil(count / per);
  const read = (j: number): Promise<void> => {
    const n = Math.min(per, count - j * per);
    return reader.readInto(j * per * 4, k.u8(target(j), n * 4));
  };
  let pending: Promise<void> | undefined = windows > 0 ? read(0) : undefined;
  try {
    for (let j = 0; j < windows; j++) {
      await pending;
      pending = j + 1 < windows ? read(j + 1) : undefined;
      await fn(target(j), j * per, Math.min(per, count - j * per));
    }
  } finally {
    // Never leave a read writing into the arena after the caller released it.
    await pending?.catch(() => undefined);
  }
}

interface StreamedQuantization {
  scale: number | Float32Array;
  zp: number | Int32Array;
  /** Error sums of the dequantized codes (metrics.ts errorStatsFromSums). */
  sums: Float64Array;
  /** The codes, in memory or in the spill file. */
  out: PayloadOut;
}

/**
 * One float32 weight, from its payload (inline bytes or the external data file) straight into the
 * kernel arena: min/max and the NaN/Inf count in one pass, then codes and error statistics in one
 * fused pass, codes copied out window by window. Nothing of tensor size is allocated in JS except
 * the codes when they stay in memory. Undefined when the weight holds NaN or ±Inf.
 */
async function quantizeStreamed(k: Kernels, reader: PayloadReader, shape: number[], count: number, axis: number | undefined,
  opts: QuantizeWeightsOptions, spill: Spill | undefined): Promise<StreamedQuantization | undefined> {
  return withArenaAsync(k, async () => {
    const budget = opts.arenaBytes ?? WHOLE_TENSOR_BYTES;
    const whole = count * 4 <= budget;
    const per = whole ? count : Math.floor(Math.min(budget, WINDOW_BYTES) / 4);
    const mm = axis === undefined ? minMaxWindows(k) : minMaxAxisWindows(k, shape, axis, count);
    // Whole tensor: one region, read in chunks. Windowed: two window buffers, read alternately.
    const x = k.alloc(per * 4);
    const x2 = whole ? x : k.alloc(per * 4);
    if (whole) {
      const chunk = Math.min(per, READ_CHUNK_ELEMENTS);
      await pipelined(k, reader, count, chunk, (j) => x + j * chunk * 4, (p, start, n) => mm.add(p, start, n));
    } else {
      await pipelined(k, reader, count, per, (j) => (j % 2 ? x2 : x), (p, start, n) => mm.add(p, start, n));
    }
    const r = mm.finish();
    if (r.nonFinite > 0) return undefined;
    const { scale, zp, params } = weightParams(r, axis, shape, opts);
    const qs = quantizeStatsWindows(k, params, count);
    const dst = k.alloc(per);
    const out = await payloadOut(spill, count);
    const emit = async (p: number, start: number, n: number): Promise<void> => {
      qs.add(p, start, n, dst);
      await out.write(k.u8(dst, n));
    };
    if (whole) await emit(x, 0, count);
    else await pipelined(k, reader, count, per, (j) => (j % 2 ? x2 : x), emit);
    return { scale, zp, sums: qs.sums(), out };
  });
}
