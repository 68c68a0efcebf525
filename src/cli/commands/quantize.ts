import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { externalFiles, modelFileBytes, openModelFile, saveOnnxFile, spillFor } from '../../platform/open.js';
import { quantizeWeights, type QuantizeWeightsOptions } from '../../compress/quantize/weight.js';
import { quantizeInt4 } from '../../compress/quantize/int4.js';
import { quantizeDynamic } from '../../compress/quantize/dynamic.js';
import { WEIGHT_OPS } from '../../compress/quantize/registry.js';
import { parseExclude } from '../exclude.js';
import { formatSizeReport } from '../../compress/report.js';
import { formatBytes, table } from '../output.js';
import type { Command } from './index.js';
import { STATIC_HELP, STATIC_OPTIONS, runStatic } from '../static-quantize.js';
import { DATA_HELP } from '../data-options.js';
import { CONTAINER_HELP, CONTAINER_OPTIONS, detectFile, isWeightFormat, runWeights, syncOpt, weightsQuantizePass } from '../weights.js';

const METHODS = ['weight', 'dynamic', 'int4', 'static'] as const;

export const quantizeCommand: Command = {
  name: 'quantize',
  summary: 'quantize weights to int8/uint8 (weight-only QDQ: quantized initializer → DequantizeLinear)',
  help: `usage: modelsmith quantize <in.onnx> -o <out.onnx> [--method weight|dynamic|int4|static] [--dtype int8|uint8]
                          [--per-channel] [--symmetric] [--exclude NAME|OpType,...] [--min-elements N]
                          [--block-size N] [--asymmetric] [--reduce-range] [--json]

Weight-only quantization: every float32 weight of MatMul (B), Gemm (B), Conv (W), ConvTranspose (W)
and Gather (embedding table) with at least 2 dimensions is stored as int8/uint8 plus a scale and a
zero point, and a DequantizeLinear node turns it back into float32 at run time under the original
name, so the rest of the graph is unchanged (onnxruntime runs the result; on CPU it keeps computing
in float32, the file is what gets smaller). Weights held in Constant nodes, also inside If/Loop
bodies, are included. Zero is always exactly representable.

options:
  -o, --output PATH     output file (or give it as the second argument); never overwrites the input
  --method M            weight (default); int4: every MatMul with a float32 2-D constant weight becomes
                        com.microsoft MatMulNBits (4-bit blocks along K, symmetric unless --asymmetric;
                        runs in onnxruntime); dynamic: every MatMul / Gemm / Conv with a float32 constant
                        weight becomes DynamicQuantizeLinear(A) → MatMulInteger / ConvInteger(A_q,
                        int8 W) → Cast → Mul (→ Add bias / alpha, beta·C for Gemm), as onnxruntime's
                        quantize_dynamic (needs opset >= 11; --per-channel: one weight scale per
                        output channel). --exclude takes weight or node names for both, and
                        MatMul / Gemm / Conv for dynamic; static: activations too, calibrated on
                        data (see below)
  --block-size N        int4 only: values per block, a power of two in 16..256 (default 32)
  --asymmetric          int4 only: per-block zero points instead of the symmetric default
  --reduce-range        dynamic only: 7-bit weights (codes in [-63, 63]), like quantize_dynamic's reduce_range
  --keep-opset          dynamic only: never raise a model below opset 11 to 11 (by default it is raised
                        when every op keeps its meaning: Slice/Clip/Pad rewritten, others allow-listed)
  --dtype T             int8 (default) or uint8
  --per-channel         one scale per output channel (needs opset >= 13; older models fall back to
                        per tensor with a warning, the opset is not raised)
  --symmetric           symmetric range (int8 zero point 0, uint8 zero point 128); default asymmetric
  --exclude LIST        comma-separated weight names, node names or op types to leave in float32
                        (an item equal to a supported op type — ${[...WEIGHT_OPS.keys()].join(', ')} — is an op type)
  --min-elements N      leave weights with fewer elements than N alone (default 16)
  --json                one JSON report on stdout (sizes, ratio, time, per-tensor error, skips)

The report gives file sizes before/after, tensor bytes per dtype, the ratio, the time, and for each
weight its scheme and weight-space error (max-abs, SNR); skipped weights are listed with the reason.

${STATIC_HELP}

${DATA_HELP}

${CONTAINER_HELP}
  Quantized weights are stored as <name> (int8/uint8; int4: packed uint8), <name>.scale (float32)
  and <name>.zero_point (when not 0); the recipe per tensor goes into the safetensors metadata
  ("modelsmith.quantization"). --method weight or int4 (--asymmetric: uint4 with zero points).

examples:
  modelsmith quantize model.onnx -o model.int8.onnx --per-channel --symmetric
  modelsmith quantize model.onnx -o model.u8.onnx --dtype uint8
  modelsmith quantize model.onnx -o model.q.onnx --per-channel --exclude Gather,head.weight --json
  modelsmith quantize model.onnx -o model.q4.onnx --method int4 --block-size 32
  modelsmith quantize model.onnx -o model.dyn.onnx --method dynamic --reduce-range
  modelsmith quantize cnn.onnx -o cnn.qdq.onnx --method static --calibration images.npz --calibration-method entropy
  modelsmith quantize model.safetensors -o model.int8.safetensors --per-channel --symmetric`,
  options: {
    method: { type: 'string' },
    dtype: { type: 'string' },
    'per-channel': { type: 'boolean' },
    symmetric: { type: 'boolean' },
    exclude: { type: 'string' },
    'min-elements': { type: 'string' },
    'block-size': { type: 'string' },
    asymmetric: { type: 'boolean' },
    'reduce-range': { type: 'boolean' },
    'keep-opset': { type: 'boolean' },
    'include-1d': { type: 'boolean' },
    ...STATIC_OPTIONS,
    ...CONTAINER_OPTIONS,
  },
  async run(positionals, values, out) {
    const input = positionals[0];
    const output = (values.output as string | undefined) ?? positionals[1];
    if (!input || !output || positionals.length > (values.output ? 1 : 2)) {
      throw new ModelsmithError(ErrorCodes.USAGE, 'quantize needs one input and one output (modelsmith quantize in.onnx -o out.onnx)');
    }
    const method = (values.method as string | undefined) ?? 'weight';
    if (!(METHODS as readonly string[]).includes(method)) {
      throw new ModelsmithError(ErrorCodes.USAGE, `--method must be one of ${METHODS.join(', ')}, got '${method}'`);
    }
    if (method !== 'static') {
      for (const k of Object.keys(STATIC_OPTIONS)) {
        if (values[k] !== undefined) throw new ModelsmithError(ErrorCodes.USAGE, `--${k} applies to --method static`);
      }
    }
    if (isWeightFormat(await detectFile(input))) {
      if (method === 'static') throw new ModelsmithError(ErrorCodes.USAGE, 'static quantization calibrates activations, so it needs a model graph (ONNX), not a weight container', { path: input });
      return runWeights('quantize', input, output, values, out, weightsQuantizePass(values));
    }
    for (const k of Object.keys(CONTAINER_OPTIONS).concat('include-1d')) {
      if (values[k] !== undefined) throw new ModelsmithError(ErrorCodes.USAGE, `--${k} applies to weight containers, not ONNX models`);
    }
    if (method === 'static') {
      return runStatic(input, output, values, out);
    }
    if (method === 'int4' || method === 'dynamic') return runMethod(method, input, output, values, out);
    for (const k of ['block-size', 'asymmetric', 'reduce-range', 'keep-opset']) {
      if (values[k] !== undefined) throw new ModelsmithError(ErrorCodes.USAGE, `--${k} does not apply to --method weight`);
    }
    const dtype = (values.dtype as string | undefined) ?? 'int8';
    if (dtype !== 'int8' && dtype !== 'uint8') {
      throw new ModelsmithError(ErrorCodes.USAGE, `--dtype must be int8 or uint8 for --method weight, got '${dtype}'`);
    }
    if (!output.toLowerCase().endsWith('.onnx')) {
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `writing '${output}' is not supported yet: this build writes ONNX (.onnx) only`, { path: output });
    }
    let minElements: number | undefined;
    if (values['min-elements'] !== undefined) {
      minElements = Number(values['min-elements']);
      if (!Number.isSafeInteger(minElements) || minElements < 1) {
        throw new ModelsmithError(ErrorCodes.USAGE, `--min-elements must be a positive integer, got '${String(values['min-elements'])}'`);
      }
    }
    const opts: QuantizeWeightsOptions = {
      dtype,
      perChannel: Boolean(values['per-channel']),
      symmetric: Boolean(values.symmetric),
      ...(minElements !== undefined ? { minElements } : {}),
    };
    if (values.exclude !== undefined) opts.exclude = parseExclude(values.exclude as string);

    const t0 = performance.now();
    const { model, close } = await openModelFile(input);
    const inputBytes = await modelFileBytes(input, model);
    try {
      out.note(`read ${input} (${formatBytes(model.byteSize)})`);
      // Big models: converted payloads go to a scratch file as they are made, so memory stays near one tensor.
      const spill = spillFor(model, output);
      const hadExternal = externalFiles(model).length > 0;
      let report: Awaited<ReturnType<typeof quantizeWeights>>['report'];
      let stats: Awaited<ReturnType<typeof saveOnnxFile>>;
      try {
        ({ report } = await quantizeWeights(model, { ...opts, ...(spill ? { spill } : {}) }));
        stats = await saveOnnxFile(model, output, { inputs: [input], ...(hadExternal ? { externalData: {} } : {}), ...syncOpt(values) });
      } finally {
        await spill?.dispose();
      }
      const outputBytes = stats.modelBytes + (stats.externalBytes ?? 0);
      const seconds = (performance.now() - t0) / 1000;
      const ratio = inputBytes > 0 ? outputBytes / inputBytes : 1;
      const scheme = `${dtype} ${opts.perChannel ? 'per-channel' : 'per-tensor'} ${opts.symmetric ? 'symmetric' : 'asymmetric'}`;
      out.say(`quantized ${report.quantized.length} weight(s) to ${scheme}, skipped ${report.skipped.length}`);
      out.say(`file: ${formatBytes(inputBytes)} → ${formatBytes(outputBytes)} (${(ratio * 100).toFixed(1)}%) in ${seconds.toFixed(2)} s → ${stats.files.join(' + ')}`);
      out.say('tensor bytes by dtype:', ...formatSizeReport(report.size, formatBytes));
      if (report.quantized.length) {
        const rows = [['weight', 'op', 'shape', 'scheme', 'max-abs err', 'SNR dB']];
        for (const q of report.quantized) {
          rows.push([q.name, q.op, `[${q.shape.join(',')}]`, q.scheme + (q.axis !== undefined ? ` axis ${q.axis}` : ''), q.maxAbs.toExponential(2), Number.isFinite(q.snrDb) ? q.snrDb.toFixed(1) : String(q.snrDb)]);
        }
        out.say(...table(rows));
      }
      if (report.skipped.length) {
        out.say('skipped:', ...report.skipped.map((s) => `  ${s.name} (${s.op}): ${s.reason}`));
      }
      for (const d of report.diagnostics) out.note(`${d.level}: ${d.message}`);
      return {
        ok: true, verb: 'quantize', method, input, output, files: stats.files,
        inputBytes, outputBytes, ratio, seconds,
        ...report,
      };
    } finally {
      await close();
    }
  },
};

async function runMethod(method: 'int4' | 'dynamic', input: string, output: string, values: Record<string, unknown>, out: Parameters<Command['run']>[2]): Promise<Record<string, unknown>> {
  const foreign = method === 'int4' ? ['dtype', 'per-channel', 'symmetric', 'min-elements', 'reduce-range', 'keep-opset'] : ['dtype', 'symmetric', 'block-size', 'asymmetric'];
  for (const k of foreign) {
    if (values[k] !== undefined) throw new ModelsmithError(ErrorCodes.USAGE, `--${k} does not apply to --method ${method}`);
  }
  let blockSize = 32;
  if (values['block-size'] !== undefined) {
    blockSize = Number(values['block-size']);
    if (!Number.isInteger(blockSize) || blockSize < 16 || blockSize > 256 || (blockSize & (blockSize - 1)) !== 0) {
      throw new ModelsmithError(ErrorCodes.USAGE, `--block-size must be a power of two in 16..256, got '${String(values['block-size'])}'`);
    }
  }
  let minElements: number | undefined;
  if (values['min-elements'] !== undefined) {
    minElements = Number(values['min-elements']);
    if (!Number.isSafeInteger(minElements) || minElements < 1) {
      throw new ModelsmithError(ErrorCodes.USAGE, `--min-elements must be a positive integer, got '${String(values['min-elements'])}'`);
    }
  }
  if (!output.toLowerCase().endsWith('.onnx')) {
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `writing '${output}' is not supported yet: this build writes ONNX (.onnx) only`, { path: output });
  }
  const symmetric = !values.asymmetric;
  const reduceRange = Boolean(values['reduce-range']);
  const ex = values.exclude !== undefined ? parseExclude(values.exclude as string) : undefined;
  const exclude = ex ? { names: ex.names } : undefined;
  const opTypes = (['MatMul', 'Gemm', 'Conv'] as const).filter((t) => !ex?.opTypes.includes(t));
  const t0 = performance.now();
  const { model, close } = await openModelFile(input);
  const inputBytes = await modelFileBytes(input, model);
  try {
    out.note(`read ${input} (${formatBytes(model.byteSize)})`);
    const { report } = method === 'int4'
      ? await quantizeInt4(model, { blockSize, symmetric, ...(exclude ? { exclude } : {}) })
      : await quantizeDynamic(model, { reduceRange, perChannel: Boolean(values['per-channel']), opTypes, upgradeOpset: !values['keep-opset'], ...(exclude ? { exclude } : {}), ...(minElements !== undefined ? { minElements } : {}) });
    const stats = await saveOnnxFile(model, output, { inputs: [input], ...syncOpt(values) });
    const outputBytes = stats.modelBytes + (stats.externalBytes ?? 0);
    const seconds = (performance.now() - t0) / 1000;
    const ratio = inputBytes > 0 ? outputBytes / inputBytes : 1;
    const scheme = method === 'int4'
      ? `4-bit MatMulNBits (block ${blockSize}, ${symmetric ? 'symmetric' : 'asymmetric'})`
      : `dynamic int8 ${values['per-channel'] ? 'per-channel' : 'per-tensor'} (DynamicQuantizeLinear + MatMulInteger/ConvInteger${reduceRange ? ', 7-bit weights' : ''})`;
    out.say(`quantized ${report.quantized.length} ${method === 'int4' ? 'MatMul' : 'MatMul/Gemm/Conv'} weight(s) to ${scheme}, skipped ${report.skipped.length}`);
    out.say(`file: ${formatBytes(inputBytes)} → ${formatBytes(outputBytes)} (${(ratio * 100).toFixed(1)}%) in ${seconds.toFixed(2)} s → ${stats.files.join(' + ')}`);
    out.say('tensor bytes by dtype:', ...formatSizeReport(report.size, formatBytes));
    if (report.quantized.length) {
      const rows = [['weight', 'nodes', 'shape', 'max-abs err', 'SNR dB']];
      for (const q of report.quantized) {
        rows.push([q.name, q.nodes.join(','), `[${q.shape.join(',')}]`, q.maxAbs.toExponential(2), Number.isFinite(q.snrDb) ? q.snrDb.toFixed(1) : String(q.snrDb)]);
      }
      out.say(...table(rows));
    }
    if (report.skipped.length) out.say('skipped:', ...report.skipped.map((s) => `  ${s.name} (${s.node}): ${s.reason}`));
    for (const d of report.diagnostics) out.note(`${d.level}: ${d.message}`);
    return { ok: true, verb: 'quantize', method, input, output, files: stats.files, inputBytes, outputBytes, ratio, seconds, ...report };
  } finally {
    await close();
  }
}

