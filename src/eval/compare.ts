/**
 * `evaluate(reference, candidate)`: how far a compressed model's outputs moved from the original's.
 *
 * Outputs: both models run in onnxruntime-node on the same inputs (seeded random ones from the
 * declared shapes, or data files); per output, over all samples together: max-abs, mean-abs,
 * cosine, SNR (dB) — the formulas of metrics.ts `errorStats`, accumulated — and top-1 agreement
 * (argmax over the last axis, the fraction of rows where both models pick the same index).
 *
 * Weights (no runtime needed): for every float initializer and Constant of the reference's main graph, the
 * candidate's tensor of the same name, stored as is, as float16/bfloat16, or behind a
 * DequantizeLinear / Cast node whose output carries the original name, is brought back to float
 * on the host and compared. Anything else is reported as a dtype change or as not found.
 */
import type { ModelProto, NodeProto, TensorProto } from 'onnx-buf';
import { dtypeFromOnnx, dtypeInfo, type DType } from '../core/dtype.js';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import { numel, typedView, type Tensor } from '../core/tensor.js';
import { modelTensorContext, tensorFromProto } from '../formats/onnx/tensor.js';
import type { OnnxModel } from '../formats/onnx/read.js';
import { bf16ToF32Ref, f16ToF32Ref, f32BitsToF16Bits as f32ToF16 } from '../kernels/reference/cast.js';
import { openModelFile } from '../platform/open.js';
import type { ErrorStats } from './metrics.js';
import { declaredInputs, inputSamplePaths, loadSample, parseShapeArgs, randomInputs, type InputSpec } from './inputs.js';
import { OrtSession } from './ort.js';

export interface EvaluateOptions {
  /** `--inputs` paths (.pb / .npy files, data-set folders); random inputs when absent. */
  inputs?: string[];
  /** Random samples (default 8). Ignored with `inputs`. */
  samples?: number;
  /** `--shape name=d1,d2` values for dynamic dims. */
  shapes?: string[];
  seed?: number;
  /** Skip running the models: weight errors only. */
  weightsOnly?: boolean;
  /** Called with progress lines. */
  onProgress?: (line: string) => void;
}

export interface OutputReport extends ErrorStats {
  name: string;
  dtype: string;
  shape: number[];
  /** Fraction of rows (argmax over the last axis) where both models agree; null when the last axis has < 2 entries. */
  top1: number | null;
  rows: number;
  /** Elements compared over all samples. */
  elements: number;
  /** NaN/Inf in the candidate where the reference is finite (counted, they make maxAbs Infinity). */
  nonFinite: number;
}

export interface WeightReport {
  name: string;
  shape: number[];
  referenceDtype: DType;
  /** What the candidate stores. */
  candidateDtype: DType | null;
  /** How the candidate holds it: unchanged dtype, cast (fp16/bf16), DequantizeLinear, Cast node, dtype-change (not comparable), absent. */
  form: 'same' | 'cast' | 'dequantize' | 'cast-node' | 'dtype-change' | 'absent';
  stats?: ErrorStats;
  note?: string;
}

export interface EvalReport {
  reference: string;
  candidate: string;
  inputSource: 'random' | 'files' | 'none';
  samples: number;
  seed?: number;
  inputs: { name: string; dtype: DType; shape: number[] }[];
  /** Dynamic dims that were set to 1 because no --shape gave them. */
  defaultedDims: string[];
  outputs: OutputReport[];
  weights: WeightReport[];
  /** Weights compared / changed (max-abs > 0) / absent from the candidate. */
  weightSummary: { compared: number; changed: number; notComparable: number; absent: number };
  seconds: number;
}

// ------------------------------------------------------------------------------------------------
// numbers
// ------------------------------------------------------------------------------------------------

/** Any numeric tensor as float64 values (float16/bfloat16 widened, int4/uint4 unpacked, int64 rounded). */
export function toFloat64(t: Tensor): Float64Array {
  const n = numel(t.shape, { tensor: t.name });
  if (t.dtype === 'float16' || t.dtype === 'bfloat16') {
    const bits = typedView(t) as Uint16Array;
    return Float64Array.from(t.dtype === 'float16' ? f16ToF32Ref(bits) : bf16ToF32Ref(bits));
  }
  if (t.dtype === 'int4' || t.dtype === 'uint4') {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const b = t.data[i >> 1]!;
      let v = i & 1 ? b >> 4 : b & 0x0f;
      if (t.dtype === 'int4' && v >= 8) v -= 16;
      out[i] = v;
    }
    return out;
  }
  const info = dtypeInfo(t.dtype);
  if (info.bits < 8 || t.dtype === 'string' || t.dtype === 'complex64' || t.dtype === 'complex128' || t.dtype.startsWith('float8')) {
    throw new ModelsmithError(ErrorCodes.DTYPE, `cannot read ${t.dtype} values as numbers`, { tensor: t.name });
  }
  const v = typedView(t);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = Number(v[i]!);
  return out;
}

/** errorStats, accumulated over several chunks (same formulas as metrics.ts). */
class ErrorAccumulator {
  maxAbs = 0;
  sumAbs = 0;
  signal = 0;
  noise = 0;
  dot = 0;
  gg = 0;
  counted = 0;
  elements = 0;
  nonFinite = 0;

  add(ref: ArrayLike<number>, got: ArrayLike<number>): void {
    for (let i = 0; i < ref.length; i++) {
      const r = ref[i]!;
      const g = got[i]!;
      this.elements++;
      if (!Number.isFinite(r)) continue;
      if (!Number.isFinite(g)) this.nonFinite++;
      const d = Math.abs(r - g);
      if (d > this.maxAbs || Number.isNaN(d)) this.maxAbs = Number.isNaN(d) ? Infinity : d;
      this.sumAbs += d;
      this.signal += r * r;
      this.noise += (r - g) * (r - g);
      this.dot += r * g;
      this.gg += g * g;
      this.counted++;
    }
  }

  stats(): ErrorStats {
    const { signal, noise, gg } = this;
    const snrDb = noise === 0 ? Infinity : signal === 0 ? -Infinity : 10 * Math.log10(signal / noise);
    const cosine = signal === 0 || gg === 0 ? (signal === gg ? 1 : 0) : this.dot / Math.sqrt(signal * gg);
    return { maxAbs: this.maxAbs, meanAbs: this.counted ? this.sumAbs / this.counted : 0, snrDb, cosine };
  }
}

/** Rows (all axes but the last) where argmax over the last axis agrees; the first maximum wins. */
export function top1Agreement(ref: ArrayLike<number>, got: ArrayLike<number>, last: number): { agree: number; rows: number } {
  if (last < 2) return { agree: 0, rows: 0 };
  const rows = Math.floor(ref.length / last);
  let agree = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * last;
    let a = o;
    let b = o;
    for (let i = o + 1; i < o + last; i++) {
      if (ref[i]! > ref[a]!) a = i;
      if (got[i]! > got[b]!) b = i;
    }
    if (a === b) agree++;
  }
  return { agree, rows };
}

// ------------------------------------------------------------------------------------------------
// weights
// ------------------------------------------------------------------------------------------------

function attrInt(node: NodeProto, name: string, dflt: number): number {
  const a = node.attribute.find((x) => x.name === name);
  return a ? Number(a.i) : dflt;
}

/**
 * DequantizeLinear on the host: y = (x - zero_point) * scale, per tensor, per axis, or blocked
 * (opset 21 block_size along `axis`), computed in float32 like onnxruntime.
 */
export function dequantizeHost(x: Tensor, scale: Tensor, zp: Tensor | undefined, axisAttr: number, blockSize: number): Float64Array {
  const q = toFloat64(x);
  const s = toFloat64(scale);
  const z = zp ? toFloat64(zp) : undefined;
  const rank = x.shape.length;
  const out = new Float64Array(q.length);
  const fr = Math.fround;
  if (s.length === 1 && blockSize <= 0) {
    const zz = z ? z[0]! : 0;
    for (let i = 0; i < q.length; i++) out[i] = fr(fr(q[i]! - zz) * fr(s[0]!));
    return out;
  }
  const axis = axisAttr < 0 ? axisAttr + rank : axisAttr;
  if (axis < 0 || axis >= rank) throw new ModelsmithError(ErrorCodes.MALFORMED, `DequantizeLinear axis ${axisAttr} is outside rank ${rank}`, { tensor: x.name });
  const C = x.shape[axis]!;
  let inner = 1;
  for (let d = axis + 1; d < rank; d++) inner *= x.shape[d]!;
  const blocks = blockSize > 0 ? Math.ceil(C / blockSize) : C;
  const expected = blockSize > 0 ? (q.length / C) * blocks : C;
  if (s.length !== expected || (z && z.length !== s.length)) {
    throw new ModelsmithError(ErrorCodes.MALFORMED, `DequantizeLinear scale has ${s.length} entries, expected ${expected}`, { tensor: x.name });
  }
  for (let i = 0; i < q.length; i++) {
    const a = Math.floor(i / inner) % C;
    let p: number;
    if (blockSize > 0) {
      const o = Math.floor(i / (inner * C));
      p = (o * blocks + Math.floor(a / blockSize)) * inner + (i % inner);
    } else p = a;
    out[i] = fr(fr(q[i]! - (z ? z[p]! : 0)) * fr(s[p]!));
  }
  return out;
}

function statsOf(ref: Float64Array, got: Float64Array): ErrorStats {
  const acc = new ErrorAccumulator();
  acc.add(ref, got);
  return acc.stats();
}

/** Per-tensor weight error between the reference's float initializers and the candidate's counterparts. */
export async function compareWeights(ref: OnnxModel, cand: OnnxModel): Promise<WeightReport[]> {
  const rg = ref.proto.graph;
  const cg = cand.proto.graph;
  if (!rg || !cg) return [];
  const rctx = modelTensorContext(ref);
  const cctx = modelTensorContext(cand);
  const candInit = new Map<string, TensorProto>(cg.initializer.map((t) => [t.name, t]));
  const producer = new Map<string, NodeProto>();
  for (const n of cg.node) for (const o of n.output) if (o) producer.set(o, n);
  const candConst = (name: string): TensorProto | undefined => {
    const t = candInit.get(name);
    if (t) return t;
    const n = producer.get(name);
    if (n?.opType === 'Constant' && (n.domain === '' || n.domain === 'ai.onnx')) {
      const a = n.attribute.find((x) => x.name === 'value' && x.t);
      return a?.t ? { ...a.t, name } : undefined;
    }
    return undefined;
  };
  const load = (tp: TensorProto, which: 'ref' | 'cand'): Promise<Tensor> => tensorFromProto(tp, which === 'ref' ? rctx : cctx);
  // Weights of the reference: initializers, and Constant nodes (paddle2onnx, spox store weights there).
  const refWeights: TensorProto[] = [...rg.initializer];
  for (const n of rg.node) {
    if (n.opType !== 'Constant' || (n.domain !== '' && n.domain !== 'ai.onnx') || !n.output[0]) continue;
    const a = n.attribute.find((x) => x.name === 'value' && x.t);
    if (a?.t) refWeights.push({ ...a.t, name: n.output[0] });
  }
  const out: WeightReport[] = [];
  for (const rtp of refWeights) {
    const rinfo = dtypeFromCode(rtp.dataType);
    if (!rinfo || !dtypeInfo(rinfo).isFloat || rinfo.startsWith('float8') || rinfo.startsWith('complex') || rinfo === 'float4e2m1' || rinfo === 'float8e8m0') continue;
    const rt = await load(rtp, 'ref');
    if (numel(rt.shape) <= 1) continue; // scalars and 1-element constants are not weights
    const base: Pick<WeightReport, 'name' | 'shape' | 'referenceDtype'> = { name: rtp.name, shape: rt.shape, referenceDtype: rt.dtype };
    const ctp = candConst(rtp.name);
    try {
      if (ctp) {
        const ct = await load(ctp, 'cand');
        const cmp = sameShape(rt, ct);
        if (ct.dtype === rt.dtype || ((ct.dtype === 'float16' || ct.dtype === 'bfloat16' || ct.dtype === 'float32' || ct.dtype === 'float64') && cmp)) {
          if (!cmp) {
            out.push({ ...base, candidateDtype: ct.dtype, form: 'dtype-change', note: `shape changed to [${ct.shape.join(',')}]` });
            continue;
          }
          out.push({ ...base, candidateDtype: ct.dtype, form: ct.dtype === rt.dtype ? 'same' : 'cast', stats: statsOf(toFloat64(rt), toFloat64(ct)) });
        } else {
          out.push({ ...base, candidateDtype: ct.dtype, form: 'dtype-change', note: `stored as ${ct.dtype}[${ct.shape.join(',')}] without a DequantizeLinear producing '${rtp.name}'` });
        }
        continue;
      }
      const node = producer.get(rtp.name);
      if (node && node.opType === 'DequantizeLinear' && (node.domain === '' || node.domain === 'ai.onnx' || node.domain === 'com.microsoft')) {
        const [xIn, sIn, zIn] = node.input;
        const xp = xIn ? candConst(xIn) : undefined;
        const sp = sIn ? candConst(sIn) : undefined;
        const zpp = zIn ? candConst(zIn) : undefined;
        if (!xp || !sp || (zIn && !zpp)) {
          out.push({ ...base, candidateDtype: null, form: 'dtype-change', note: 'produced by a DequantizeLinear whose inputs are not all constants' });
          continue;
        }
        const x = await load(xp, 'cand');
        if (!sameShape(rt, x)) {
          out.push({ ...base, candidateDtype: x.dtype, form: 'dtype-change', note: `quantized tensor has shape [${x.shape.join(',')}]` });
          continue;
        }
        const got = dequantizeHost(x, await load(sp, 'cand'), zpp ? await load(zpp, 'cand') : undefined, attrInt(node, 'axis', 1), attrInt(node, 'block_size', 0));
        out.push({ ...base, candidateDtype: x.dtype, form: 'dequantize', stats: statsOf(toFloat64(rt), got) });
        continue;
      }
      if (node && node.opType === 'Cast' && node.input[0]) {
        const xp = candConst(node.input[0]);
        if (xp) {
          const x = await load(xp, 'cand');
          if (sameShape(rt, x) && dtypeInfo(x.dtype).isFloat && dtypeInfo(x.dtype).bits >= 16) {
            out.push({ ...base, candidateDtype: x.dtype, form: 'cast-node', stats: statsOf(toFloat64(rt), toFloat64(x)) });
            continue;
          }
        }
      }
      out.push({ ...base, candidateDtype: null, form: 'absent', ...(node ? { note: `computed by a ${node.opType} node` } : {}) });
    } catch (e) {
      if (!(e instanceof ModelsmithError)) throw e;
      out.push({ ...base, candidateDtype: null, form: 'dtype-change', note: `not comparable: ${e.message}` });
    }
  }
  return out;
}

function dtypeFromCode(code: number): DType | undefined {
  return dtypeFromOnnx(code)?.name;
}

function sameShape(a: Tensor, b: Tensor): boolean {
  return a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
}

// ------------------------------------------------------------------------------------------------
// evaluate
// ------------------------------------------------------------------------------------------------

/** Inputs of the candidate given the reference's: float inputs are converted when the candidate declares another float type. */
function adaptInputs(inputs: Tensor[], cand: InputSpec[]): Tensor[] {
  return inputs.map((t) => {
    const s = cand.find((c) => c.name === t.name);
    if (!s || s.dtype === t.dtype) return t;
    if (!dtypeInfo(s.dtype).isFloat || !dtypeInfo(t.dtype).isFloat) {
      throw new ModelsmithError(ErrorCodes.DTYPE, `reference takes ${t.dtype}, candidate takes ${s.dtype}`, { tensor: t.name });
    }
    return convertFloat(t, s.dtype);
  });
}

function convertFloat(t: Tensor, to: DType): Tensor {
  const v = toFloat64(t);
  let data: Uint8Array;
  if (to === 'float32') data = new Uint8Array(Float32Array.from(v).buffer);
  else if (to === 'float64') data = new Uint8Array(v.buffer.slice(0));
  else if (to === 'float16') {
    const f = Float32Array.from(v);
    const u = new Uint32Array(f.buffer);
    const h = new Uint16Array(f.length);
    for (let i = 0; i < f.length; i++) h[i] = f32ToF16(u[i]!);
    data = new Uint8Array(h.buffer);
  } else throw new ModelsmithError(ErrorCodes.DTYPE, `cannot feed ${to} inputs`, { tensor: t.name });
  return { name: t.name, dtype: to, shape: t.shape, data };
}

export async function evaluate(refPath: string, candPath: string, opts: EvaluateOptions = {}): Promise<EvalReport> {
  const t0 = performance.now();
  const progress = opts.onProgress ?? (() => {});
  const ref = await openModelFile(refPath);
  let cand: Awaited<ReturnType<typeof openModelFile>> | undefined;
  try {
    cand = await openModelFile(candPath);
    const specs = declaredInputs(ref.model.proto, refPath);
    const candSpecs = declaredInputs(cand.model.proto, candPath);
    const shapes = parseShapeArgs(opts.shapes ?? [], specs);
    for (const s of specs) {
      if (!candSpecs.some((c) => c.name === s.name)) throw new ModelsmithError(ErrorCodes.USAGE, `candidate has no input '${s.name}'`, { path: candPath, tensor: s.name });
    }
    const weights = await compareWeights(ref.model, cand.model);
    const report: EvalReport = {
      reference: refPath,
      candidate: candPath,
      inputSource: 'none',
      samples: 0,
      inputs: [],
      defaultedDims: [],
      outputs: [],
      weights,
      weightSummary: {
        compared: weights.filter((w) => w.stats).length,
        changed: weights.filter((w) => w.stats && w.stats.maxAbs > 0).length,
        notComparable: weights.filter((w) => w.form === 'dtype-change').length,
        absent: weights.filter((w) => w.form === 'absent').length,
      },
      seconds: 0,
    };
    if (opts.weightsOnly) {
      report.seconds = (performance.now() - t0) / 1000;
      return report;
    }
    for (const [m, p] of [[ref.model.proto, refPath], [cand.model.proto, candPath]] as [ModelProto, string][]) {
      const bad = m.graph?.output.find((o) => o.type?.value.case !== 'tensorType');
      // onnxruntime-node crashes the process on sequence/map/optional outputs.
      if (bad) throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `output '${bad.name}' is a ${bad.type?.value.case ?? 'untyped value'}; eval compares tensor outputs only`, { path: p });
    }

    // Inputs
    let samples: Tensor[][];
    if (opts.inputs && opts.inputs.length) {
      if (shapes.size) throw new ModelsmithError(ErrorCodes.USAGE, '--shape applies to random inputs; the data files already fix the shapes');
      const sets = await inputSamplePaths(opts.inputs);
      samples = [];
      for (const s of sets) samples.push(await loadSample(s.files, specs));
      report.inputSource = 'files';
    } else {
      const n = opts.samples ?? 8;
      if (!Number.isSafeInteger(n) || n < 1) throw new ModelsmithError(ErrorCodes.USAGE, `--samples must be a positive integer, got ${n}`);
      const seed = opts.seed ?? 0;
      const r = randomInputs(specs, { samples: n, seed, shapes });
      samples = r.samples;
      report.defaultedDims = r.defaulted;
      report.seed = seed;
      report.inputSource = 'random';
    }
    report.samples = samples.length;
    report.inputs = (samples[0] ?? []).map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape }));

    // Run
    const rs = await OrtSession.create(refPath);
    let cs: OrtSession | undefined;
    try {
      cs = await OrtSession.create(candPath);
      const names = rs.outputNames;
      const missing = names.filter((n) => !cs!.outputNames.includes(n));
      if (missing.length) throw new ModelsmithError(ErrorCodes.USAGE, `candidate lacks output(s) ${missing.join(', ')}`, { path: candPath });
      const acc = names.map(() => new ErrorAccumulator());
      const top = names.map(() => ({ agree: 0, rows: 0 }));
      const meta: { dtype: string; shape: number[] }[] = [];
      for (const [k, inputs] of samples.entries()) {
        progress(`sample ${k + 1}/${samples.length}`);
        const hint = report.defaultedDims.length
          ? `dynamic dims were set to 1 (${report.defaultedDims.join(', ')}): give real sizes with --shape name=d1,d2,... or data with --inputs`
          : undefined;
        const ro = await rs.run(inputs, hint);
        const coAll = await cs.run(adaptInputs(inputs, candSpecs), hint);
        names.forEach((n, i) => {
          const a = ro[i]!;
          const b = coAll[cs!.outputNames.indexOf(n)]!;
          if (!sameShape(a, b)) {
            throw new ModelsmithError(ErrorCodes.USAGE, `output shapes differ: reference [${a.shape.join(',')}], candidate [${b.shape.join(',')}]`, { tensor: n });
          }
          meta[i] ??= { dtype: a.dtype === b.dtype ? a.dtype : `${a.dtype}→${b.dtype}`, shape: a.shape };
          const av = toFloat64(a);
          const bv = toFloat64(b);
          acc[i]!.add(av, bv);
          const last = a.shape.length ? a.shape[a.shape.length - 1]! : 1;
          const t = top1Agreement(av, bv, last);
          top[i]!.agree += t.agree;
          top[i]!.rows += t.rows;
        });
      }
      report.outputs = names.map((n, i) => ({
        name: n,
        dtype: meta[i]?.dtype ?? '?',
        shape: meta[i]?.shape ?? [],
        ...acc[i]!.stats(),
        top1: top[i]!.rows ? top[i]!.agree / top[i]!.rows : null,
        rows: top[i]!.rows,
        elements: acc[i]!.elements,
        nonFinite: acc[i]!.nonFinite,
      }));
    } finally {
      await cs?.release();
      await rs.release();
    }
    report.seconds = (performance.now() - t0) / 1000;
    return report;
  } finally {
    await cand?.close();
    await ref.close();
  }
}
