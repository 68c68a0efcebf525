import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { modelFileBytes, openModelFile, saveOnnxFile } from '../../platform/open.js';
import { pruneWeights, type PruneMethod, type PruneWeightsOptions } from '../../compress/prune.js';
import { pruneChannels, RefusalCodes } from '../../compress/prune-structured.js';
import { WEIGHT_OPS } from '../../compress/quantize/registry.js';
import { parseExclude } from '../exclude.js';
import { formatBytes, table } from '../output.js';
import type { Command } from './index.js';
import type { Out } from '../output.js';
import type { PruneChannelsOptions } from '../../compress/prune-structured.js';
import { GRADIENT_HELP, GRADIENT_OPTIONS, runGradient } from '../gradient-prune.js';
import { DATA_HELP } from '../data-options.js';
import { CONTAINER_HELP, CONTAINER_OPTIONS, detectFile, isWeightFormat, runWeights, syncOpt, weightsPrunePass } from '../weights.js';

const METHODS = ['magnitude', 'global', 'nm', 'channel', 'gradient'] as const;

export const pruneCommand: Command = {
  name: 'prune',
  summary: 'pruning: magnitude (per layer or global), N:M (2:4) or gradient-based (with fine-tuning) zeros in place, or whole output channels removed',
  help: `usage: modelsmith prune <in.onnx> -o <out.onnx> --sparsity S [--method magnitude|global|nm|channel|gradient]
                       [--nm N:M] [--include-1d] [--exclude NAME|OpType,...] [--json]

Unstructured pruning of the float32 / float16 weights of MatMul (B), Gemm (B), Conv (W),
ConvTranspose (W) and Gather (embedding table), incl. weights held in Constant nodes and in If/Loop
bodies. Pruned elements become +0 in place: same tensors, dtypes, shapes and graph, so anything that
ran the original runs the result. Storage stays dense, so the file does NOT get smaller by itself;
the zeros pay off with a sparse runtime or a general-purpose compressor (zip, gzip) on the file.

methods:
  magnitude   (default) in every weight, exactly round(S × elements) of the smallest |w| are zeroed
  global      one threshold over all prunable weights: exactly round(S × all elements) smallest |w|
              are zeroed overall, so layers with small weights lose more
  nm          N:M along the input axis (Conv: input channels, MatMul B [K,N]: K, Gemm B: K, or
              axis 1 with transB): in every group of M consecutive weights N stay (default 2:4);
              weights whose input axis is not a multiple of M, and Gather tables, are skipped
  channel     structured: S = fraction of output channels removed from every prunable Conv (group=1),
              Gemm and MatMul layer (round(S × C), at least one channel stays), ranked by the L1
              norm of their filters. The channels are removed physically — weight, bias,
              BatchNormalization and per-channel constants downstream, depthwise Convs, input
              channels of the next Conv/Gemm/MatMul (also after Flatten or in a Concat) — so the
              file and the compute shrink. Residual branches joined by Add/Sum drop the same
              channels. Layers whose channels reach a graph output, a Reshape/Transpose or any
              op it cannot follow are left alone and listed with the reason. Outputs change
              unless the removed channels contributed nothing: fine-tune or evaluate afterwards.
  gradient    data-driven: see below (needs --data)

options:
  -o, --output PATH     output file (or give it as the second argument); never overwrites the input
  --sparsity S          fraction of weights to zero, 0..1 (required for magnitude and global; with nm
                        it may be omitted and must otherwise equal 1 - N/M); with channel: the
                        fraction of output channels removed per layer
  --method M            magnitude (default), global, nm (--nm alone implies nm) or channel
  --nm N:M              N kept out of every M for --method nm (default 2:4)
  --include-1d          also prune 1-D weights (skipped by default; biases and normalization
                        parameters are not weight inputs and are never pruned)
  --exclude LIST        comma-separated weight names, node names or op types to leave alone (channel:
                        layers joined with an excluded one by a residual Add are left alone too)
                        (an item equal to a supported op type — ${[...WEIGHT_OPS.keys()].join(', ')} — is an op type)
  --json                one JSON report on stdout (per-tensor zeros before/after and sparsity, totals,
                        skipped weights with the reason, file sizes, time)

${GRADIENT_HELP}

${DATA_HELP}

${CONTAINER_HELP}
  magnitude and nm only (global and channel need the graph).

examples:
  modelsmith prune model.onnx -o model.p50.onnx --sparsity 0.5
  modelsmith prune model.onnx -o model.g70.onnx --sparsity 0.7 --method global --exclude Gather
  modelsmith prune model.pt -o model.24.pt --method nm
  modelsmith prune model.onnx -o model.24.onnx --method nm --nm 2:4 --json
  modelsmith prune model.onnx -o model.c25.onnx --method channel --sparsity 0.25
  modelsmith prune cnn.onnx -o cnn.g70.onnx --method gradient --sparsity 0.7 --data train.npz \\
      --eval-data test.npz --fine-tune-steps 50 --sensitivity`,
  options: {
    sparsity: { type: 'string' },
    method: { type: 'string' },
    nm: { type: 'string' },
    'include-1d': { type: 'boolean' },
    exclude: { type: 'string' },
    ...GRADIENT_OPTIONS,
    ...CONTAINER_OPTIONS,
  },
  async run(positionals, values, out) {
    const input = positionals[0];
    const output = (values.output as string | undefined) ?? positionals[1];
    if (!input || !output || positionals.length > (values.output ? 1 : 2)) {
      throw new ModelsmithError(ErrorCodes.USAGE, 'prune needs one input and one output (modelsmith prune in.onnx -o out.onnx --sparsity 0.5)');
    }
    const nmArg = values.nm as string | undefined;
    const method = (values.method as string | undefined) ?? (nmArg !== undefined ? 'nm' : 'magnitude');
    if (!(METHODS as readonly string[]).includes(method)) {
      throw new ModelsmithError(ErrorCodes.USAGE, `--method must be one of ${METHODS.join(', ')}, got '${method}'`);
    }
    if (method !== 'gradient') {
      for (const k of Object.keys(GRADIENT_OPTIONS)) {
        if (values[k] !== undefined) throw new ModelsmithError(ErrorCodes.USAGE, `--${k} applies to --method gradient`);
      }
    }
    if (method === 'gradient') {
      if (isWeightFormat(await detectFile(input))) throw new ModelsmithError(ErrorCodes.USAGE, '--method gradient trains on the model, so it needs an ONNX model, not a weight container', { path: input });
      return runGradient(input, output, values, out);
    }
    if (method === 'channel') return runChannel(input, output, values, out);
    const opts: PruneWeightsOptions = { method: method as PruneMethod };
    if (nmArg !== undefined) {
      if (method !== 'nm') throw new ModelsmithError(ErrorCodes.USAGE, `--nm only applies to --method nm, not ${method}`);
      const mt = /^(\d{1,6}):(\d{1,6})$/.exec(nmArg.trim());
      const n = mt ? Number(mt[1]) : NaN;
      const m = mt ? Number(mt[2]) : NaN;
      if (!mt || m < 1 || n > m) {
        throw new ModelsmithError(ErrorCodes.USAGE, `--nm must be N:M with integers 0 <= N <= M, M >= 1 (e.g. 2:4), got '${nmArg}'`);
      }
      opts.n = n;
      opts.m = m;
    }
    if (values.sparsity !== undefined) {
      const s = String(values.sparsity).trim();
      const v = s === '' ? NaN : Number(s);
      if (!Number.isFinite(v) || v < 0 || v > 1) {
        throw new ModelsmithError(ErrorCodes.USAGE, `--sparsity must be a number in [0, 1], got '${String(values.sparsity)}'`);
      }
      opts.sparsity = v;
    } else if (method !== 'nm') {
      throw new ModelsmithError(ErrorCodes.USAGE, `--method ${method} needs --sparsity S (0..1)`);
    }
    if (isWeightFormat(await detectFile(input))) {
      if (method === 'global') throw new ModelsmithError(ErrorCodes.USAGE, '--method global needs a whole ONNX model; weight containers take magnitude or nm');
      return runWeights('prune', input, output, values, out, weightsPrunePass(values, method as 'magnitude' | 'nm', opts.sparsity, opts.n ?? 2, opts.m ?? 4));
    }
    for (const k of Object.keys(CONTAINER_OPTIONS)) {
      if (values[k] !== undefined) throw new ModelsmithError(ErrorCodes.USAGE, `--${k} applies to weight containers, not ONNX models`);
    }
    if (values['include-1d']) opts.includeOneDim = true;
    if (values.exclude !== undefined) opts.exclude = parseExclude(values.exclude as string);
    if (!output.toLowerCase().endsWith('.onnx')) {
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `writing '${output}' is not supported yet: this build writes ONNX (.onnx) only`, { path: output });
    }

    const t0 = performance.now();
    const { model, close } = await openModelFile(input);
    const inputBytes = await modelFileBytes(input, model);
    try {
      out.note(`read ${input} (${formatBytes(model.byteSize)})`);
      const { report } = await pruneWeights(model, opts);
      const stats = await saveOnnxFile(model, output, { inputs: [input], ...syncOpt(values) });
      const outputBytes = stats.modelBytes + (stats.externalBytes ?? 0);
      const seconds = (performance.now() - t0) / 1000;
      const ratio = inputBytes > 0 ? outputBytes / inputBytes : 1;
      const t = report.totals;
      const how = method === 'nm' ? `${report.options.n}:${report.options.m} along the input axis` : `${method}, target sparsity ${report.options.sparsity}`;
      out.say(`pruned ${t.tensors} weight(s) (${how}), skipped ${report.skipped.length}`);
      out.say(`zeros: ${t.zerosBefore} → ${t.zerosAfter} of ${t.numel} weights (sparsity ${(t.sparsity * 100).toFixed(2)}%)`);
      out.say(`file: ${formatBytes(inputBytes)} → ${formatBytes(outputBytes)} (${(ratio * 100).toFixed(1)}%; dense storage, zeros are not removed) in ${seconds.toFixed(2)} s → ${stats.files.join(' + ')}`);
      if (report.pruned.length) {
        const rows = [['weight', 'op', 'shape', 'zeros before', 'zeros after', 'sparsity']];
        for (const p of report.pruned) {
          rows.push([p.name, p.op, `[${p.shape.join(',')}]`, String(p.zerosBefore), String(p.zerosAfter), `${(p.sparsity * 100).toFixed(2)}%`]);
        }
        out.say(...table(rows));
      }
      if (report.skipped.length) {
        out.say('skipped:', ...report.skipped.map((s) => `  ${s.name} (${s.op}): ${s.reason}`));
      }
      return {
        ok: true, verb: 'prune', method, input, output, files: stats.files,
        inputBytes, outputBytes, ratio, seconds,
        ...report,
      };
    } finally {
      await close();
    }
  },
};


/** `--method channel`: structured pruning (compress/prune-structured.ts). */
async function runChannel(input: string, output: string, values: Record<string, unknown>, out: Out): Promise<Record<string, unknown>> {
  if (values.nm !== undefined) throw new ModelsmithError(ErrorCodes.USAGE, '--nm only applies to --method nm, not channel');
  if (values['include-1d']) throw new ModelsmithError(ErrorCodes.USAGE, '--include-1d only applies to unstructured methods, not channel');
  if (values.sparsity === undefined) throw new ModelsmithError(ErrorCodes.USAGE, '--method channel needs --sparsity S (fraction of output channels to remove, 0..1)');
  const s = String(values.sparsity).trim();
  const ratio = s === '' ? NaN : Number(s);
  if (!Number.isFinite(ratio) || ratio < 0 || ratio > 1) {
    throw new ModelsmithError(ErrorCodes.USAGE, `--sparsity must be a number in [0, 1], got '${String(values.sparsity)}'`);
  }
  const opts: PruneChannelsOptions = { ratio };
  if (values.exclude !== undefined) opts.exclude = parseExclude(values.exclude as string);
  if (!output.toLowerCase().endsWith('.onnx')) {
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `writing '${output}' is not supported yet: this build writes ONNX (.onnx) only`, { path: output });
  }

  const t0 = performance.now();
  const { model, close } = await openModelFile(input);
  const inputBytes = await modelFileBytes(input, model);
  try {
    out.note(`read ${input} (${formatBytes(model.byteSize)})`);
    const { report, diagnostics } = pruneChannels(model, opts);
    const stats = await saveOnnxFile(model, output, { inputs: [input], ...syncOpt(values) });
    const outputBytes = stats.modelBytes + (stats.externalBytes ?? 0);
    const seconds = (performance.now() - t0) / 1000;
    const ratioOut = inputBytes > 0 ? outputBytes / inputBytes : 1;
    const t = report.totals;
    out.say(`pruned ${t.layers} layer(s) (${ratio} of output channels, L1 ranking), skipped ${t.skipped}`);
    out.say(`channels: ${t.channelsBefore} → ${t.channelsAfter} in the pruned layers`);
    out.say(`tensor bytes: ${formatBytes(report.size.before.total)} → ${formatBytes(report.size.after.total)} (${(report.size.ratio * 100).toFixed(1)}%)`);
    out.say(`file: ${formatBytes(inputBytes)} → ${formatBytes(outputBytes)} (${(ratioOut * 100).toFixed(1)}%) in ${seconds.toFixed(2)} s → ${stats.files.join(' + ')}`);
    if (report.layers.length) {
      const rows = [['layer', 'op', 'weight', 'channels before', 'after']];
      for (const l of report.layers) rows.push([l.name, l.op, l.weight, String(l.channelsBefore), String(l.channelsAfter)]);
      out.say(...table(rows));
    }
    // Depthwise/grouped Convs are listed in the JSON report; in text they would bury the real refusals.
    const grouped = report.skipped.filter((k) => k.code === RefusalCodes.GROUPED_CONV);
    const refused = report.skipped.filter((k) => k.code !== RefusalCodes.GROUPED_CONV);
    if (refused.length) out.say('skipped:', ...refused.map((k) => `  ${k.name} (${k.op}) [${k.code}]: ${k.reason}`));
    if (grouped.length) out.say(`${grouped.length} grouped/depthwise Conv(s) are not pruned on their own (a depthwise Conv shrinks with the layer feeding it)`);
    return {
      ok: true, verb: 'prune', method: 'channel', input, output, files: stats.files,
      inputBytes, outputBytes, ratio: ratioOut, seconds,
      ...report, diagnostics,
    };
  } finally {
    await close();
  }
}
