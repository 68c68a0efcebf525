/**
 * `evaluate(reference, candidate)`: how far a compressed model's outputs moved from the original's.
 *
 * Outputs: both models run in onnxruntime-node on the same inputs (seeded random ones from the
 * declared shapes, or data files); per output, over all samples together: max-abs, mean-abs,
 * cosine, SNR (dB) — the formulas of metrics.ts `errorStats`, accumulated — and top-1 agreement
 * (argmax over the last axis, the fraction of rows where both models pick the same index).
 *
 * Weights (no runtime needed): every float initializer and Constant of the reference's main graph is
 * matched with its counterpart in the candidate (as is, float16/bfloat16, DequantizeLinear,
 * Cast→Sub→Mul, MatMulNBits, MatMulInteger/ConvInteger + rescale, GatherBlockQuantized), brought
 * back to float on the host and compared: weights.ts.
 */
import type { ModelProto } from 'onnx-buf';
import { dtypeInfo, type DType } from '../core/dtype.js';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import { f32BitsToF16Bits as f32ToF16 } from '../kernels/reference/cast.js';
import { openModelFile } from '../platform/open.js';
import type { ErrorStats } from './metrics.js';
import { declaredInputs, inputSamplePaths, loadSample, parseShapeArgs, randomInputs, type InputSpec } from './inputs.js';
import { OrtSession } from './ort.js';
import { ErrorAccumulator, compareWeights, toFloat64, type WeightReport } from './weights.js';

export { broadcastParam, compareWeights, dequantizeHost, toFloat64, type WeightReport } from './weights.js';

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

export interface EvalReport {
  reference: string;
  candidate: string;
  /** 'savedmodel' when the candidate is a SavedModel folder (run through TF.js; no per-weight comparison). */
  candidateFormat: 'onnx' | 'savedmodel';
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

/** True for a folder holding saved_model.pb; false for files (and for paths that do not exist: the opener reports those). */
async function isSavedModelDir(path: string): Promise<boolean> {
  const { stat } = await import('node:fs/promises');
  const st = await stat(path).catch(() => undefined);
  if (!st?.isDirectory()) return false;
  if (!(await stat(`${path}/saved_model.pb`).catch(() => undefined))?.isFile()) {
    throw new ModelsmithError(ErrorCodes.USAGE, 'the candidate is a folder without saved_model.pb; eval compares an ONNX model with an ONNX file or a SavedModel folder', { path });
  }
  return true;
}

export async function evaluate(refPath: string, candPath: string, opts: EvaluateOptions = {}): Promise<EvalReport> {
  const t0 = performance.now();
  const progress = opts.onProgress ?? (() => {});
  const ref = await openModelFile(refPath);
  let cand: Awaited<ReturnType<typeof openModelFile>> | undefined;
  try {
    // A SavedModel folder as the candidate (an ONNX → TF conversion): outputs are compared through
    // TF.js; its weights have TF names and layouts, so the per-weight comparison does not apply.
    const savedModel = await isSavedModelDir(candPath);
    if (!savedModel) cand = await openModelFile(candPath);
    const specs = declaredInputs(ref.model.proto, refPath);
    const candSpecs = cand ? declaredInputs(cand.model.proto, candPath) : specs;
    const shapes = parseShapeArgs(opts.shapes ?? [], specs);
    for (const s of specs) {
      if (!candSpecs.some((c) => c.name === s.name)) throw new ModelsmithError(ErrorCodes.USAGE, `candidate has no input '${s.name}'`, { path: candPath, tensor: s.name });
    }
    const weights = cand ? await compareWeights(ref.model, cand.model) : [];
    const report: EvalReport = {
      reference: refPath,
      candidate: candPath,
      candidateFormat: savedModel ? 'savedmodel' : 'onnx',
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
    for (const [m, p] of [[ref.model.proto, refPath], ...(cand ? [[cand.model.proto, candPath]] : [])] as [ModelProto, string][]) {
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
    let cs: Pick<OrtSession, 'outputNames' | 'run' | 'release'> | undefined;
    try {
      cs = savedModel ? await (await import('./savedmodel-runner.js')).SavedModelRunner.open(candPath) : await OrtSession.create(candPath);
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
        const coAll = await cs.run(cand ? adaptInputs(inputs, candSpecs) : inputs, hint);
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
