/**
 * TensorFlow in the CLI: `inspect` for SavedModel folders (signatures, variables with small values,
 * op histogram, Keras layers) and frozen GraphDef .pb files; ONNX → SavedModel conversion.
 */
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import { toBinary } from '@bufbuild/protobuf';
import { onnxToTf, writeOnnxAsSavedModel, type OnnxToTfReport } from '../convert/onnx-tf/index.js';
import { GraphDefSchema } from '../formats/savedmodel/gen/tensorflow/graph_pb.js';
import { openModelFile } from '../platform/open.js';
import { readGraphDef, readSavedModel, summarizeGraphDef, summarizeSavedModel, type SavedModelSummary } from '../formats/savedmodel/index.js';
import type { GraphSummary } from '../formats/savedmodel/summary.js';
import { AtomicFileSink, FileSource, siblingResolver } from '../platform/node.js';
import { formatBytes, table, type Out } from './output.js';

export async function inspectSavedModel(dir: string, out: Out): Promise<Record<string, unknown>> {
  const opened: FileSource[] = [];
  try {
    const file = await readSavedModel(siblingResolver(join(dir, 'saved_model.pb'), opened), { path: dir });
    const s = await summarizeSavedModel(file);
    out.say(...renderSavedModel(s));
    return { ok: true, verb: 'inspect', ...s };
  } finally {
    await Promise.all(opened.map((f) => f.close().catch(() => undefined)));
  }
}

export async function inspectGraphDef(path: string, out: Out): Promise<Record<string, unknown>> {
  const src = await FileSource.open(path);
  try {
    const s = summarizeGraphDef(await readGraphDef(src, { path }));
    out.say(`${path}: TensorFlow GraphDef (frozen graph)`, ...renderGraph(s.graph));
    return { ok: true, verb: 'inspect', ...s };
  } finally {
    await src.close();
  }
}

function renderSavedModel(s: SavedModelSummary): string[] {
  const lines = [`${s.path}: TensorFlow SavedModel, tags [${s.tags.join(', ')}]`];
  for (const m of s.metaGraphs) lines.push(`  meta graph [${m.tags.join(', ')}]: TF ${m.tensorflowVersion || '?'} (${m.style}), ${m.nodes} nodes, ${m.functions} functions`);
  lines.push('', 'signatures:');
  for (const sig of s.signatures) {
    lines.push(`  ${sig.key} (${sig.method})`);
    const dims = (shape: number[] | null) => (shape ? `[${shape.join(',')}]` : '[?]');
    for (const t of sig.inputs) lines.push(`    in  ${t.key}: ${t.dtype}${dims(t.shape)}  ← ${t.name}`);
    for (const t of sig.outputs) lines.push(`    out ${t.key}: ${t.dtype}${dims(t.shape)}  → ${t.name}`);
  }
  lines.push('', `variables: ${s.variables.length}, ${formatBytes(s.variableBytes)}`);
  lines.push(...table(s.variables.slice(0, 40).map((v) => ['  ' + v.name, `${v.dtype}[${v.shape.join(',')}]`, formatBytes(v.bytes), v.values ? `= ${JSON.stringify(v.values)}` : ''])));
  if (s.variables.length > 40) lines.push(`  … ${s.variables.length - 40} more (--json lists all)`);
  lines.push('', ...renderGraph(s.graph));
  if (s.keras) lines.push('', `keras: ${JSON.stringify(s.keras).slice(0, 200)}`);
  if (s.assets.length) lines.push('', 'assets:', ...s.assets.map((a) => `  ${JSON.stringify(a)}`));
  if (s.diagnostics.length) lines.push('', 'diagnostics:', ...s.diagnostics.map((d) => `  ${d.level} ${d.code}: ${d.message}`));
  return lines;
}

function renderGraph(g: GraphSummary): string[] {
  const ops = Object.entries(g.ops).sort((a, b) => b[1] - a[1]);
  return [
    `graph: ${g.nodeCount} nodes, ${g.functionCount} functions, ${g.constCount} Const (${formatBytes(g.constBytes)})`,
    ...g.placeholders.map((p) => `  placeholder ${p.name}: ${p.dtype}${p.shape ? `[${p.shape.join(',')}]` : '[?]'}`),
    `  ops: ${ops.map(([k, v]) => `${k}×${v}`).join(', ')}`,
  ];
}

/**
 * `convert model.onnx out_dir --to savedmodel`: the SavedModel is written into a temporary sibling
 * folder and renamed into place, so a failure leaves nothing; an existing output folder is refused.
 */
export async function convertOnnxToSavedModel(input: string, outDir: string, opts: { nhwcIo: boolean; constants: boolean; sync?: boolean }, out: Out): Promise<Record<string, unknown>> {
  if (await stat(outDir).catch(() => undefined)) {
    throw new ModelsmithError(ErrorCodes.IO, 'output folder exists; give a new path (a SavedModel is a folder)', { path: outDir });
  }
  const t0 = performance.now();
  const { model, close } = await openModelFile(input);
  const tmp = `${outDir.replace(/[\\/]+$/, '')}.tmp-${process.pid}-${Date.now()}`;
  const sinks: AtomicFileSink[] = [];
  try {
    await mkdir(join(tmp, 'variables'), { recursive: true });
    const r = await writeOnnxAsSavedModel(model, async (rel) => {
      const sink = await AtomicFileSink.create(join(tmp, rel), [], { sync: opts.sync ?? true });
      sinks.push(sink);
      return sink;
    }, { nhwcIo: opts.nhwcIo, constants: opts.constants });
    for (const s of sinks) await s.commit();
    await rename(tmp, outDir);
    const seconds = (performance.now() - t0) / 1000;
    const rep = r.report;
    out.say(`converted ${input} → SavedModel ${outDir} in ${seconds.toFixed(2)} s`,
      ...reportLines(rep),
      `  signature serving_default: ${Object.keys(r.signature.inputs).join(', ')} → ${Object.keys(r.signature.outputs).join(', ')}`);
    return { ok: true, verb: 'convert', input, output: outDir, to: 'savedmodel', seconds, files: r.files, report: rep };
  } catch (e) {
    await Promise.all(sinks.map((s) => s.abort().catch(() => undefined)));
    await rm(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    await close();
  }
}

/** The conversion report as text: ops, layout transposes, and I/O whose TF form differs from ONNX's. */
function reportLines(rep: OnnxToTfReport): string[] {
  return [
    `  ops mapped: ${Object.entries(rep.opsMapped).map(([k, v]) => `${k}×${v}`).join(', ')}`,
    `  transposes: ${rep.transposesInserted} inserted, ${rep.transposesRemoved} cancelled, ${rep.transposesLeft} left`,
    ...Object.entries(rep.ioForms).map(([k, form]) => `  '${k}': ${form}`),
  ];
}

/**
 * `convert model.onnx -o model.pb --to graphdef`: the converted graph with every weight as a Const
 * (a frozen GraphDef), the form OpenCV's `readNetFromTensorflow` and TF1 tools load. Written through
 * an atomic sink: a failure leaves nothing.
 */
export async function convertOnnxToGraphDef(input: string, output: string, opts: { nhwcIo: boolean; sync?: boolean }, out: Out): Promise<Record<string, unknown>> {
  const t0 = performance.now();
  const { model, close } = await openModelFile(input);
  let sink: AtomicFileSink | undefined;
  try {
    const r = await onnxToTf(model, { nhwcIo: opts.nhwcIo, constants: true });
    const bytes = toBinary(GraphDefSchema, r.graph);
    sink = await AtomicFileSink.create(output, [input], { sync: opts.sync ?? true });
    await sink.write(bytes);
    await sink.commit();
    const seconds = (performance.now() - t0) / 1000;
    const rep = r.report;
    const io = (side: Record<string, { name: string }>) => Object.entries(side).map(([k, t]) => `${k} (${t.name})`).join(', ');
    out.say(`converted ${input} → frozen GraphDef ${output} (${formatBytes(bytes.byteLength)}) in ${seconds.toFixed(2)} s`,
      ...reportLines(rep),
      `  feeds: ${io(r.signature.inputs)}; fetches: ${io(r.signature.outputs)}`);
    return { ok: true, verb: 'convert', input, output, to: 'graphdef', seconds, bytes: bytes.byteLength, signature: r.signature, report: rep };
  } catch (e) {
    await sink?.abort().catch(() => undefined);
    throw e;
  } finally {
    await close();
  }
}
