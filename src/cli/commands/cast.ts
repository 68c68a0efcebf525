import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { castModel, type CastTarget } from '../../compress/cast.js';
import { DEFAULT_BLOCKED_OPS } from '../../compress/cast-blocklist.js';
import { externalFiles, openModelFile, saveOnnxFile, spillFor } from '../../platform/open.js';
import { formatBytes } from '../output.js';
import type { Command } from './index.js';
import { CONTAINER_HELP, CONTAINER_OPTIONS, detectFile, isWeightFormat, runWeights, syncOpt, weightsCastPass } from '../weights.js';

export const castCommand: Command = {
  name: 'cast',
  summary: 'convert an ONNX model\'s float32 weights and compute to float16 (or store weights as bfloat16)',
  help: `usage: modelsmith cast <in.onnx> -o <out.onnx> --to float16|bfloat16 [--keep-io-types|--no-keep-io-types]
                      [--block-ops A,B] [--json]

--to float16    the whole main graph runs in float16: initializers, Constant values and activations
                become float16; weights beyond ±65504 are clamped to ±65504 (never Inf), non-zero
                weights below 2^-24 become ±2^-24 (never a 0 divisor/epsilon). Ops without
                safe float16 support (random ops, Range, Quantize/DequantizeLinear, DFT/STFT, window
                functions and every non-ONNX-domain op) stay float32 behind one Cast each way.
                The file is about half the size.
--to bfloat16   weights-only: initializers and Constant values of ≥ 64 elements are stored as bfloat16
                and widened by a Cast right after, so computation stays float32 (onnxruntime's CPU
                provider has almost no bfloat16 kernels). Needs opset ≥ 13.

options:
  -o, --output PATH       output file (or give it as the second argument)
  --to TYPE               float16 or bfloat16 (required)
  --keep-io-types         keep graph inputs/outputs float32, with Casts at the boundary (default)
  --no-keep-io-types      declare float inputs/outputs as the target type instead
  --block-ops A,B         more op types to keep in float32 (e.g. when an op overflows in float16)
  --json                  one JSON report on stdout

If/Loop/Scan bodies are converted too, behind float32 interfaces (one Cast each way at the body's
boundary). A node whose value types cannot be inferred (custom-domain op without value_info) makes
the command refuse the model with E_UNSUPPORTED, naming the values.
The output is written atomically and the input is never overwritten. A model whose weights are in
external data is written with external data too (<out>.data).

${CONTAINER_HELP}
  Every float tensor (1-D too, as model.half() does) becomes --to; integer tensors stay.

examples:
  modelsmith cast model.onnx -o model.fp16.onnx --to float16
  modelsmith cast model.onnx -o model.fp16.onnx --to float16 --block-ops Softmax,LayerNormalization
  modelsmith cast model.onnx -o model.bf16.onnx --to bfloat16 --json
  modelsmith cast model.pt -o model.fp16.safetensors --to float16`,
  options: {
    to: { type: 'string' },
    'keep-io-types': { type: 'boolean' },
    'no-keep-io-types': { type: 'boolean' },
    'block-ops': { type: 'string' },
    exclude: { type: 'string' },
    ...CONTAINER_OPTIONS,
  },
  async run(positionals, values, out) {
    const input = positionals[0];
    const output = (values.output as string | undefined) ?? positionals[1];
    if (!input || !output || positionals.length > (values.output ? 1 : 2)) {
      throw new ModelsmithError(ErrorCodes.USAGE, 'cast needs one input and one output (modelsmith cast in.onnx -o out.onnx --to float16)');
    }
    const to = values.to as string | undefined;
    if (to !== 'float16' && to !== 'bfloat16') {
      throw new ModelsmithError(ErrorCodes.USAGE, `--to must be float16 or bfloat16${to === undefined ? '' : `, got '${to}'`}`);
    }
    if (values['keep-io-types'] && values['no-keep-io-types']) {
      throw new ModelsmithError(ErrorCodes.USAGE, '--keep-io-types and --no-keep-io-types contradict each other');
    }
    if (isWeightFormat(await detectFile(input))) return runWeights('cast', input, output, values, out, weightsCastPass(to, values));
    for (const k of Object.keys(CONTAINER_OPTIONS).concat('exclude')) {
      if (values[k] !== undefined) throw new ModelsmithError(ErrorCodes.USAGE, `--${k} applies to weight containers, not ONNX models`);
    }
    if (!output.toLowerCase().endsWith('.onnx')) {
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `writing '${output}' is not supported: cast writes ONNX (.onnx) only`, { path: output });
    }
    const blockOps = typeof values['block-ops'] === 'string'
      ? (values['block-ops'] as string).split(',').map((s) => s.trim()).filter(Boolean)
      : [];
    const keepIoTypes = !values['no-keep-io-types'];
    const t0 = performance.now();
    const { model, close } = await openModelFile(input);
    try {
      const sizeBefore = model.byteSize;
      out.note(`read ${input} (${formatBytes(sizeBefore)})`);
      // A model with external data gets external data again (converted tensors are built inline).
      const hadExternal = externalFiles(model).length > 0;
      const spill = spillFor(model, output);
      let report: Awaited<ReturnType<typeof castModel>>['report'];
      let stats: Awaited<ReturnType<typeof saveOnnxFile>>;
      try {
        ({ report } = await castModel(model, { to: to as CastTarget, keepIoTypes, blockOps, ...(spill ? { spill } : {}) }));
        stats = await saveOnnxFile(model, output, { inputs: [input], ...(hadExternal ? { externalData: {} } : {}), ...syncOpt(values) });
      } finally {
        await spill?.dispose();
      }
      const seconds = (performance.now() - t0) / 1000;
      const sizeAfter = stats.modelBytes + stats.externalBytes;
      const kept = Object.entries(report.nodesKeptFloat32).map(([op, n]) => `${op}×${n}`).join(', ');
      out.say(
        `wrote ${stats.files.join(' + ')}: ${formatBytes(sizeBefore)} → ${formatBytes(sizeAfter)} (${report.mode} ${to})`,
        `  tensors converted: ${report.tensorsConverted} (${report.elementsConverted} values), clamped: ${report.clampedValues}` +
          (report.tinyValuesRaised ? `, tiny values kept non-zero: ${report.tinyValuesRaised}` : ''),
        `  nodes converted: ${report.nodesConverted}, kept float32: ${kept || 'none'}`,
        `  Cast nodes inserted: ${report.castNodesInserted}, patched: ${report.castNodesPatched}; ${seconds.toFixed(2)} s`,
        ...report.warnings.map((w) => `  warning: ${w}`),
      );
      return {
        ok: true, verb: 'cast', input, output, files: stats.files, sizeBefore, sizeAfter, seconds,
        defaultBlockedOps: DEFAULT_BLOCKED_OPS.map((b) => b.op), ...report, diagnostics: model.diagnostics,
      };
    } finally {
      await close();
    }
  },
};
