import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { evaluate, type EvalReport } from '../../eval/compare.js';
import { table } from '../output.js';
import type { Command } from './index.js';

export const evalCommand: Command = {
  name: 'eval',
  summary: 'compare a compressed or converted model with its original: output error and per-weight error',
  help: `usage: modelsmith eval <reference.onnx> <candidate.onnx|saved_model_dir> [--inputs PATH ...] [--samples N]
                      [--shape name=d1,d2,...] [--seed S] [--weights-only] [--json]

Runs both models in onnxruntime-node on the same inputs and reports, per output, over all samples:
  max-abs    largest |reference - candidate|
  mean-abs   mean |reference - candidate|
  cosine     cosine similarity of the flattened outputs (1 = same direction)
  SNR        10·log10(Σref² / Σ(ref - cand)²) in dB (inf = identical)
  top-1      argmax over the last axis: fraction of rows where both models pick the same index
A SavedModel folder as the candidate (from convert --to savedmodel) runs through TF.js
(npm install @tensorflow/tfjs) with the same inputs and the same output report; its weights have TF
names and layouts, so the per-weight comparison is skipped (written with --nhwc-io, the input and
output layouts differ from the ONNX model's and the comparison is refused by shape).
Also, without running anything, the error of every float weight: the candidate's tensor of the same
name (unchanged, float16/bfloat16, or quantized behind a DequantizeLinear node that outputs the
original name) is dequantized/widened on the host and compared with the original.

options:
  --inputs PATH     input data instead of random inputs (repeatable). PATH may be a .pb file (ONNX
                    TensorProto), a .npy file (numpy, C order, little-endian), a folder of such files
                    (input_0.pb, input_1.pb, … as in onnx test_data_set_N), or a folder holding
                    test_data_set_* folders (one sample each). Files given directly form one sample.
                    A file named after an input (TensorProto name or <input>.npy) goes to that
                    input; the others fill the remaining inputs in order.
  --samples N       random samples (default 8)
  --shape NAME=DIMS sizes for an input with dynamic dims, e.g. --shape input_ids=1,128
                    (repeatable; dims not given default to 1 and are listed in the report)
  --seed S          seed for the random inputs (default 0); same seed, same inputs
  --weights-only    only the per-weight error (no onnxruntime needed)
  --json            one JSON report on stdout

Random inputs: float ~ N(0,1), integer in [0,4), uint8 in [0,256), bool 0/1.
Needs onnxruntime-node (npm install onnxruntime-node) unless --weights-only.

examples:
  modelsmith eval model.onnx model.int8.onnx
  modelsmith eval model.onnx model.fp16.onnx --samples 32 --seed 7 --json
  modelsmith eval bert.onnx bert.int8.onnx --shape input_ids=1,128 --shape attention_mask=1,128
  modelsmith eval model.onnx small.onnx --inputs test_data_set_0 --inputs image.npy
  modelsmith eval model.onnx model.int4.onnx --weights-only
  modelsmith eval model.onnx model_tf/          (after modelsmith convert model.onnx -o model_tf --to savedmodel)`,
  options: {
    inputs: { type: 'string', multiple: true },
    samples: { type: 'string' },
    shape: { type: 'string', multiple: true },
    seed: { type: 'string' },
    'weights-only': { type: 'boolean' },
  },
  async run(positionals, values, out) {
    const [ref, cand] = positionals;
    if (!ref || !cand || positionals.length !== 2) {
      throw new ModelsmithError(ErrorCodes.USAGE, 'eval needs a reference and a candidate model (modelsmith eval ref.onnx cand.onnx)');
    }
    if (values.output !== undefined) throw new ModelsmithError(ErrorCodes.USAGE, 'eval writes no file; -o is not an option here (use --json for a machine-readable report)');
    const v = values as Record<string, unknown>;
    const inputs = v.inputs as string[] | undefined;
    const samples = v.samples === undefined ? undefined : parseCount('--samples', v.samples as string, 1);
    const seed = v.seed === undefined ? undefined : parseCount('--seed', v.seed as string, 0);
    if (inputs?.length && samples !== undefined) throw new ModelsmithError(ErrorCodes.USAGE, '--samples is for random inputs; with --inputs every data set is one sample');
    const report = await evaluate(ref, cand, {
      ...(inputs ? { inputs } : {}),
      ...(samples !== undefined ? { samples } : {}),
      ...(seed !== undefined ? { seed } : {}),
      shapes: (v.shape as string[] | undefined) ?? [],
      weightsOnly: !!v['weights-only'],
      onProgress: (line) => out.note(line),
    });
    out.say(...humanReport(report));
    return { ok: true, verb: 'eval', ...jsonSafe(report) };
  },
};

function parseCount(flag: string, s: string, min: number): number {
  const n = Number(s);
  if (!/^\d+$/.test(s.trim()) || !Number.isSafeInteger(n) || n < min) throw new ModelsmithError(ErrorCodes.USAGE, `${flag} must be an integer ≥ ${min}, got '${s}'`);
  return n;
}

/** JSON has no Infinity: identical outputs give snrDb "inf" (and -inf as "-inf"). */
function jsonSafe(r: EvalReport): EvalReport {
  const fix = <T extends { snrDb: number; maxAbs: number }>(s: T): T => ({
    ...s,
    snrDb: (Number.isFinite(s.snrDb) ? s.snrDb : s.snrDb > 0 ? 'inf' : '-inf') as unknown as number,
    maxAbs: (Number.isFinite(s.maxAbs) ? s.maxAbs : 'inf') as unknown as number,
  });
  return {
    ...r,
    outputs: r.outputs.map(fix),
    weights: r.weights.map((w) => (w.stats ? { ...w, stats: fix(w.stats) } : w)),
  };
}

const num = (x: number, digits = 4): string => (Number.isNaN(x) ? 'nan' : !Number.isFinite(x) ? (x > 0 ? 'inf' : '-inf') : x === 0 ? '0' : Math.abs(x) >= 1e-3 && Math.abs(x) < 1e5 ? x.toPrecision(digits) : x.toExponential(2));
const cos = (x: number): string => (x === 1 ? '1' : x.toFixed(6));

export function humanReport(r: EvalReport): string[] {
  const lines: string[] = [`reference: ${r.reference}`, `candidate: ${r.candidate}`];
  if (r.inputSource !== 'none') {
    const what = r.inputSource === 'random' ? `${r.samples} random sample(s), seed ${r.seed}` : `${r.samples} sample(s) from --inputs`;
    lines.push(`inputs: ${what}: ${r.inputs.map((i) => `${i.name} ${i.dtype}[${i.shape.join(',')}]`).join(', ')}`);
    if (r.defaultedDims.length) lines.push(`dynamic dims set to 1 (give --shape to change): ${r.defaultedDims.join(', ')}`);
    lines.push('', 'outputs:');
    lines.push(
      ...table([
        ['output', 'shape', 'max-abs', 'mean-abs', 'cosine', 'SNR dB', 'top-1'],
        ...r.outputs.map((o) => [
          o.name,
          `${o.dtype}[${o.shape.join(',')}]`,
          num(o.maxAbs),
          num(o.meanAbs),
          cos(o.cosine),
          num(o.snrDb, 3),
          o.top1 === null ? '-' : `${(o.top1 * 100).toFixed(2)}%`,
        ]),
      ]).map((l) => `  ${l}`),
    );
    for (const o of r.outputs) if (o.nonFinite) lines.push(`  warning: ${o.name}: ${o.nonFinite} NaN/Inf value(s) in the candidate where the reference is finite`);
  }
  const s = r.weightSummary;
  if (r.candidateFormat === 'savedmodel') {
    lines.push('', 'weights: not compared (the candidate is a SavedModel; its outputs are compared above)', `(${r.seconds.toFixed(2)} s)`);
    return lines;
  }
  lines.push('', `weights: ${s.compared} compared, ${s.changed} changed, ${s.notComparable} not comparable, ${s.absent} not found in the candidate`);
  const rows = r.weights.filter((w) => w.form !== 'same' || (w.stats && w.stats.maxAbs > 0));
  const shown = [...rows].sort((a, b) => (a.stats?.snrDb ?? Infinity) - (b.stats?.snrDb ?? Infinity)).slice(0, 20);
  if (shown.length) {
    lines.push(
      ...table([
        ['tensor', 'stored as', 'max-abs', 'mean-abs', 'cosine', 'SNR dB'],
        ...shown.map((w) => [
          w.name,
          w.form === 'absent' ? `absent${w.note ? ` (${w.note})` : ''}` : `${w.candidateDtype ?? '?'} (${w.form})`,
          w.stats ? num(w.stats.maxAbs) : '-',
          w.stats ? num(w.stats.meanAbs) : '-',
          w.stats ? cos(w.stats.cosine) : '-',
          w.stats ? num(w.stats.snrDb, 3) : w.note ?? '-',
        ]),
      ]).map((l) => `  ${l}`),
    );
    if (rows.length > shown.length) lines.push(`  … ${rows.length - shown.length} more (worst SNR first; --json lists all)`);
  }
  lines.push(`(${r.seconds.toFixed(2)} s)`);
  return lines;
}
