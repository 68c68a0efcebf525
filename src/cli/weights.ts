/**
 * The CLI verbs on weight containers (PyTorch, safetensors, TF bundles, Caffe weights): inspect,
 * convert between containers, and the weight-only compression passes. Each verb streams: tensors are
 * read, transformed and written one at a time.
 */
import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import type { WeightSet } from '../formats/weights.js';
import { detectFormat, type FormatName } from '../formats/registry.js';
import { summarizeWeights, type WeightsSummary } from '../formats/weights-summary.js';
import { castWeightSet } from '../compress/weights/cast.js';
import { pruneWeightSet } from '../compress/weights/prune.js';
import { quantizeWeightSet, type WeightScheme } from '../compress/weights/quantize.js';
import type { WeightPassReport } from '../compress/weights/common.js';
import { FileSource } from '../platform/node.js';
import { openWeights, saveWeights, weightOutputFormat, type OpenedWeights } from '../platform/weights-io.js';
import { formatBytes, table, type Out } from './output.js';
import { progressBar, trackLoads } from './progress.js';
import { parseSize } from '../formats/safetensors/size.js';
import { formatTfTorchReport, type TfTorchReport } from '../convert/tf-pytorch/index.js';

type Values = Record<string, string | boolean | undefined>;

const WEIGHT_FORMATS: ReadonlySet<FormatName> = new Set<FormatName>(['pytorch-zip', 'pytorch-legacy', 'safetensors', 'safetensors-index', 'tf-bundle', 'caffemodel']);

/** The detected format of a file (undefined for folders and unknown files). */
export async function detectFile(path: string): Promise<FormatName | undefined> {
  const st = await stat(path).catch(() => undefined);
  if (!st || !st.isFile()) return st?.isDirectory() ? 'savedmodel' : undefined;
  const src = await FileSource.open(path);
  try {
    return detectFormat(await src.read(0, Math.min(16, src.size)), basename(path))?.name;
  } finally {
    await src.close();
  }
}

export function isWeightFormat(f: FormatName | undefined): boolean {
  return f !== undefined && WEIGHT_FORMATS.has(f);
}

export async function inspectWeights(path: string, values: Values, out: Out): Promise<Record<string, unknown>> {
  const w = await openWeights(path, keyOpt(values));
  try {
    const s = summarizeWeights(w.set);
    out.say(...renderWeights(s, w));
    return { ok: true, verb: 'inspect', ...s, details: w.details };
  } finally {
    await w.close();
  }
}

function renderWeights(s: WeightsSummary, w: OpenedWeights): string[] {
  const lines = [`${s.path}: ${w.format}, ${s.tensorCount} tensors, ${formatBytes(s.bytes)} of tensor data`];
  lines.push(`  parameters ${s.parameters.toLocaleString('en-US')}` + (s.sharedStorage ? `   (${s.sharedStorage} tensors share storage with another)` : ''));
  const d = w.details;
  if (Array.isArray(d.stateDictKeys) && d.stateDictKeys.length) lines.push(`  state dicts ${(d.stateDictKeys as string[]).join(', ')}${d.selectedKey ? ` (showing '${String(d.selectedKey)}'; choose with --key)` : ''}`);
  if (Array.isArray(d.unknownGlobals) && d.unknownGlobals.length) lines.push(`  not allow-listed (kept inert, never run): ${(d.unknownGlobals as string[]).join(', ')}`);
  lines.push('', 'bytes by dtype:');
  lines.push(...table(Object.entries(s.bytesByDtype).map(([k, v]) => ['  ' + k, `${v.tensors} tensors`, formatBytes(v.bytes)])));
  const shown = s.tensors.length <= 40 ? s.tensors : s.largestTensors;
  lines.push('', s.tensors.length <= 40 ? 'tensors:' : `largest tensors (of ${s.tensors.length}; --json lists all):`);
  lines.push(...table(shown.map((t) => ['  ' + t.name, `${t.dtype}[${t.shape.join(',')}]`, formatBytes(t.bytes)])));
  if (s.metadata) {
    lines.push('', 'metadata:');
    for (const [k, v] of Object.entries(s.metadata)) lines.push(`  ${k}: ${v.length > 120 ? v.slice(0, 117) + '...' : v}`);
  }
  if (s.diagnostics.length) {
    lines.push('', 'diagnostics:');
    for (const x of s.diagnostics) lines.push(`  ${x.level} ${x.code}: ${x.message}`);
  }
  return lines;
}

/** The save option `--no-fsync` stands for (main.ts declares the flag for the verbs that write files). */
export function syncOpt(values: Record<string, unknown>): { sync?: boolean } {
  return values['no-fsync'] ? { sync: false } : {};
}

function keyOpt(values: Values): { key?: string } {
  return typeof values.key === 'string' ? { key: values.key } : {};
}

/**
 * Open → (pass) → save, with a progress bar and the common report fields. Refuses PyTorch files with
 * objects outside the allow-list: their tensors may hang off objects we do not interpret.
 */
export async function runWeights(
  verb: string, input: string, output: string, values: Values, out: Out,
  pass?: (set: WeightSet, opened: OpenedWeights) => Promise<{ set: WeightSet; report: unknown }>,
): Promise<Record<string, unknown>> {
  if (!weightOutputFormat(output)) {
    throw new ModelsmithError(ErrorCodes.USAGE, `'${output}' is not a weight container this build writes: use .safetensors, .safetensors.index.json, .pt, .pth or .bin`, { path: output });
  }
  const shardSize = typeof values['shard-size'] === 'string' ? parseSize(values['shard-size']) : undefined;
  const t0 = performance.now();
  const inputBytes = await pathBytes(input);
  const w = await openWeights(input, keyOpt(values));
  try {
    const unknown = (w.details.unknownGlobals as string[] | undefined) ?? [];
    if (unknown.length && !values['allow-unknown-globals']) {
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED,
        `the checkpoint references ${unknown.join(', ')}, which modelsmith does not interpret (never executes); ` +
        'pick a plain state_dict with --key, or pass --allow-unknown-globals to write only the tensors found', { path: input });
    }
    out.note(`read ${input}: ${w.format}, ${w.set.tensors.length} tensors`);
    const r = pass ? await pass(w.set, w) : { set: w.set, report: undefined };
    const total = r.set.tensors.reduce((a, t) => a + t.byteLength, 0);
    const bar = values.quiet ? progressBar('', 0, false) : progressBar(verb, total);
    const saved = await saveWeights(trackLoads(r.set, bar), output, { inputs: [input], ...(shardSize !== undefined ? { shardSize } : {}), ...syncOpt(values) });
    bar.done();
    const seconds = (performance.now() - t0) / 1000;
    const ratio = inputBytes > 0 ? saved.bytes / inputBytes : 1;
    out.say(`${verb}: ${w.format} → ${saved.format}, ${saved.tensors} tensors, ${formatBytes(inputBytes)} → ${formatBytes(saved.bytes)} (${(ratio * 100).toFixed(1)}%) in ${seconds.toFixed(2)} s`);
    out.say(`wrote ${saved.files.join(', ')}`);
    renderReports(r.report, out);
    return {
      ok: true, verb, input, output, files: saved.files, inputFormat: w.format, outputFormat: saved.format,
      tensors: saved.tensors, inputBytes, outputBytes: saved.bytes, ratio, seconds,
      ...(r.report ? { report: r.report } : {}), diagnostics: w.set.diagnostics,
    };
  } finally {
    await w.close();
  }
}

/** Size of a file, or of the files in a folder (a SavedModel: saved_model.pb + variables/), two levels deep. */
async function pathBytes(path: string, depth = 0): Promise<number> {
  const st = await stat(path).catch(() => undefined);
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  if (depth >= 2) return 0;
  let total = 0;
  for (const e of await readdir(path)) total += await pathBytes(join(path, e), depth + 1);
  return total;
}

/** A pass report, or a recipe's list of step reports. */
function renderReports(report: unknown, out: Out): void {
  if (!report || typeof report !== 'object') return;
  const steps = (report as { steps?: { step: { pass: string }; report: unknown }[] }).steps;
  if (Array.isArray(steps)) {
    for (const [i, s] of steps.entries()) {
      out.say(`step ${i + 1}: ${s.step.pass}`);
      renderReports(s.report, out);
    }
    return;
  }
  if (Array.isArray((report as WeightPassReport).processed)) renderPassReport(report as WeightPassReport, out);
  else if (Array.isArray((report as TfTorchReport).pairs)) out.say(formatTfTorchReport(report as TfTorchReport));
}

function renderPassReport(r: WeightPassReport, out: Out): void {
  out.say(`tensor bytes ${formatBytes(r.bytesBefore)} → ${formatBytes(r.bytesAfter)} (${(r.ratio * 100).toFixed(1)}%), ${r.processed.length} processed, ${r.skipped.length} skipped`);
  const rows = r.processed.slice(0, 30).map((p) => {
    const e = (p as { error?: { maxAbs: number; snrDb: number } }).error;
    const s = (p as { sparsity?: number }).sparsity;
    return ['  ' + p.name, `[${p.shape.join(',')}]`, `${formatBytes(p.bytesBefore)} → ${formatBytes(p.bytesAfter)}`,
      e ? `max-abs ${e.maxAbs.toExponential(2)} SNR ${Number.isFinite(e.snrDb) ? e.snrDb.toFixed(1) : String(e.snrDb)} dB` : s !== undefined ? `sparsity ${(s * 100).toFixed(1)}%` : ''];
  });
  if (rows.length) out.say(...table(rows));
  if (r.processed.length > 30) out.say(`  … ${r.processed.length - 30} more (--json lists all)`);
}

export function weightsQuantizePass(values: Values): (set: WeightSet) => ReturnType<typeof quantizeWeightSet> {
  const method = (values.method as string | undefined) ?? 'weight';
  if (method === 'dynamic') throw new ModelsmithError(ErrorCodes.USAGE, '--method dynamic rewrites a graph; weight containers have none (use weight or int4)');
  let scheme: WeightScheme;
  if (method === 'int4') scheme = values.asymmetric ? 'uint4' : 'int4';
  else if (method === 'weight') {
    const dtype = (values.dtype as string | undefined) ?? 'int8';
    if (dtype !== 'int8' && dtype !== 'uint8') throw new ModelsmithError(ErrorCodes.USAGE, `--dtype must be int8 or uint8, got '${dtype}'`);
    scheme = dtype;
  } else throw new ModelsmithError(ErrorCodes.USAGE, `--method must be weight or int4 for weight containers, got '${method}'`);
  const blockSize = values['block-size'] !== undefined ? Number(values['block-size']) : undefined;
  const axis = values.axis !== undefined ? Number(values.axis) : undefined;
  if (axis !== undefined && !Number.isInteger(axis)) throw new ModelsmithError(ErrorCodes.USAGE, `--axis must be an integer, got '${String(values.axis)}'`);
  return (set) => quantizeWeightSet(set, {
    scheme,
    perChannel: Boolean(values['per-channel']),
    ...(values.symmetric ? { symmetric: true } : {}),
    ...(blockSize !== undefined ? { blockSize } : {}),
    ...(axis !== undefined ? { axis } : {}),
    ...(values['include-1d'] ? { includeOneDim: true } : {}),
    ...excludeOpt(values),
  });
}

export function weightsCastPass(to: 'float16' | 'bfloat16', values: Values): (set: WeightSet) => ReturnType<typeof castWeightSet> {
  return (set) => castWeightSet(set, { to, ...excludeOpt(values) });
}

export function weightsPrunePass(values: Values, method: 'magnitude' | 'nm', sparsity: number | undefined, n: number, m: number): (set: WeightSet) => ReturnType<typeof pruneWeightSet> {
  const axis = values.axis !== undefined ? Number(values.axis) : undefined;
  return (set) => pruneWeightSet(set, {
    method, n, m,
    ...(sparsity !== undefined ? { sparsity } : {}),
    ...(axis !== undefined ? { axis } : {}),
    ...(values['include-1d'] ? { includeOneDim: true } : {}),
    ...excludeOpt(values),
  });
}

function excludeOpt(values: Values): { exclude?: string[] } {
  if (typeof values.exclude !== 'string') return {};
  return { exclude: values.exclude.split(',').map((s) => s.trim()).filter(Boolean) };
}

/** Flags every compression verb accepts for weight-container inputs. */
export const CONTAINER_OPTIONS = {
  key: { type: 'string' },
  'shard-size': { type: 'string' },
  'allow-unknown-globals': { type: 'boolean' },
  axis: { type: 'string' },
} as const;

export const CONTAINER_HELP = `weight containers (.pt/.pth/.bin, .safetensors, *.safetensors.index.json, TF variables.index,
.caffemodel) as input: the pass runs on the tensors alone, streamed one at a time, and the output
extension picks the container (.safetensors, .safetensors.index.json, .pt/.pth/.bin):
  --key K               PyTorch checkpoints: the nested state_dict to take
  --shard-size SIZE     safetensors output in shards (e.g. 2GB)
  --axis A              quantize: channel axis of --per-channel (default 0, PyTorch's output
                        channel); prune --method nm: the axis groups run along (default 1)
  --allow-unknown-globals  write tensors even if the pickle references non-allow-listed objects
  --exclude NAMES       comma-separated tensor names or globs (*) to leave alone`;
