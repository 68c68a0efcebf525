import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { openModelFile, saveOnnxFile } from '../../platform/open.js';
import { formatBytes } from '../output.js';
import type { Command } from './index.js';

export const convertCommand: Command = {
  name: 'convert',
  summary: 'rewrite a model in another container (today: ONNX → ONNX, optionally with external data)',
  help: `usage: modelsmith convert <in.onnx> -o <out.onnx> [--external-data] [--threshold BYTES] [--json]
       modelsmith convert <in.onnx> <out.onnx> ...

Reads the model, checks every tensor, and writes it again. Large tensor payloads are streamed, so
the output never needs one giant in-memory message.

options:
  -o, --output PATH     output file (or give it as the second argument)
  --external-data       move tensors of at least --threshold bytes to <out>.data (page-aligned offsets),
                        the way onnx.save_model(save_as_external_data=True) does; needed above 2 GiB
  --location NAME       file name for the external data (default: <out file name>.data)
  --threshold BYTES     size from which a tensor goes external (default 1024)
  --json                one JSON report on stdout

The output is written to a temporary file and renamed, so a failure leaves nothing behind, and the
input is never overwritten.

examples:
  modelsmith convert model.onnx -o model.ext.onnx --external-data
  modelsmith convert model.onnx copy.onnx --json`,
  options: {
    'external-data': { type: 'boolean' },
    location: { type: 'string' },
    threshold: { type: 'string' },
  },
  async run(positionals, values, out) {
    const input = positionals[0];
    const output = (values.output as string | undefined) ?? positionals[1];
    if (!input || !output || positionals.length > (values.output ? 1 : 2)) {
      throw new ModelsmithError(ErrorCodes.USAGE, 'convert needs one input and one output (modelsmith convert in.onnx -o out.onnx)');
    }
    if (!output.toLowerCase().endsWith('.onnx')) {
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `writing '${output}' is not supported yet: this build writes ONNX (.onnx) only`, { path: output });
    }
    const threshold = values.threshold === undefined ? undefined : parseThreshold(values.threshold as string);
    const t0 = performance.now();
    const { model, close } = await openModelFile(input);
    try {
      out.note(`read ${input} (${formatBytes(model.byteSize)})`);
      const externalData = values['external-data'] || values.location !== undefined
        ? { ...(values.location ? { location: values.location as string } : {}), ...(threshold !== undefined ? { threshold } : {}) }
        : undefined;
      const stats = await saveOnnxFile(model, output, { inputs: [input], ...(externalData ? { externalData } : {}) });
      const seconds = (performance.now() - t0) / 1000;
      out.say(`wrote ${stats.files.join(' + ')}: model ${formatBytes(stats.modelBytes)}` +
        (stats.externalTensors ? `, ${stats.externalTensors} tensors in external data (${formatBytes(stats.externalBytes)})` : '') +
        (stats.inlinedTensors ? `, ${stats.inlinedTensors} external tensors inlined` : '') + ` in ${seconds.toFixed(2)} s`);
      return { ok: true, verb: 'convert', input, output, ...stats, seconds, diagnostics: model.diagnostics };
    } finally {
      await close();
    }
  },
};

function parseThreshold(s: string): number {
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < 0) throw new ModelsmithError(ErrorCodes.USAGE, `--threshold must be a byte count, got '${s}'`);
  return n;
}
