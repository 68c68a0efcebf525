/**
 * The newcomer's first run: inspect the bundled sample, preview what weight compression would cost
 * in accuracy (int8 per-channel, 4-bit blockwise, float16, bfloat16 — computed with the WASM kernels
 * on every float32 weight), then rewrite the model with its weights in external data and verify the
 * rewrite tensor by tensor.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { typedView } from '../../core/tensor.js';
import { errorStats, type ErrorStats } from '../../eval/metrics.js';
import { summarizeOnnx } from '../../formats/onnx/summary.js';
import { collectTensors, modelTensorContext, tensorFromProto } from '../../formats/onnx/tensor.js';
import { castBf16ToF32, castF16ToF32, castF32ToBf16, castF32ToF16 } from '../../kernels/cast.js';
import { initKernels } from '../../kernels/loader.js';
import { chooseQuantParamsAxis, dequantizeBlockwise4, dequantizeLinear, quantizeBlockwise4, quantizeLinear } from '../../kernels/quantize.js';
import { minMaxAxis } from '../../kernels/stats.js';
import { openModelFile, saveOnnxFile } from '../../platform/open.js';
import { formatBytes, table } from '../output.js';
import { renderInspect } from './inspect.js';
import type { Command } from './index.js';

export const SAMPLE_MODEL = resolve(dirname(fileURLToPath(import.meta.url)), '../../../examples/sample/version-slim-320.onnx');

interface SchemeResult {
  scheme: string;
  bitsPerWeight: number;
  weightBytes: number;
  /** Worst tensor by SNR. */
  worst: { tensor: string; snrDb: number };
  meanSnrDb: number;
  maxAbs: number;
}

export const demoCommand: Command = {
  name: 'demo',
  summary: 'inspect the bundled sample, preview compression error, rewrite it with external data and verify',
  help: `usage: modelsmith demo [model.onnx] [-o out_dir] [--json]

With no model, uses the bundled sample (examples/sample/version-slim-320.onnx, MIT).
1. inspect: what the model holds;
2. compression preview: every float32 weight with 2+ dims is quantized and dequantized with the WASM
   kernels — int8 per output channel (symmetric), 4-bit blockwise (blocks of 32 along each output
   channel's inputs), float16 and bfloat16 — and the error (SNR, max-abs) is reported
   next to the size each scheme would take;
3. convert: the model is rewritten to <out_dir>/model.onnx with weights ≥ 1 KiB in model.onnx.data,
   re-read, and every tensor compared byte for byte with the original.
Writing the compressed models themselves is the ONNX compression issue (#3), not this build.

options:
  -o, --output DIR   where the rewritten model goes (default ./modelsmith-demo)
  --json             one JSON report on stdout

examples:
  modelsmith demo
  modelsmith demo my_model.onnx -o /tmp/demo --json`,
  options: {},
  async run(positionals, values, out) {
    if (positionals.length > 1) throw new ModelsmithError(ErrorCodes.USAGE, 'demo takes at most one model file');
    const input = positionals[0] ?? SAMPLE_MODEL;
    const outDir = (values.output as string | undefined) ?? 'modelsmith-demo';
    const kernels = await initKernels();
    out.note(`kernels: ${kernels.flavor} WASM`);

    // 1. inspect
    const { model, close } = await openModelFile(input);
    try {
      const summary = summarizeOnnx(model);
      out.say('== inspect');
      for (const line of renderInspect(summary)) out.say(line);

      // 2. compression preview
      const ctx = modelTensorContext(model);
      const weights: { name: string; shape: number[]; data: Float32Array }[] = [];
      for (const e of collectTensors(model)) {
        if (e.kind !== 'initializer' && e.kind !== 'constant') continue;
        if (e.proto.dataType !== 1 || e.proto.dims.length < 2) continue;
        const t = await tensorFromProto(e.proto, ctx);
        weights.push({ name: e.name, shape: t.shape, data: typedView(t) as Float32Array });
      }
      out.note(`previewing compression of ${weights.length} float32 weight tensors`);
      const schemes = previewSchemes(weights);
      out.say('', '== compression preview (weights only; outputs are evaluated by `modelsmith eval` in a later release)');
      out.say(...table([
        ['  scheme', 'size', 'mean SNR', 'worst tensor (SNR)', 'max |err|'],
        ...schemes.map((s) => [`  ${s.scheme}`, formatBytes(s.weightBytes), `${s.meanSnrDb.toFixed(1)} dB`, `${s.worst.tensor} (${s.worst.snrDb.toFixed(1)} dB)`, s.maxAbs.toExponential(2)]),
      ]));

      // 3. convert with external data, verify
      await mkdir(outDir, { recursive: true });
      const target = join(outDir, 'model.onnx');
      const stats = await saveOnnxFile(model, target, { inputs: [input], externalData: { threshold: 1024 } });
      const verify = await verifyRewrite(model, target);
      out.say('', '== convert');
      out.say(`  wrote ${stats.files.join(' + ')}: ${formatBytes(stats.modelBytes)} graph + ${formatBytes(stats.externalBytes)} external (${stats.externalTensors} tensors)`);
      out.say(`  re-read: ${verify.identical}/${verify.total} tensors byte-identical`);
      if (verify.identical !== verify.total) {
        throw new ModelsmithError(ErrorCodes.MALFORMED, `rewrite verification failed: ${verify.total - verify.identical} tensors differ (first: ${verify.firstDifferent})`, { path: target });
      }
      return { ok: true, verb: 'demo', input, inspect: summary, compressionPreview: schemes, convert: { ...stats, verify } };
    } finally {
      await close();
    }
  },
};

function previewSchemes(weights: { name: string; shape: number[]; data: Float32Array }[]): SchemeResult[] {
  const acc = new Map<string, { bits: number; bytes: number; snrs: { tensor: string; s: ErrorStats }[] }>();
  const add = (scheme: string, bits: number, bytes: number, tensor: string, s: ErrorStats) => {
    const a = acc.get(scheme) ?? { bits, bytes: 0, snrs: [] };
    a.bytes += bytes;
    a.snrs.push({ tensor, s });
    acc.set(scheme, a);
  };
  for (const w of weights) {
    const n = w.data.length;
    add('float32 (original)', 32, n * 4, w.name, errorStats(w.data, w.data));
    // int8, symmetric, one scale per output channel (axis 0 for Conv OIHW and Gemm/MatMul weights as exported).
    const mm = minMaxAxis(w.data, w.shape, 0);
    const qp = chooseQuantParamsAxis(mm.min, mm.max, 'int8', true);
    const p = { scale: qp.scales, zeroPoint: qp.zeroPoints, shape: w.shape, axis: 0 };
    const q = quantizeLinear(w.data, { ...p, type: 'int8' });
    add('int8 per-channel', 8, n + qp.scales.length * 4, w.name, errorStats(w.data, dequantizeLinear(q, p)));
    // 4-bit: blocks of 32 along the input axis of each output channel, as MatMulNBits lays out [N, K].
    const rows = w.shape[0]!;
    const K = n / rows;
    const b = quantizeBlockwise4(w.data, [rows, K], 32, 'int4');
    add('int4 block 32', 4, Math.ceil(n / 2) + rows * Math.ceil(K / 32) * 4, w.name, errorStats(w.data, dequantizeBlockwise4(b)));
    add('float16', 16, n * 2, w.name, errorStats(w.data, castF16ToF32(castF32ToF16(w.data))));
    add('bfloat16', 16, n * 2, w.name, errorStats(w.data, castBf16ToF32(castF32ToBf16(w.data))));
  }
  return [...acc.entries()].map(([scheme, a]) => {
    const finite = a.snrs.filter((x) => Number.isFinite(x.s.snrDb));
    const worst = a.snrs.reduce((w, x) => (x.s.snrDb < w.s.snrDb ? x : w), a.snrs[0]!);
    return {
      scheme,
      bitsPerWeight: a.bits,
      weightBytes: a.bytes,
      worst: { tensor: worst.tensor, snrDb: worst.s.snrDb },
      meanSnrDb: finite.length ? finite.reduce((s, x) => s + x.s.snrDb, 0) / finite.length : Infinity,
      maxAbs: Math.max(...a.snrs.map((x) => x.s.maxAbs)),
    };
  });
}

async function verifyRewrite(original: import('../../formats/onnx/read.js').OnnxModel, target: string): Promise<{ total: number; identical: number; firstDifferent?: string }> {
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
