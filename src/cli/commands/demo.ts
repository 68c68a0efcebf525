/**
 * The newcomer's first run, on the bundled sample (or a given model): inspect it, write compressed
 * variants (int8 per-channel and uint8 per-tensor weight-only QDQ, float16, 50% magnitude pruning, dynamic int8, 25% of
 * channels removed), evaluate each against the
 * original in onnxruntime, preview the schemes the sample cannot carry (4-bit, bfloat16) on the
 * weights alone, then rewrite the model with its weights in external data and verify the rewrite
 * tensor by tensor, and convert the dynamic int8 variant to a TensorFlow SavedModel that TF.js runs
 * against onnxruntime. Ends with one comparison table.
 */
import { mkdir, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { castModel } from '../../compress/cast.js';
import { quantizeWeights } from '../../compress/quantize/weight.js';
import { pruneWeights } from '../../compress/prune.js';
import { pruneChannels } from '../../compress/prune-structured.js';
import { quantizeDynamic } from '../../compress/quantize/dynamic.js';
import { ErrorCodes, ModelsmithError, isModelsmithError } from '../../core/errors.js';
import { typedView } from '../../core/tensor.js';
import { evaluate } from '../../eval/compare.js';
import { errorStats, type ErrorStats } from '../../eval/metrics.js';
import type { OnnxModel } from '../../formats/onnx/read.js';
import { summarizeOnnx } from '../../formats/onnx/summary.js';
import { collectTensors, modelTensorContext, tensorFromProto } from '../../formats/onnx/tensor.js';
import { castBf16ToF32, castF32ToBf16 } from '../../kernels/cast.js';
import { initKernels } from '../../kernels/loader.js';
import { dequantizeBlockwise4, quantizeBlockwise4 } from '../../kernels/quantize.js';
import { openModelFile, saveOnnxFile } from '../../platform/open.js';
import { formatBytes, table, type Out } from '../output.js';
import { convertOnnxToSavedModel } from '../tf.js';
import { renderInspect } from './inspect.js';
import type { Command } from './index.js';

export const SAMPLE_MODEL = resolve(dirname(fileURLToPath(import.meta.url)), '../../../examples/sample/version-slim-320.onnx');

interface Variant {
  name: string;
  file: string;
  bytes: number;
  /** Smallest cosine and SNR over the outputs; null when onnxruntime could not run the pair. */
  cosine: number | null;
  snrDb: number | null;
  top1: number | null;
  seconds: number;
  note?: string;
}

interface WeightPreview {
  scheme: string;
  weightBytes: number;
  meanSnrDb: number;
  worst: { tensor: string; snrDb: number };
}

/** The compressed variants the demo writes: each pass edits a freshly read model in place. */
const VARIANTS: { name: string; file: string; apply: (m: OnnxModel) => Promise<unknown> }[] = [
  { name: 'int8 weight-only, per-channel', file: 'int8.onnx', apply: (m) => quantizeWeights(m, { dtype: 'int8', perChannel: true, symmetric: true }) },
  { name: 'uint8 weight-only, per-tensor', file: 'uint8.onnx', apply: (m) => quantizeWeights(m, { dtype: 'uint8', perChannel: false, symmetric: false }) },
  { name: 'float16', file: 'float16.onnx', apply: (m) => castModel(m, { to: 'float16', keepIoTypes: true }) },
  // Dense storage: the file keeps its size; the row shows what 50% zeros cost without fine-tuning.
  { name: '50% magnitude-pruned', file: 'pruned50.onnx', apply: (m) => pruneWeights(m, { method: 'magnitude', sparsity: 0.5 }) },
  // The sample is opset 9: the pass raises it to 11 (every op keeps its meaning) for DynamicQuantizeLinear.
  { name: 'dynamic int8, per-channel', file: 'dynamic.onnx', apply: (m) => quantizeDynamic(m, { perChannel: true }) },
  // Physically smaller: 25% of the output channels of every prunable layer removed (no fine-tuning).
  { name: '25% channels removed', file: 'channels25.onnx', apply: async (m) => pruneChannels(m, { ratio: 0.25 }) },
];

export const demoCommand: Command = {
  name: 'demo',
  summary: 'compress the bundled sample (int8, uint8, float16, 50% pruned), evaluate each, rewrite with external data',
  help: `usage: modelsmith demo [model.onnx] [-o out_dir] [--samples N] [--json]

With no model, uses the bundled sample (examples/sample/version-slim-320.onnx, MIT).
1. inspect: what the model holds;
2. compress: writes <out_dir>/int8.onnx (weight-only int8, per output channel), uint8.onnx
   (weight-only uint8, per tensor), float16.onnx and pruned50.onnx (50% magnitude pruning, dense
   storage), and evaluates each against the original in onnxruntime on N seeded random inputs
   (cosine, SNR, top-1 agreement of the outputs);
3. preview: schemes without a writer yet (4-bit blockwise, bfloat16) applied to the weights alone,
   error in weight space;
4. convert: rewrites the model to <out_dir>/model.onnx with weights ≥ 1 KiB in model.onnx.data,
   re-reads it and compares every tensor byte for byte with the original;
5. TensorFlow: converts dynamic.onnx to the SavedModel <out_dir>/dynamic_savedmodel and runs it in
   TF.js against onnxruntime on the same inputs (needs @tensorflow/tfjs, a dev dependency; without
   it the step says so and the demo goes on).

options:
  -o, --output DIR   where the results go (default ./modelsmith-demo)
  --samples N        random inputs per evaluation (default 4)
  --json             one JSON report on stdout

examples:
  modelsmith demo
  modelsmith demo my_model.onnx -o /tmp/demo --samples 16 --json`,
  options: { samples: { type: 'string' } },
  async run(positionals, values, out) {
    if (positionals.length > 1) throw new ModelsmithError(ErrorCodes.USAGE, 'demo takes at most one model file');
    const input = positionals[0] ?? SAMPLE_MODEL;
    const outDir = (values.output as string | undefined) ?? 'modelsmith-demo';
    const samples = values.samples === undefined ? 4 : Number(values.samples);
    if (!Number.isSafeInteger(samples) || samples < 1) throw new ModelsmithError(ErrorCodes.USAGE, `--samples must be a positive count, got '${String(values.samples)}'`);
    const kernels = await initKernels();
    out.note(`kernels: ${kernels.flavor} WASM`);
    await mkdir(outDir, { recursive: true });
    const originalBytes = (await stat(input)).size;

    // 1. inspect
    const { model, close } = await openModelFile(input);
    try {
      const summary = summarizeOnnx(model);
      out.say('== inspect');
      for (const line of renderInspect(summary)) out.say(line);

      // 2. compressed variants, each evaluated against the original
      const variants: Variant[] = [];
      for (const v of VARIANTS) {
        out.note(`writing ${v.name} …`);
        const t0 = performance.now();
        const fresh = await openModelFile(input);
        const file = join(outDir, v.file);
        try {
          await v.apply(fresh.model);
          await saveOnnxFile(fresh.model, file, { inputs: [input] });
        } finally {
          await fresh.close();
        }
        const seconds = (performance.now() - t0) / 1000;
        variants.push({ name: v.name, file, bytes: (await stat(file)).size, seconds, ...(await outputAgreement(input, file, samples)) });
      }

      // 3. weight-space preview of the schemes this model cannot carry (int4: MatMul/Gather only; bf16: opset >= 13)
      const preview = await previewWeights(model);

      // 4. convert with external data, verify
      const target = join(outDir, 'model.onnx');
      const stats = await saveOnnxFile(model, target, { inputs: [input], externalData: { threshold: 1024 } });
      const verify = await verifyRewrite(model, target);

      // 5. the dynamic int8 variant as a TF SavedModel, checked by TF.js against onnxruntime
      const tf = await toTensorFlow(join(outDir, 'dynamic.onnx'), join(outDir, 'dynamic_savedmodel'), samples, out);

      out.say('', `== compressed variants (outputs vs the original on ${samples} random inputs, onnxruntime)`);
      out.say(...table([
        ['  variant', 'file', 'size', 'min cosine', 'min SNR', 'top-1'],
        ['  float32 (original)', input.split('/').pop()!, formatBytes(originalBytes), '1', '∞', '100%'],
        ...variants.map((v) => [
          `  ${v.name}`, v.file.split('/').pop()!, `${formatBytes(v.bytes)} (${((100 * v.bytes) / originalBytes).toFixed(0)}%)`,
          v.cosine === null ? 'n/a' : v.cosine.toFixed(6), v.snrDb === null ? 'n/a' : `${v.snrDb.toFixed(1)} dB`, v.top1 === null ? 'n/a' : `${(100 * v.top1).toFixed(2)}%`,
        ]),
      ]));
      for (const v of variants) if (v.note) out.say(`  ${v.name}: ${v.note}`);
      out.say('', '== preview on the weights alone (the sample has no MatMul/Gather for int4 and is opset 9, below the 13 bfloat16 needs)');
      out.say(...table([
        ['  scheme', 'weight bytes', 'mean SNR', 'worst tensor (SNR)'],
        ...preview.map((p) => [`  ${p.scheme}`, formatBytes(p.weightBytes), `${p.meanSnrDb.toFixed(1)} dB`, `${p.worst.tensor} (${p.worst.snrDb.toFixed(1)} dB)`]),
      ]));
      out.say('', '== convert');
      out.say(`  wrote ${stats.files.join(' + ')}: ${formatBytes(stats.modelBytes)} graph + ${formatBytes(stats.externalBytes)} external (${stats.externalTensors} tensors)`);
      out.say(`  re-read: ${verify.identical}/${verify.total} tensors byte-identical`);
      if (verify.identical !== verify.total) {
        throw new ModelsmithError(ErrorCodes.MALFORMED, `rewrite verification failed: ${verify.total - verify.identical} tensors differ (first: ${verify.firstDifferent})`, { path: target });
      }
      out.say('', '== TensorFlow');
      out.say(`  dynamic.onnx → ${tf.dir}: ${tf.ops} ONNX ops converted, ${tf.transposesLeft} layout transposes left, ${formatBytes(tf.bytes)}`);
      out.say(tf.cosine === null ? `  TF.js vs onnxruntime: ${tf.note}` : `  TF.js vs onnxruntime on ${samples} random inputs: min cosine ${tf.cosine.toFixed(6)}, min SNR ${tf.snrDb!.toFixed(1)} dB`);
      return { ok: true, verb: 'demo', input, originalBytes, inspect: summary, variants, weightPreview: preview, convert: { ...stats, verify }, tensorflow: tf };
    } finally {
      await close();
    }
  },
};

/**
 * ONNX → SavedModel (the demo's own output folder is replaced on a rerun), then the SavedModel in
 * TF.js against the ONNX model in onnxruntime.
 */
async function toTensorFlow(onnxFile: string, dir: string, samples: number, out: Out) {
  out.note('converting dynamic.onnx to a TensorFlow SavedModel …');
  await rm(dir, { recursive: true, force: true });
  const silent: Out = { ...out, say: () => undefined };
  const r = (await convertOnnxToSavedModel(onnxFile, dir, { nhwcIo: false, constants: false }, silent)) as {
    files: Array<{ bytes: number }>; report: { opsMapped: Record<string, number>; transposesLeft: number };
  };
  const agreement = await outputAgreement(onnxFile, dir, samples);
  return {
    dir,
    bytes: r.files.reduce((n, f) => n + f.bytes, 0),
    ops: Object.values(r.report.opsMapped).reduce((n, c) => n + c, 0),
    transposesLeft: r.report.transposesLeft,
    ...agreement,
  };
}

/** Worst output agreement of two models; onnxruntime missing or refusing is reported, not fatal. */
async function outputAgreement(ref: string, cand: string, samples: number): Promise<Pick<Variant, 'cosine' | 'snrDb' | 'top1' | 'note'>> {
  try {
    const r = await evaluate(ref, cand, { samples, seed: 0 });
    const tops = r.outputs.map((o) => o.top1).filter((t): t is number => t !== null);
    return {
      cosine: Math.min(...r.outputs.map((o) => o.cosine)),
      snrDb: Math.min(...r.outputs.map((o) => o.snrDb)),
      top1: tops.length ? Math.min(...tops) : null,
    };
  } catch (e) {
    if (!isModelsmithError(e)) throw e;
    return { cosine: null, snrDb: null, top1: null, note: `not evaluated: ${e.message}` };
  }
}

async function previewWeights(model: OnnxModel): Promise<WeightPreview[]> {
  const ctx = modelTensorContext(model);
  const acc = new Map<string, { bytes: number; snrs: { tensor: string; s: ErrorStats }[] }>();
  const add = (scheme: string, bytes: number, tensor: string, s: ErrorStats) => {
    const a = acc.get(scheme) ?? { bytes: 0, snrs: [] };
    a.bytes += bytes;
    a.snrs.push({ tensor, s });
    acc.set(scheme, a);
  };
  for (const e of collectTensors(model)) {
    if ((e.kind !== 'initializer' && e.kind !== 'constant') || e.proto.dataType !== 1 || e.proto.dims.length < 2) continue;
    const t = await tensorFromProto(e.proto, ctx);
    const w = typedView(t) as Float32Array;
    const n = w.length;
    if (n === 0) continue;
    // 4-bit: blocks of 32 along the input axis of each output channel, as MatMulNBits lays out [N, K].
    const rows = t.shape[0]!;
    const K = n / rows;
    const b = quantizeBlockwise4(w, [rows, K], 32, 'int4');
    add('int4 blockwise (block 32)', Math.ceil(n / 2) + rows * Math.ceil(K / 32) * 4, e.name, errorStats(w, dequantizeBlockwise4(b)));
    add('bfloat16', n * 2, e.name, errorStats(w, castBf16ToF32(castF32ToBf16(w))));
  }
  return [...acc.entries()].map(([scheme, a]) => {
    const finite = a.snrs.filter((x) => Number.isFinite(x.s.snrDb));
    const worst = a.snrs.reduce((w, x) => (x.s.snrDb < w.s.snrDb ? x : w), a.snrs[0]!);
    return {
      scheme,
      weightBytes: a.bytes,
      meanSnrDb: finite.length ? finite.reduce((s, x) => s + x.s.snrDb, 0) / finite.length : Infinity,
      worst: { tensor: worst.tensor, snrDb: worst.s.snrDb },
    };
  });
}

async function verifyRewrite(original: OnnxModel, target: string): Promise<{ total: number; identical: number; firstDifferent?: string }> {
  const re = await openModelFile(target);
  try {
    const a = collectTensors(original);
    const b = collectTensors(re.model);
    const ca = modelTensorContext(original);
    const cb = modelTensorContext(re.model);
    let identical = 0;
    let firstDifferent: string | undefined;
    for (let i = 0; i < a.length; i++) {
      const ta = await tensorFromProto(a[i]!.proto, ca);
      const tb = b[i] ? await tensorFromProto(b[i]!.proto, cb) : undefined;
      const same = tb !== undefined && ta.name === tb.name && ta.dtype === tb.dtype && ta.shape.join() === tb.shape.join() && bytesEqual(ta.data, tb.data);
      if (same) identical++;
      else firstDifferent ??= a[i]!.name;
    }
    return { total: Math.max(a.length, b.length), identical, ...(firstDifferent ? { firstDifferent } : {}) };
  } finally {
    await re.close();
  }
}

function bytesEqual(x: Uint8Array, y: Uint8Array): boolean {
  if (x.byteLength !== y.byteLength) return false;
  for (let i = 0; i < x.byteLength; i++) if (x[i] !== y[i]) return false;
  return true;
}
