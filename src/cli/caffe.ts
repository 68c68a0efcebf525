/**
 * Caffe in the CLI: `inspect` of a .prototxt or .caffemodel (layers, blobs, parameters), and
 * `convert deploy.prototxt --weights model.caffemodel -o out.onnx` (or the pair as two inputs).
 */
import { readFile } from 'node:fs/promises';
import { ErrorCodes, ModelsmithError, type Diagnostic } from '../core/errors.js';
import { caffeToOnnx } from '../convert/caffe-onnx/index.js';
import { parseCaffePrototxt, readCaffemodel, summarizeCaffe, type CaffeSummary, type NetParameter } from '../formats/caffe/index.js';
import { onnxModel } from '../formats/onnx/read.js';
import { saveOnnxFile } from '../platform/open.js';
import { FileSource } from '../platform/node.js';
import { formatBytes, table, type Out } from './output.js';

async function readPrototxt(path: string, diagnostics: Diagnostic[]): Promise<NetParameter> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ModelsmithError(ErrorCodes.IO, `cannot read: ${(e as Error).message}`, { path, cause: e });
  }
  return parseCaffePrototxt(text, { path, diagnostics });
}

async function readModel(path: string, diagnostics: Diagnostic[]): Promise<NetParameter> {
  const src = await FileSource.open(path);
  try {
    return await readCaffemodel(src, { path, diagnostics });
  } finally {
    await src.close();
  }
}

export async function inspectCaffe(path: string, kind: 'caffe-prototxt' | 'caffemodel', out: Out): Promise<Record<string, unknown>> {
  const diagnostics: Diagnostic[] = [];
  const net = kind === 'caffe-prototxt' ? await readPrototxt(path, diagnostics) : await readModel(path, diagnostics);
  const s = summarizeCaffe(net);
  s.diagnostics.push(...diagnostics);
  out.say(...renderCaffe(path, kind, s));
  return { ok: true, verb: 'inspect', path, ...s, format: kind };
}

function renderCaffe(path: string, kind: string, s: CaffeSummary): string[] {
  const lines = [`${path}: Caffe ${kind === 'caffemodel' ? 'weights (.caffemodel)' : 'net (.prototxt)'}${s.name ? ` '${s.name}'` : ''}, ${s.layerCount} layers, ${s.blobCount} blobs, ${s.parameterCount.toLocaleString('en-US')} parameters`];
  for (const i of s.inputs) lines.push(`  input ${i.name}${i.shape ? `: [${i.shape.join(',')}]` : ''}`);
  lines.push('  types: ' + Object.entries(s.typeCounts).map(([k, v]) => `${k}×${v}`).join(', '), '', 'layers:');
  const rows = s.layers.slice(0, 60).map((l) => ['  ' + l.name, l.type, `${l.bottoms.join(',')} → ${l.tops.join(',')}`, l.blobs.map((b) => `[${b.shape.join(',')}]`).join(' ')]);
  lines.push(...table(rows));
  if (s.layers.length > 60) lines.push(`  … ${s.layers.length - 60} more (--json lists all)`);
  if (s.diagnostics.length) lines.push('', 'diagnostics:', ...s.diagnostics.map((d) => `  ${d.level} ${d.code}: ${d.message}`));
  return lines;
}

export async function convertCaffe(deploy: string, weights: string | undefined, output: string, opset: number | undefined, out: Out, save: { sync?: boolean } = {}): Promise<Record<string, unknown>> {
  if (!output.toLowerCase().endsWith('.onnx')) {
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `Caffe nets convert to ONNX (.onnx), not '${output}'`, { path: output });
  }
  const t0 = performance.now();
  const diagnostics: Diagnostic[] = [];
  const net = await readPrototxt(deploy, diagnostics);
  const w = weights ? await readModel(weights, diagnostics) : undefined;
  if (!w) out.note('no --weights given: layers that need weights will be refused');
  const r = caffeToOnnx(net, w, { path: deploy, ...(opset !== undefined ? { opset } : {}) });
  const model = onnxModel(r.model, { path: output });
  const stats = await saveOnnxFile(model, output, { inputs: [deploy, ...(weights ? [weights] : [])], ...save });
  const seconds = (performance.now() - t0) / 1000;
  const rep = r.report;
  out.say(`converted ${rep.layers} Caffe layers → ${rep.nodes} ONNX nodes, ${rep.initializers} initializers (${rep.parameters.toLocaleString('en-US')} parameters)` +
    (rep.fusedBatchNormScale ? `, ${rep.fusedBatchNormScale} BatchNorm+Scale fused` : ''));
  for (const i of rep.inputs) out.say(`  input  ${i.name}: [${i.shape.join(',')}]`);
  for (const o of rep.outputs) out.say(`  output ${o.name}: [${o.shape.join(',')}] (layer ${o.layer})`);
  if (rep.unusedWeightLayers.length) out.say(`  weights not used by the deploy net (training-only layers): ${rep.unusedWeightLayers.join(', ')}`);
  out.say(`wrote ${stats.files.join(' + ')}: ${formatBytes(stats.modelBytes)} in ${seconds.toFixed(2)} s`);
  return { ok: true, verb: 'convert', input: deploy, weights, output, ...stats, seconds, report: rep, diagnostics: [...diagnostics, ...r.diagnostics] };
}
