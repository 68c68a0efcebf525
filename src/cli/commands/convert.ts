import { readFile } from 'node:fs/promises';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { replaceOnnxInitializers } from '../../formats/onnx/weights.js';
import { parseRecipe, runRecipeOnnx, runRecipeWeights, type Recipe } from '../../compress/recipe.js';
import { evaluate } from '../../eval/compare.js';
import { externalFiles, openModelFile, saveOnnxFile } from '../../platform/open.js';
import { openWeights, weightOutputFormat } from '../../platform/weights-io.js';
import { formatBytes } from '../output.js';
import { detectFile, isWeightFormat, runWeights, syncOpt } from '../weights.js';
import { convertCaffe } from '../caffe.js';
import { convertOnnxToGraphDef, convertOnnxToSavedModel } from '../tf.js';
import { parseTfTorchMap, savedModelToStateDict } from '../../convert/tf-pytorch/index.js';
import type { SavedModelFile } from '../../formats/savedmodel/index.js';
import type { Command } from './index.js';

export const convertCommand: Command = {
  name: 'convert',
  summary: 'rewrite a model in another container: ONNX (+external data), .pt, .safetensors (sharded)',
  help: `usage: modelsmith convert <in> -o <out> [options]
       modelsmith convert <in> <out> [options]

What is converted is decided by the input's format and the output's extension:

  ONNX → .onnx             rewrite (optionally moving big tensors to external data); with --weights W,
                           the initializers are replaced by the tensors of W (a .pt/.safetensors state_dict)
  any → .safetensors       the tensors of a PyTorch checkpoint, safetensors file(s), TF variables.index,
  ONNX → SavedModel        with --to savedmodel (output is a new folder): the graph as TF raw ops (op handler
                           registry; conv/pool in NHWC behind transposes that cancel where they meet),
                           initializers as variables (or constants with --constants), serving_default with
                           the ONNX input/output names; I/O stays in the ONNX layout unless --nhwc-io;
                           unsupported ops are listed with counts and nothing is written
  ONNX → frozen .pb        with --to graphdef: the same graph with the weights as Const nodes, one file —
                           what OpenCV's readNetFromTensorflow loads (give --nhwc-io for OpenCV)
  Caffe → .onnx            deploy.prototxt with --weights model.caffemodel (or the two files as inputs):
                           layer registry (Convolution, Pooling, InnerProduct, BatchNorm+Scale, Eltwise,
                           Concat, Slice, PReLU, LRN, Softmax, …); unsupported layers are listed, never dropped
  SavedModel → .pt / .safetensors   a TF/Keras SavedModel folder's weights as a PyTorch state_dict: Keras
                           layouts turned into torch's (Dense transposed, Conv HWIO→OIHW, depthwise,
                           BatchNorm → running stats, LSTM/GRU gate order, Flatten row order), named
                           <layer>.weight/.bias, or by --template t.pt (matched in order by kind and
                           shape) or --map map.json; optimizer state left out; --tf-layout keeps TF's
                           names and layouts instead
  any → .pt / .pth / .bin  .caffemodel, or an ONNX model's initializers, written as safetensors (one file,
                           or shards with --shard-size / an output ending in .safetensors.index.json) or as
                           a zip .pt that torch.load(weights_only=True) accepts (tied weights stay tied)

Every tensor is read, checked and written one at a time, so memory stays near the largest tensor.
PyTorch pickles are never executed: only an allow-list of torch globals is interpreted.

options:
  -o, --output PATH      output file (or give it as the second argument)
  --key K                PyTorch checkpoints: the nested state_dict to take (e.g. model_state_dict)
  --shard-size SIZE      safetensors output: shard size, e.g. 2GB, 500MB, 1.5GiB (writes
                         <name>-00001-of-0000N.safetensors + <name>.safetensors.index.json)
  --allow-unknown-globals  PyTorch: write the tensors even if the pickle references objects outside
                         the allow-list (they are never run; by default this stops the conversion)
  --to savedmodel        ONNX → TF SavedModel folder (see above); --nhwc-io, --constants
  --to graphdef          ONNX → frozen TF GraphDef .pb (see above); --nhwc-io
  --template FILE        SavedModel → PyTorch: a .pt/.safetensors whose names and shapes the result must have
  --tf-layout            SavedModel: write the variables as TF stores them (no PyTorch mapping)
  --weights FILE         ONNX output: replace initializers by name with the tensors of FILE;
                         Caffe input: the .caffemodel that goes with the .prototxt
  --opset N              Caffe → ONNX: the ai.onnx opset to write (13..17, default 13)
  --map FILE             with --weights: JSON object {"tensor name in FILE": "initializer name"};
                         SavedModel → PyTorch: {"TF variable name or path": "torch key"}
  --partial              with --weights: allow tensors that match no initializer (they are reported)
  --external-data        ONNX output: move tensors of at least --threshold bytes to <out>.data
                         (page-aligned offsets), as onnx.save_model(save_as_external_data=True); needed above 2 GiB
  --location NAME        file name for the external data (default: <out file name>.data)
  --threshold BYTES      size from which a tensor goes external (default 1024)
  --recipe FILE          run the compression passes of a recipe (JSON) on the way, e.g.
                         {"steps": [{"pass": "prune", "method": "nm"},
                                    {"pass": "quantize", "method": "weight", "perChannel": true}],
                          "eval": {"samples": 8}}
                         steps: quantize (method weight|dynamic|int4, dtype, perChannel, symmetric,
                         blockSize, reduceRange, minElements, exclude), cast (to, keepIoTypes, blockOps),
                         prune (method magnitude|global|nm, sparsity, n, m, includeOneDim, exclude);
                         options mean what the same-named flags of quantize/cast/prune mean. "eval"
                         (ONNX) compares the result with the input in onnxruntime afterwards.
  --json                 one JSON report on stdout

Outputs are written to temporary files and renamed, so a failure leaves nothing behind, and an input
is never overwritten.

examples:
  modelsmith convert model.onnx -o model.ext.onnx --external-data
  modelsmith convert checkpoint.pt -o model.safetensors --key model_state_dict
  modelsmith convert model.safetensors -o model.pt
  modelsmith convert big.pt -o out/model.safetensors --shard-size 2GB
  modelsmith convert model.onnx -o weights.safetensors          # export initializers
  modelsmith convert model.onnx -o tuned.onnx --weights tuned.pt --map names.json
  modelsmith convert model.onnx -o small.onnx --recipe recipe.json --json
  modelsmith convert deploy.prototxt --weights net.caffemodel -o net.onnx
  modelsmith convert saved_model_dir -o model.pt --template torch_model.pt
  modelsmith convert model.onnx out_savedmodel --to savedmodel
  modelsmith convert model.onnx -o model.pb --to graphdef --nhwc-io`,
  options: {
    'external-data': { type: 'boolean' },
    location: { type: 'string' },
    threshold: { type: 'string' },
    key: { type: 'string' },
    'shard-size': { type: 'string' },
    'allow-unknown-globals': { type: 'boolean' },
    weights: { type: 'string' },
    map: { type: 'string' },
    partial: { type: 'boolean' },
    recipe: { type: 'string' },
    opset: { type: 'string' },
    template: { type: 'string' },
    'tf-layout': { type: 'boolean' },
    to: { type: 'string' },
    'nhwc-io': { type: 'boolean' },
    constants: { type: 'boolean' },
  },
  async run(positionals, values, out) {
    if (positionals[0] && (await detectFile(positionals[0])) === 'caffe-prototxt') {
      return runCaffe(positionals, values, out);
    }
    const input = positionals[0];
    const output = (values.output as string | undefined) ?? positionals[1];
    if (!input || !output || positionals.length > (values.output ? 1 : 2)) {
      throw new ModelsmithError(ErrorCodes.USAGE, 'convert needs one input and one output (modelsmith convert in.onnx -o out.onnx)');
    }
    const inFormat = await detectFile(input);
    if (values.to !== undefined) {
      if (values.to !== 'savedmodel' && values.to !== 'graphdef') throw new ModelsmithError(ErrorCodes.USAGE, `--to takes savedmodel or graphdef (other targets follow from the output's extension), got '${String(values.to)}'`);
      if (inFormat !== 'onnx') throw new ModelsmithError(ErrorCodes.USAGE, `--to ${String(values.to)} converts ONNX models`);
      if (values.to === 'graphdef') {
        if (values.constants) throw new ModelsmithError(ErrorCodes.USAGE, '--constants is implied by --to graphdef (a frozen graph holds its weights as constants)');
        return convertOnnxToGraphDef(input, output, { nhwcIo: Boolean(values['nhwc-io']), ...syncOpt(values) }, out);
      }
      return convertOnnxToSavedModel(input, output, { nhwcIo: Boolean(values['nhwc-io']), constants: Boolean(values.constants), ...syncOpt(values) }, out);
    }
    const recipe = typeof values.recipe === 'string' ? parseRecipe(await readText(values.recipe), values.recipe) : undefined;
    if (weightOutputFormat(output)) {
      if (values.weights !== undefined) throw new ModelsmithError(ErrorCodes.USAGE, '--weights applies to ONNX outputs only');
      if (!isWeightFormat(inFormat) && inFormat !== 'onnx' && inFormat !== 'savedmodel') {
        throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `cannot take weights from ${inFormat ?? 'this file'} yet`, { path: input });
      }
      if (inFormat === 'savedmodel' && !values['tf-layout']) {
        if (recipe) throw new ModelsmithError(ErrorCodes.USAGE, '--recipe runs on the converted state_dict: convert first, then run the recipe on the .pt/.safetensors');
        return convertSavedModelToTorch(input, output, values, out);
      }
      if (values.template !== undefined) throw new ModelsmithError(ErrorCodes.USAGE, '--template applies to SavedModel → PyTorch conversion');
      const pass = recipe
        ? async (set: Parameters<typeof runRecipeWeights>[0]) => {
          const r = await runRecipeWeights(set, recipe);
          return { set: r.set, report: { steps: r.results } };
        }
        : undefined;
      return runWeights('convert', input, output, values, out, pass);
    }
    if (!output.toLowerCase().endsWith('.onnx')) {
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `cannot tell what to write from '${output}': this build writes .onnx, .safetensors, .safetensors.index.json, .pt, .pth, .bin`, { path: output });
    }
    if (isWeightFormat(inFormat)) {
      throw new ModelsmithError(ErrorCodes.USAGE, `${input} holds weights only, not a graph: to put them into an ONNX model use: modelsmith convert model.onnx -o out.onnx --weights ${input}`);
    }
    return convertOnnx(input, output, values, out, recipe);
  },
};

async function convertOnnx(input: string, output: string, values: Record<string, string | boolean | undefined>, out: Parameters<Command['run']>[2], recipe?: Recipe): Promise<Record<string, unknown>> {
  const threshold = values.threshold === undefined ? undefined : parseThreshold(values.threshold as string);
  const t0 = performance.now();
  const { model, close } = await openModelFile(input);
  try {
    out.note(`read ${input} (${formatBytes(model.byteSize)})`);
    let replaced: Record<string, unknown> | undefined;
    if (typeof values.weights === 'string') {
      const map = typeof values.map === 'string' ? await readMap(values.map) : undefined;
      const w = await openWeights(values.weights, typeof values.key === 'string' ? { key: values.key } : {});
      try {
        const r = await replaceOnnxInitializers(model, w.set, { ...(map ? { map } : {}), strict: !values.partial });
        out.say(`replaced ${r.replaced.length} initializers from ${values.weights}` +
          (r.unmatched.length ? `; ${r.unmatched.length} tensors matched nothing` : '') + (r.untouched.length ? `; ${r.untouched.length} initializers kept` : ''));
        replaced = { weights: values.weights, ...r };
      } finally {
        await w.close();
      }
    } else if (values.map !== undefined || values.partial) {
      throw new ModelsmithError(ErrorCodes.USAGE, '--map and --partial go with --weights');
    }
    // Recorded before the passes: they turn external tensors into inline ones.
    const hadExternal = externalFiles(model).length > 0;
    let steps: unknown[] | undefined;
    if (recipe) {
      steps = await runRecipeOnnx(model, recipe, (i, s) => out.note(`step ${i + 1}/${recipe.steps.length}: ${s.pass}${'method' in s ? ' ' + s.method : ''}${'to' in s ? ' ' + s.to : ''}`));
    }
    const wantExternal = values['external-data'] || values.location !== undefined || (recipe && hadExternal);
    const externalData = wantExternal
      ? { ...(values.location ? { location: values.location as string } : {}), ...(threshold !== undefined ? { threshold } : {}) }
      : undefined;
    const inputs = [input, ...(typeof values.weights === 'string' ? [values.weights] : [])];
    const stats = await saveOnnxFile(model, output, { inputs, ...(externalData ? { externalData } : {}), ...syncOpt(values) });
    const seconds = (performance.now() - t0) / 1000;
    out.say(`wrote ${stats.files.join(' + ')}: model ${formatBytes(stats.modelBytes)}` +
      (stats.externalTensors ? `, ${stats.externalTensors} tensors in external data (${formatBytes(stats.externalBytes)})` : '') +
      (stats.inlinedTensors ? `, ${stats.inlinedTensors} external tensors inlined` : '') + ` in ${seconds.toFixed(2)} s`);
    let evaluation: unknown;
    if (recipe?.eval) {
      const ev = await evaluate(input, output, { samples: recipe.eval.samples, ...(recipe.eval.seed !== undefined ? { seed: recipe.eval.seed } : {}) });
      for (const o of ev.outputs) {
        out.say(`eval ${o.name}: max-abs ${o.maxAbs.toExponential(2)}, cosine ${o.cosine.toFixed(5)}, SNR ${Number.isFinite(o.snrDb) ? o.snrDb.toFixed(1) : String(o.snrDb)} dB`);
      }
      evaluation = ev;
    }
    return {
      ok: true, verb: 'convert', input, output, ...stats, seconds, ...(replaced ? { replaced } : {}),
      ...(steps ? { steps } : {}), ...(evaluation ? { eval: evaluation } : {}), diagnostics: model.diagnostics,
    };
  } finally {
    await close();
  }
}

/** SavedModel → PyTorch state_dict (Keras layouts → torch layouts, named automatically, by a template .pt or a map). */
async function convertSavedModelToTorch(input: string, output: string, values: Record<string, string | boolean | undefined>, out: Parameters<Command['run']>[2]): Promise<Record<string, unknown>> {
  const map = typeof values.map === 'string' ? parseTfTorchMap(await readText(values.map), values.map) : undefined;
  const template = typeof values.template === 'string' ? await openWeights(values.template) : undefined;
  try {
    return await runWeights('convert', input, output, values, out, async (_set, opened) => {
      const sm = opened.details.savedModel as SavedModelFile;
      const r = savedModelToStateDict(sm, { ...(template ? { template: template.set } : {}), ...(map ? { map } : {}) });
      return { set: r.set, report: r.report };
    });
  } finally {
    await template?.close();
  }
}

async function runCaffe(positionals: string[], values: Record<string, string | boolean | undefined>, out: Parameters<Command['run']>[2]): Promise<Record<string, unknown>> {
  // deploy.prototxt [model.caffemodel] [out.onnx], with -o and --weights as alternatives.
  const rest = positionals.slice(1);
  let weights = typeof values.weights === 'string' ? values.weights : undefined;
  if (!weights && rest[0] && (await detectFile(rest[0])) === 'caffemodel') weights = rest.shift();
  const output = (values.output as string | undefined) ?? rest.shift();
  if (!output || rest.length) throw new ModelsmithError(ErrorCodes.USAGE, 'usage: modelsmith convert deploy.prototxt --weights model.caffemodel -o out.onnx');
  let opset: number | undefined;
  if (values.opset !== undefined) {
    opset = Number(values.opset);
    if (!Number.isInteger(opset)) throw new ModelsmithError(ErrorCodes.USAGE, `--opset must be an integer, got '${String(values.opset)}'`);
  }
  return convertCaffe(positionals[0]!, weights, output, opset, out, syncOpt(values));
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw new ModelsmithError(ErrorCodes.IO, `cannot read: ${(e as Error).message}`, { path, cause: e });
  }
}

async function readMap(path: string): Promise<Record<string, string>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new ModelsmithError(ErrorCodes.USAGE, `--map ${path}: not a readable JSON file (${(e as Error).message})`, { path });
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed) || Object.values(parsed).some((v) => typeof v !== 'string')) {
    throw new ModelsmithError(ErrorCodes.USAGE, `--map ${path}: expected a JSON object of name → name strings`, { path });
  }
  return parsed as Record<string, string>;
}

function parseThreshold(s: string): number {
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < 0) throw new ModelsmithError(ErrorCodes.USAGE, `--threshold must be a byte count, got '${s}'`);
  return n;
}
