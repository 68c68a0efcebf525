import { ErrorCodes, ModelsmithError } from '../../core/errors.js';
import { summarizeOnnx, type InspectReport } from '../../formats/onnx/summary.js';
import { openModelFile } from '../../platform/open.js';
import { formatBytes, table } from '../output.js';
import type { Command } from './index.js';
import { detectFile, inspectWeights, isWeightFormat } from '../weights.js';
import { inspectGraphDef, inspectSavedModel } from '../tf.js';
import { inspectCaffe } from '../caffe.js';

export const inspectCommand: Command = {
  name: 'inspect',
  summary: 'show what a model file holds: format, producer, opsets, I/O, ops, parameters, largest tensors',
  help: `usage: modelsmith inspect <model> [--key K] [--json]

ONNX models: reads the whole model (every tensor's size is checked against its dtype and shape) and prints:
format, producer, IR version and opsets, inputs/outputs with shapes (symbolic dims by name),
an op histogram (ops inside If/Loop/Scan bodies and functions counted separately), parameter count,
bytes by dtype, the 10 largest tensors, external data files, and anything unusual as diagnostics.

Weight containers (PyTorch .pt/.pth/.bin, .safetensors, *.safetensors.index.json, TF variables.index,
.caffemodel): reads only the index/header, never tensor data: every tensor's name, dtype, shape and
size, bytes per dtype, tied weights, metadata. PyTorch pickles are interpreted by an allow-list and
never executed; anything else they reference is listed as an inert global.

options:
  --key K     PyTorch checkpoints: which nested state_dict to list (e.g. model_state_dict)
  --json      one JSON object on stdout (fields as in the human report)

examples:
  modelsmith inspect model.onnx
  modelsmith inspect checkpoint.pt --key model_state_dict
  modelsmith inspect model.onnx --json | jq .ops`,
  options: { key: { type: 'string' } },
  async run(positionals, values, out) {
    if (positionals.length !== 1) throw new ModelsmithError(ErrorCodes.USAGE, 'inspect takes exactly one model file');
    const path = positionals[0]!;
    const format = await detectFile(path);
    if (format === 'caffe-prototxt' || format === 'caffemodel') return inspectCaffe(path, format, out);
    if (isWeightFormat(format)) return inspectWeights(path, values, out);
    if (format === 'savedmodel') return inspectSavedModel(path.replace(/[\\/]saved_model\.pb$/, ''), out);
    if (format === 'tf-graphdef') return inspectGraphDef(path, out);
    const { model, close } = await openModelFile(positionals[0]!);
    try {
      const report = summarizeOnnx(model);
      for (const line of renderInspect(report)) out.say(line);
      return { ok: true, verb: 'inspect', ...report };
    } finally {
      await close();
    }
  },
};

export function renderInspect(r: InspectReport): string[] {
  const lines: string[] = [];
  lines.push(`${r.path}: ONNX, ${formatBytes(r.fileBytes)}`);
  lines.push(`  producer   ${r.producer.name || '(none)'} ${r.producer.version}`.trimEnd());
  lines.push(`  IR         ${r.irVersion}   opsets: ${r.opsetImports.map((o) => `${o.domain || 'ai.onnx'} ${o.version}`).join(', ') || '(none)'}`);
  if (r.graphName) lines.push(`  graph      ${r.graphName}`);
  lines.push(`  nodes      ${r.nodes.total} (${r.nodes.mainGraph} main graph, ${r.nodes.subgraphs} in ${r.subgraphCount} subgraphs, ${r.nodes.functions} in functions)`);
  lines.push(`  parameters ${r.parameters.toLocaleString('en-US')} in ${r.tensorCount} tensors`);
  lines.push('', 'inputs:');
  for (const v of r.inputs) lines.push(`  ${v.name}: ${v.type}`);
  if (r.initializerInputs) lines.push(`  (+${r.initializerInputs} initializers also listed as inputs)`);
  lines.push('outputs:');
  for (const v of r.outputs) lines.push(`  ${v.name}: ${v.type}`);
  if (r.ops.length) {
    lines.push('', 'ops:');
    const rows = [...r.ops].sort((a, b) => b.count + b.nestedCount - (a.count + a.nestedCount));
    lines.push(...table(rows.map((o) => ['  ' + o.op, String(o.count), o.nestedCount ? `(+${o.nestedCount} nested)` : ''])));
  }
  const dtypes = Object.entries(r.bytesByDtype);
  if (dtypes.length) {
    lines.push('', 'bytes by dtype:');
    lines.push(...table(dtypes.map(([d, v]) => ['  ' + d, `${v.tensors} tensors`, formatBytes(v.bytes)])));
  }
  if (r.largestTensors.length) {
    lines.push('', 'largest tensors:');
    lines.push(...table(r.largestTensors.map((t) => ['  ' + t.name, `${t.dtype}[${t.shape.join(',')}]`, formatBytes(t.bytes), t.storage])));
  }
  if (r.externalData.length) {
    lines.push('', 'external data:');
    for (const e of r.externalData) lines.push(`  ${e.location}: ${e.tensors} tensors, ${formatBytes(e.bytes)}`);
  }
  if (r.diagnostics.length) {
    lines.push('', 'diagnostics:');
    for (const d of r.diagnostics) lines.push(`  ${d.level} ${d.code}: ${d.message}`);
  }
  return lines;
}
