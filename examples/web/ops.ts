/**
 * What the worker runs: open an uploaded File through a BlobSource (Blob.slice, never the whole file
 * at once for weight containers), and apply one operation, writing the result into a Blob. The passes
 * are the library's, with the CLI's defaults, so a page run and a `modelsmith` run give the same bytes.
 */
import { ErrorCodes, ModelsmithError } from '../../dist/core/errors.js';
import { detectFormat, requireReadable, type FormatName } from '../../dist/formats/registry.js';
import { readOnnx, type OnnxModel } from '../../dist/formats/onnx/read.js';
import { writeOnnx } from '../../dist/formats/onnx/write.js';
import { summarizeOnnx } from '../../dist/formats/onnx/summary.js';
import { onnxWeights } from '../../dist/formats/onnx/weights.js';
import type { LazyTensor, WeightSet } from '../../dist/formats/weights.js';
import { summarizeWeights } from '../../dist/formats/weights-summary.js';
import { readSafetensors } from '../../dist/formats/safetensors/read.js';
import { writeSafetensors } from '../../dist/formats/safetensors/write.js';
import { readPytorch } from '../../dist/formats/pytorch/read.js';
import { writePytorch } from '../../dist/formats/pytorch/write.js';
import { caffeWeights, readCaffemodel } from '../../dist/formats/caffe/index.js';
import { quantizeWeights } from '../../dist/compress/quantize/weight.js';
import { quantizeInt4 } from '../../dist/compress/quantize/int4.js';
import { quantizeDynamic } from '../../dist/compress/quantize/dynamic.js';
import { castModel } from '../../dist/compress/cast.js';
import { pruneWeights } from '../../dist/compress/prune.js';
import { tensorBytes } from '../../dist/compress/report.js';
import { quantizeWeightSet, type QuantizedWeight } from '../../dist/compress/weights/quantize.js';
import { castWeightSet } from '../../dist/compress/weights/cast.js';
import { pruneWeightSet, type PrunedWeight } from '../../dist/compress/weights/prune.js';
import type { WeightPassReport } from '../../dist/compress/weights/common.js';
import { BlobSink, BlobSource } from '../../dist/platform/web.js';
import type { ByteSink } from '../../dist/io/source.js';
import type { RunOptions, RunResult, Summary, Table } from './protocol.js';
import { onnxSummary, weightsSummary } from './summary.js';
import { formatBytes, formatDb, formatErr, formatShape } from './format.js';

export type Progress = (phase: string, done: number, total: number) => void;

const WEIGHT_FORMATS: ReadonlySet<FormatName> = new Set<FormatName>(['pytorch-zip', 'pytorch-legacy', 'safetensors', 'caffemodel']);
const MAX_ROWS = 60;

/** The format of an upload, from its first bytes and name; refuses what a single browser file cannot hold. */
export async function detectUpload(file: File): Promise<FormatName> {
  const src = new BlobSource(file, file.name);
  const info = requireReadable(detectFormat(await src.read(0, Math.min(16, src.size)), file.name), file.name);
  if (info.name !== 'onnx' && !WEIGHT_FORMATS.has(info.name)) {
    // Sharded safetensors, TF bundles and SavedModels span several files; one upload cannot resolve them.
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `${info.name} spans several files; the page reads single-file models (ONNX, .safetensors, .pt/.pth/.bin, .caffemodel)`, { path: file.name, format: info.name });
  }
  return info.name;
}

async function openOnnx(file: File): Promise<OnnxModel> {
  // No sibling resolver: external data cannot be reached from one upload, and the reader says so by name.
  return readOnnx(new BlobSource(file, file.name), { path: file.name });
}

interface OpenedWeights {
  set: WeightSet;
  details: { unknownGlobals?: string[]; stateDictKeys?: string[] };
}

async function openWeights(file: File, format: FormatName): Promise<OpenedWeights> {
  const src = new BlobSource(file, file.name);
  switch (format) {
    case 'pytorch-zip':
    case 'pytorch-legacy': {
      const pt = await readPytorch(src, { path: file.name });
      return { set: pt, details: { unknownGlobals: pt.unknownGlobals, stateDictKeys: pt.stateDictKeys } };
    }
    case 'safetensors':
      return { set: await readSafetensors(src, { path: file.name }), details: {} };
    case 'caffemodel':
      return { set: caffeWeights(await readCaffemodel(src, { path: file.name })), details: {} };
    default:
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `no weight reader for ${format}`, { path: file.name, format });
  }
}

export async function inspectUpload(file: File): Promise<Summary> {
  const format = await detectUpload(file);
  if (format === 'onnx') return onnxSummary(file.name, file.size, summarizeOnnx(await openOnnx(file)));
  const w = await openWeights(file, format);
  return weightsSummary(file.name, file.size, summarizeWeights(w.set), w.details);
}

/** A sink that reports bytes written against an expected total (the payload bytes after the pass). */
class ProgressSink implements ByteSink {
  constructor(private readonly inner: BlobSink, private readonly total: number, private readonly progress: Progress) {}
  get position(): number {
    return this.inner.position;
  }
  async write(chunk: Uint8Array): Promise<void> {
    await this.inner.write(chunk);
    this.progress('writing', Math.min(this.inner.position, this.total), this.total);
  }
}

function stem(name: string): string {
  return name.replace(/\.(onnx|safetensors|pt|pth|bin|ckpt|caffemodel)$/i, '');
}

/** The suffix that says what was done, e.g. "int8" → model.int8.onnx. */
function tag(o: RunOptions): string {
  switch (o.op) {
    case 'quantize':
      return o.method === 'int4' ? 'int4' : o.method === 'dynamic' ? 'dyn' : (o.dtype ?? 'int8');
    case 'cast':
      return o.to === 'bfloat16' ? 'bf16' : 'fp16';
    case 'prune':
      return o.pruneMethod === 'nm' ? '2of4' : `sparse${Math.round((o.sparsity ?? 0.5) * 100)}`;
    case 'convert':
      return 'converted';
  }
}

function sparsityOf(o: RunOptions, file: string): number | undefined {
  if (o.pruneMethod === 'nm') return undefined;
  const s = o.sparsity ?? 0.5;
  if (!(s >= 0 && s <= 1)) throw new ModelsmithError(ErrorCodes.USAGE, `sparsity must be between 0 and 1, got ${s}`, { path: file });
  return s;
}

function limit(rows: string[][]): { rows: string[][]; more?: number } {
  return rows.length > MAX_ROWS ? { rows: rows.slice(0, MAX_ROWS), more: rows.length - MAX_ROWS } : { rows };
}

function sizeTable(before: Record<string, number>, after: Record<string, number>): Table {
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])];
  return { title: 'tensor bytes by dtype', head: ['dtype', 'before', 'after'], rows: keys.map((k) => [k, formatBytes(before[k] ?? 0), formatBytes(after[k] ?? 0)]) };
}

export async function runOperation(file: File, o: RunOptions, progress: Progress): Promise<RunResult> {
  const t0 = performance.now();
  const format = await detectUpload(file);
  progress('reading', 0, file.size);
  const r = format === 'onnx' ? await runOnnx(file, o, progress) : await runWeights(file, format, o, progress);
  progress('done', 1, 1);
  return { ...r, inputBytes: file.size, outputBytes: r.blob.size, seconds: (performance.now() - t0) / 1000 };
}

type Partial = Omit<RunResult, 'inputBytes' | 'outputBytes' | 'seconds'>;

async function runOnnx(file: File, o: RunOptions, progress: Progress): Promise<Partial> {
  const model = await openOnnx(file);
  progress('reading', file.size, file.size);
  const base = stem(file.name);
  if (o.op === 'convert' && o.target && o.target !== 'onnx') {
    // ONNX → weight container: the initializers, as `modelsmith convert model.onnx -o w.safetensors`.
    const set = onnxWeights(model);
    return writeWeights(set, o.target, `${base}.${o.target}`, progress, {
      headline: `${set.tensors.length} initializers written as ${o.target}`, tables: [], diagnostics: set.diagnostics.map((d) => `${d.level} ${d.code}: ${d.message}`),
    });
  }
  let headline = 'rewritten as ONNX';
  const tables: Table[] = [];
  const diagnostics: string[] = [];
  const before = tensorBytes(model);
  progress(o.op === 'convert' ? 'converting' : `${o.op === 'quantize' ? 'quantizing' : o.op === 'cast' ? 'casting' : 'pruning'}`, 0, 1);
  if (o.op === 'quantize') {
    const method = o.method ?? 'weight';
    if (method === 'weight') {
      const dtype = o.dtype ?? 'int8';
      const { report } = await quantizeWeights(model, { dtype, perChannel: Boolean(o.perChannel), symmetric: Boolean(o.symmetric) });
      headline = `quantized ${report.quantized.length} weight(s) to ${dtype} ${o.perChannel ? 'per-channel' : 'per-tensor'} ${o.symmetric ? 'symmetric' : 'asymmetric'}, skipped ${report.skipped.length}`;
      tables.push({ title: 'weight error (dequantized vs original)', head: ['weight', 'op', 'shape', 'scheme', 'max-abs err', 'SNR dB'], ...limit(report.quantized.map((q) => [q.name, q.op, formatShape(q.shape), q.scheme + (q.axis !== undefined ? ` axis ${q.axis}` : ''), formatErr(q.maxAbs), formatDb(q.snrDb)])) });
      if (report.skipped.length) tables.push({ title: 'skipped', head: ['weight', 'op', 'reason'], ...limit(report.skipped.map((s) => [s.name, s.op, s.reason])) });
      diagnostics.push(...report.diagnostics.map((d) => `${d.level} ${d.code}: ${d.message}`));
    } else if (method === 'int4') {
      const { report } = await quantizeInt4(model, { symmetric: o.symmetric ?? true });
      headline = `quantized ${report.quantized.length} MatMul weight(s) to 4-bit MatMulNBits, skipped ${report.skipped.length}`;
      tables.push({ title: 'weight error', head: ['weight', 'shape', 'max-abs err', 'SNR dB'], ...limit(report.quantized.map((q) => [q.name, formatShape(q.shape), formatErr(q.maxAbs), formatDb(q.snrDb)])) });
      if (report.skipped.length) tables.push({ title: 'skipped', head: ['weight', 'node', 'reason'], ...limit(report.skipped.map((s) => [s.name, s.node, s.reason])) });
      diagnostics.push(...report.diagnostics.map((d) => `${d.level} ${d.code}: ${d.message}`));
    } else {
      const { report } = await quantizeDynamic(model, { perChannel: Boolean(o.perChannel) });
      headline = `dynamic int8: ${report.quantized.length} MatMul/Gemm/Conv weight(s), skipped ${report.skipped.length}`;
      tables.push({ title: 'weight error', head: ['weight', 'op', 'shape', 'max-abs err', 'SNR dB'], ...limit(report.quantized.map((q) => [q.name, q.op, formatShape(q.shape), formatErr(q.maxAbs), formatDb(q.snrDb)])) });
      if (report.skipped.length) tables.push({ title: 'skipped', head: ['weight', 'node', 'reason'], ...limit(report.skipped.map((s) => [s.name, s.node, s.reason])) });
      diagnostics.push(...report.diagnostics.map((d) => `${d.level} ${d.code}: ${d.message}`));
    }
  } else if (o.op === 'cast') {
    const { report } = await castModel(model, { to: o.to ?? 'float16' });
    headline = `cast ${report.tensorsConverted} tensor(s) to ${report.to} (${report.mode}); ${report.clampedValues} value(s) clamped to the range, ${report.castNodesInserted} Cast node(s) inserted`;
    const kept = Object.entries(report.nodesKeptFloat32);
    if (kept.length) tables.push({ title: 'nodes kept in float32', head: ['op', 'count'], rows: kept.map(([k, v]) => [k, String(v)]) });
    diagnostics.push(...report.warnings.map((w) => `warning: ${w}`));
  } else if (o.op === 'prune') {
    const method = o.pruneMethod ?? 'magnitude';
    const sparsity = sparsityOf(o, file.name);
    const { report } = await pruneWeights(model, { method, ...(sparsity !== undefined ? { sparsity } : {}) });
    headline = `pruned ${report.pruned.length} weight(s) (${method}), overall sparsity ${(report.totals.sparsity * 100).toFixed(1)}% — dense storage, same size`;
    tables.push({ title: 'sparsity', head: ['weight', 'op', 'shape', 'zeros before', 'sparsity'], ...limit(report.pruned.map((p) => [p.name, p.op, formatShape(p.shape), String(p.zerosBefore), `${(p.sparsity * 100).toFixed(1)}%`])) });
  }
  const after = tensorBytes(model);
  tables.unshift(sizeTable(before.byDtype, after.byDtype));
  const blobSink = new BlobSink();
  await writeOnnx(model, new ProgressSink(blobSink, after.total, progress));
  return { blob: blobSink.toBlob(), fileName: `${base}.${tag(o)}.onnx`, headline, tables, diagnostics };
}

/** Reports each tensor as it is loaded, i.e. as the writer streams it: the weight passes run lazily then. */
function tracked(set: WeightSet, progress: Progress): WeightSet {
  const total = set.tensors.reduce((a, t) => a + t.byteLength, 0);
  let done = 0;
  const tensors = set.tensors.map((t): LazyTensor => ({
    ...t,
    load: async () => {
      const b = await t.load();
      done += t.byteLength;
      progress('writing', Math.min(done, total), total);
      return b;
    },
  }));
  return { ...set, tensors };
}

async function writeWeights(set: WeightSet, target: 'safetensors' | 'pt', fileName: string, progress: Progress, r: Omit<Partial, 'blob' | 'fileName'>): Promise<Partial> {
  const sink = new BlobSink();
  const t = tracked(set, progress);
  if (target === 'safetensors') await writeSafetensors(t, sink, { path: fileName });
  else await writePytorch(t, sink, { archiveName: stem(fileName).replace(/[^A-Za-z0-9_.-]/g, '_') || 'archive', path: fileName });
  return { ...r, blob: sink.toBlob(), fileName };
}

async function runWeights(file: File, format: FormatName, o: RunOptions, progress: Progress): Promise<Partial> {
  const { set, details } = await openWeights(file, format);
  if (details.unknownGlobals?.length) {
    // As the CLI: tensors may hang off objects we never interpret, so a silent partial copy would mislead.
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `the checkpoint references ${details.unknownGlobals.join(', ')}, which modelsmith does not interpret; save a plain state_dict`, { path: file.name, format });
  }
  progress('reading', file.size, file.size);
  const target: 'safetensors' | 'pt' = o.op === 'convert'
    ? (o.target === 'pt' ? 'pt' : o.target === 'safetensors' ? 'safetensors' : (() => { throw new ModelsmithError(ErrorCodes.USAGE, 'a weight container has no graph: convert it to .safetensors or .pt', { path: file.name, format }); })())
    : format === 'safetensors' ? 'safetensors' : 'pt';
  const fileName = `${stem(file.name)}.${tag(o)}.${target}`;
  const diagnostics = set.diagnostics.map((d) => `${d.level} ${d.code}: ${d.message}`);
  if (o.op === 'convert') return writeWeights(set, target, fileName, progress, { headline: `${set.tensors.length} tensors written as ${target}`, tables: [], diagnostics });
  let pass: { set: WeightSet; report: WeightPassReport };
  if (o.op === 'quantize') {
    if (o.method === 'dynamic') throw new ModelsmithError(ErrorCodes.USAGE, 'dynamic quantization rewrites a graph; weight containers have none (use weight or int4)', { path: file.name, format });
    const scheme = o.method === 'int4' ? (o.symmetric === false ? 'uint4' : 'int4') : (o.dtype ?? 'int8');
    pass = await quantizeWeightSet(set, { scheme, perChannel: Boolean(o.perChannel), ...(o.symmetric ? { symmetric: true } : {}) });
  } else if (o.op === 'cast') {
    pass = await castWeightSet(set, { to: o.to ?? 'float16' });
  } else {
    const method = o.pruneMethod === 'nm' ? 'nm' : 'magnitude';
    const sparsity = sparsityOf(o, file.name);
    pass = await pruneWeightSet(set, { method, ...(sparsity !== undefined ? { sparsity } : {}) });
  }
  // The passes are lazy: errors and sparsities are known once the writer has loaded every tensor.
  const res = await writeWeights(pass.set, target, fileName, progress, { headline: '', tables: [], diagnostics });
  const rep = pass.report;
  const rows = rep.processed.map((p) => {
    const e = (p as QuantizedWeight).error;
    const s = (p as PrunedWeight).sparsity;
    return [p.name, formatShape(p.shape), `${formatBytes(p.bytesBefore)} → ${formatBytes(p.bytesAfter)}`,
      e ? `max-abs ${formatErr(e.maxAbs)}, SNR ${formatDb(e.snrDb)} dB` : s !== undefined ? `sparsity ${(s * 100).toFixed(1)}%` : ''];
  });
  res.headline = `${o.op}: ${rep.processed.length} tensor(s) processed, ${rep.skipped.length} skipped; tensor bytes ${formatBytes(rep.bytesBefore)} → ${formatBytes(rep.bytesAfter)} (${(rep.ratio * 100).toFixed(1)}%)`;
  res.tables = [{ title: 'tensors', head: ['tensor', 'shape', 'bytes', 'error / sparsity'], ...limit(rows) }];
  if (rep.skipped.length) res.tables.push({ title: 'skipped', head: ['tensor', 'reason'], ...limit(rep.skipped.map((s) => [s.name, s.reason])) });
  return res;
}
