/**
 * `modelsmith quantize model.onnx -o out.onnx --method static --calibration DATA`: calibration on our
 * own engine (no onnxruntime), then a QDQ model (src/compress/static).
 */
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import { batches } from '../data/dataset.js';
import { createEngine } from '../engine/engine.js';
import { calibrate, type CalibrationMethod } from '../compress/static/calibrate.js';
import { engineRunner } from '../compress/static/pipeline.js';
import { quantizeStatic } from '../compress/static/quantize.js';
import { formatSizeReport } from '../compress/report.js';
import { modelFileBytes, openModelFile, saveOnnxFile } from '../platform/open.js';
import { parseExclude } from './exclude.js';
import { syncOpt } from './weights.js';
import { formatBytes, table, type Out } from './output.js';
import { counted, openModelData, parseChoice, parseFraction, parsePositiveInt } from './data-options.js';

export const STATIC_OPTIONS = {
  calibration: { type: 'string' },
  'calibration-method': { type: 'string' },
  percentile: { type: 'string' },
  samples: { type: 'string' },
  batch: { type: 'string' },
  'activation-type': { type: 'string' },
  'weight-type': { type: 'string' },
  'per-tensor': { type: 'boolean' },
} as const;

export const STATIC_HELP = `static quantization (--method static --calibration DATA): the model runs on modelsmith's own
engine over DATA in batches; each activation's range is kept as a running statistic (memory does not
grow with the samples), then QuantizeLinear/DequantizeLinear pairs go on the activations (uint8
asymmetric) and the weights are stored int8 per channel with int32 biases — the QDQ format
onnxruntime fuses into QLinearConv / QGemm. Needs opset ≥ 13 for per-channel weights.
  --calibration DATA         calibration data (see "data sets" below); required
  --calibration-method M     minmax (default), percentile or entropy (KL divergence, TensorRT-style)
  --percentile P             percentile method: share of |x| kept, in (90, 100] (default 99.99)
  --samples N                use the first N samples of DATA (default: all)
  --batch N                  samples per engine run (default 32)
  --activation-type T        uint8 (default) or int8
  --weight-type T            int8 (default, symmetric) or uint8 (asymmetric; on x86 CPUs without VNNI
                             onnxruntime's u8·u8 kernels avoid the 16-bit saturation of u8·s8)
  --per-tensor               one scale per weight tensor instead of per output channel`;

export async function runStatic(input: string, output: string, values: Record<string, unknown>, out: Out): Promise<Record<string, unknown>> {
  for (const k of ['dtype', 'per-channel', 'symmetric', 'min-elements', 'block-size', 'asymmetric', 'reduce-range', 'keep-opset']) {
    if (values[k] !== undefined) throw new ModelsmithError(ErrorCodes.USAGE, `--${k} does not apply to --method static`);
  }
  const data = values.calibration as string | undefined;
  if (!data) throw new ModelsmithError(ErrorCodes.USAGE, '--method static needs --calibration DATA (a folder of .npy/.pb files, an .npz or an IDX file)');
  const method = parseChoice<CalibrationMethod>('--calibration-method', values['calibration-method'], ['minmax', 'percentile', 'entropy'], 'minmax');
  if (values.percentile !== undefined && method !== 'percentile') throw new ModelsmithError(ErrorCodes.USAGE, '--percentile applies to --calibration-method percentile');
  const percentile = parseFraction('--percentile', values.percentile, 90, 100, 99.99);
  if (percentile <= 90) throw new ModelsmithError(ErrorCodes.USAGE, `--percentile must be above 90, got ${percentile}`);
  const maxSamples = parsePositiveInt('--samples', values.samples);
  const batchSize = parsePositiveInt('--batch', values.batch) ?? 32;
  const activationType = parseChoice('--activation-type', values['activation-type'], ['uint8', 'int8'] as const, 'uint8');
  const weightType = parseChoice('--weight-type', values['weight-type'], ['int8', 'uint8'] as const, 'int8');
  if (!output.toLowerCase().endsWith('.onnx')) throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `static quantization writes ONNX (.onnx); got '${output}'`, { path: output });
  const ex = values.exclude !== undefined ? parseExclude(values.exclude as string) : undefined;

  const t0 = performance.now();
  const { model, close } = await openModelFile(input);
  try {
    const inputBytes = await modelFileBytes(input, model);
    const ds = await openModelData(data, model.proto, maxSamples);
    out.note(`calibrating ${input} on ${ds.sampleCount} sample(s) of ${data} (${ds.kind}), ${method}, batch ${batchSize}`);
    const engine = await createEngine(model);
    let lastNote = 0;
    const cal = await calibrate(model, counted(batches(ds, batchSize), (n) => {
      const now = performance.now();
      if (now - lastNote > 1000 || n >= ds.sampleCount) {
        lastNote = now;
        out.note(`  ${n}/${ds.sampleCount} samples`);
      }
    }), { method, run: engineRunner(engine), ...(method === 'percentile' ? { percentile } : {}) });
    const { report } = await quantizeStatic(model, cal.ranges, {
      perChannel: !values['per-tensor'], activationType, weightType,
      ...(ex ? { exclude: { names: ex.names, opTypes: ex.opTypes } } : {}),
    });
    const stats = await saveOnnxFile(model, output, { inputs: [input], ...syncOpt(values) });
    const outputBytes = stats.modelBytes + (stats.externalBytes ?? 0);
    const seconds = (performance.now() - t0) / 1000;
    const ratio = inputBytes > 0 ? outputBytes / inputBytes : 1;
    out.say(`static ${activationType} activations (${method}, ${cal.samples} samples in ${cal.batches} batches, observer state ${formatBytes(cal.stateBytes)}), ` +
      `${report.weights.quantized.length} ${weightType} weight(s) ${values['per-tensor'] ? 'per tensor' : 'per channel'}, ${report.biases.length} int32 bias(es)`);
    out.say(`file: ${formatBytes(inputBytes)} → ${formatBytes(outputBytes)} (${(ratio * 100).toFixed(1)}%) in ${seconds.toFixed(2)} s → ${stats.files.join(' + ')}`);
    out.say('tensor bytes by dtype:', ...formatSizeReport(report.weights.size, formatBytes));
    const rows = [['activation', 'min', 'max', 'scale', 'zero point']];
    for (const a of report.activations) rows.push([a.sharesWith ? `${a.tensor} (= ${a.sharesWith})` : a.tensor, a.min.toPrecision(4), a.max.toPrecision(4), a.scale.toExponential(3), String(a.zeroPoint)]);
    out.say(...table(rows));
    for (const d of [...cal.diagnostics, ...report.diagnostics]) out.note(`${d.level}: ${d.message}`);
    return {
      ok: true, verb: 'quantize', method: 'static', input, output, files: stats.files, inputBytes, outputBytes, ratio, seconds,
      calibration: { data, kind: ds.kind, method, samples: cal.samples, batches: cal.batches, stateBytes: cal.stateBytes, ...(method === 'percentile' ? { percentile } : {}) },
      ...report,
    };
  } finally {
    await close();
  }
}
