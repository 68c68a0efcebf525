/**
 * Compress a model file with modelsmith under Deno, using Deno's file API.
 *
 *   deno run --allow-read --allow-write examples/deno/compress.ts <in> <out> [int8|fp16]
 *
 * ONNX input: weight-only int8 quantization (per channel, symmetric; QDQ in the graph).
 * safetensors input: int8 (weight-set quantization, scales beside each weight) or fp16 cast.
 * Prints a JSON report on stdout; errors are one line on stderr with the modelsmith error code.
 */
import * as ms from 'modelsmith';
import { DenoAtomicFileSink, DenoFileSource } from './deno-file.ts';

export async function compressFile(input: string, output: string, mode: 'int8' | 'fp16' = 'int8'): Promise<Record<string, unknown>> {
  const src = await DenoFileSource.open(input);
  try {
    const format = ms.detectFormat(await src.read(0, Math.min(src.size, 64)), input)?.name;
    const sink = await DenoAtomicFileSink.create(output, [input]);
    try {
      let report: unknown;
      if (format === 'onnx') {
        if (mode !== 'int8') throw new ms.ModelsmithError(ms.ErrorCodes.USAGE, `mode '${mode}' is not offered for ONNX in this example (int8)`, { path: input });
        const model = await ms.readOnnx(src, { path: input });
        report = (await ms.quantizeWeights(model, { dtype: 'int8', perChannel: true, symmetric: true })).report;
        await ms.writeOnnx(model, sink);
      } else if (format === 'safetensors') {
        const set = await ms.readSafetensors(src, { path: input });
        const r = mode === 'fp16' ? await ms.castWeightSet(set, { to: 'float16' }) : await ms.quantizeWeightSet(set, { scheme: 'int8' });
        report = r.report;
        await ms.writeSafetensors(r.set, sink, { path: output });
      } else {
        throw new ms.ModelsmithError(ms.ErrorCodes.UNSUPPORTED, `this example handles ONNX and safetensors, not ${format ?? 'this file'}`, { path: input });
      }
      await sink.commit();
      return { input, output, format, mode, bytesIn: src.size, bytesOut: sink.position, report };
    } catch (e) {
      await sink.discard();
      throw e;
    }
  } finally {
    src.close();
  }
}

if (import.meta.main) {
  const [input, output, mode = 'int8'] = Deno.args;
  if (!input || !output || (mode !== 'int8' && mode !== 'fp16')) {
    console.error('usage: deno run --allow-read --allow-write compress.ts <in> <out> [int8|fp16]');
    Deno.exit(2);
  }
  try {
    const r = await compressFile(input, output, mode);
    console.log(JSON.stringify({ input: r.input, output: r.output, format: r.format, mode: r.mode, bytesIn: r.bytesIn, bytesOut: r.bytesOut }));
  } catch (e) {
    const err = e as { code?: string; message?: string };
    console.error(err.code ? err.message : String(e));
    Deno.exit(1);
  }
}
