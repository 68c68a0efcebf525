/**
 * `openDataset`: finds what a path holds (a folder of .npy files, a folder of ONNX .pb tensors or of
 * test_data_set_N folders, an .npz, an IDX image/label pair), resolves each input's sample shape and
 * sample count from headers only, and `batches` streams it.
 */
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import { byteLength } from '../core/dtype.js';
import type { FValue } from '../engine/types.js';
import { checkInputDType, checkLabelDType, toFloat32, toLabels } from './convert.js';
import { idxChunk, npyChunk, pbChunk } from './files.js';
import { npzMembers } from './npz.js';
import type { Batch, Chunk, ChunkCursor, DataIo, DatasetKind, InputDecl, OpenDatasetOptions } from './types.js';

/** Folders with more entries than this are refused (a data set of a million files is not a calibration set). */
const MAX_FILES = 1_000_000;
/** Largest batch assembled in memory (float32 elements per input: 1 GiB). */
export const MAX_BATCH_ELEMENTS = 2 ** 28;
const LABEL_NAMES = new Set(['labels', 'label', 'y', 'targets']);

export interface Dataset {
  readonly path: string;
  readonly kind: DatasetKind;
  readonly sampleCount: number;
  readonly inputNames: readonly string[];
  /** Dims of one sample per input (the batch axis excluded). */
  readonly sampleDims: Readonly<Record<string, readonly number[]>>;
  readonly hasLabels: boolean;
  /** Input name → its chunks in order (internal to the batcher). */
  readonly chunks: ReadonlyMap<string, readonly Chunk[]>;
  readonly labelChunks: readonly Chunk[];
  readonly divisor: number;
}

const joinPath = (dir: string, name: string): string => (dir.endsWith('/') ? dir + name : `${dir}/${name}`);
const stem = (name: string): string => name.replace(/\.[^.]+$/, '');
const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
/** test_data_set_2 before test_data_set_10; input_2.pb before input_10.pb. */
const byTrailingNumber = (a: string, b: string): number => {
  const n = (s: string): number => Number(/(\d+)(\.[^.]*)?$/.exec(s)?.[1] ?? Number.MAX_SAFE_INTEGER);
  return n(a) - n(b) || byName(a, b);
};

function usage(msg: string, path: string, tensor?: string): ModelsmithError {
  return new ModelsmithError(ErrorCodes.USAGE, msg, { path, ...(tensor !== undefined ? { tensor } : {}) });
}

/**
 * How many samples a stored tensor holds, and the dims of one sample. With a declaration of rank r:
 * rank r is a batch, rank r − 1 one sample; otherwise (or without one) the leading axis is the batch.
 * A sample whose element count equals the declared fixed sample dims is reshaped to them.
 */
export function resolveSamples(shape: readonly number[], decl: InputDecl | undefined, path: string, name: string): { count: number; dims: number[] } {
  const d = decl?.dims;
  let count: number;
  let dims: number[];
  if (d && shape.length === d.length - 1 && !(shape.length >= 1 && d.slice(1).every((x) => typeof x === 'number') && numelOf(shape.slice(1)) === numelOf(d.slice(1) as number[]))) {
    count = 1;
    dims = [...shape];
  } else {
    if (shape.length === 0) throw usage('a scalar holds no samples (expected [n, ...] or one sample of the declared shape)', path, name);
    count = shape[0]!;
    dims = shape.slice(1);
  }
  if (d && d.length >= 1) {
    const want = d.slice(1);
    if (want.every((x) => typeof x === 'number')) {
      if (numelOf(dims) !== numelOf(want as number[])) {
        throw usage(`samples of [${dims.join(',')}] do not fit the model's input [${d.map((x) => (typeof x === 'number' ? x : '?')).join(',')}]`, path, name);
      }
      dims = want as number[];
    } else if (want.length !== dims.length) {
      throw usage(`samples of rank ${dims.length}; the model's input has sample rank ${want.length}`, path, name);
    }
  }
  return { count, dims };
}

function numelOf(dims: readonly number[]): number {
  return dims.reduce((a, x) => a * x, 1);
}

interface Collected {
  kind: DatasetKind;
  /** In order; `name` is the stored name (tensor / member / file stem), or undefined. */
  inputs: { name: string | undefined; chunk: Chunk }[];
  labels: Chunk[];
  /** Sets of chunks (test_data_set_N): each set gives every input once. */
  grouped: boolean;
  divisor?: number;
}

async function collect(io: DataIo, path: string, opts: OpenDatasetOptions): Promise<Collected> {
  const entries = await io.list(path);
  if (entries === undefined) return collectFile(io, path, opts);
  if (entries.length > MAX_FILES) throw new ModelsmithError(ErrorCodes.LIMIT, `folder holds ${entries.length} entries (cap ${MAX_FILES})`, { path });
  const names = entries.map((e) => e.name);
  const sets = entries.filter((e) => e.directory && /^test_data_set_\d+$/.test(e.name)).map((e) => e.name).sort(byTrailingNumber);
  const labelFile = names.find((n) => /\.(npy|pb)$/i.test(n) && LABEL_NAMES.has(stem(n).toLowerCase()));
  const labels = labelFile ? [await fileChunk(io, joinPath(path, labelFile))] : [];
  if (sets.length) {
    const inputs: Collected['inputs'] = [];
    for (const s of sets) {
      const dir = joinPath(path, s);
      const files = ((await io.list(dir)) ?? []).filter((e) => !e.directory && /\.(pb|npy)$/i.test(e.name) && !/^output_\d+\.pb$/i.test(e.name)).map((e) => e.name);
      if (!files.length) throw usage('data set folder holds no input_*.pb or .npy files', dir);
      for (const f of files.sort(byTrailingNumber)) inputs.push(await namedChunk(io, joinPath(dir, f)));
    }
    return { kind: 'pb', inputs, labels, grouped: true };
  }
  const files = entries.filter((e) => !e.directory).map((e) => e.name).filter((n) => n !== labelFile);
  const npy = files.filter((n) => /\.npy$/i.test(n)).sort(byName);
  if (npy.length) {
    const inputs: Collected['inputs'] = [];
    for (const f of npy) inputs.push({ name: undefined, chunk: await npyChunk(io, joinPath(path, f)) });
    return { kind: 'npy', inputs, labels, grouped: false };
  }
  const pb = files.filter((n) => /\.pb$/i.test(n) && !/^output_\d+\.pb$/i.test(n)).sort(byTrailingNumber);
  if (pb.length) {
    // Eval style: input_0.pb, input_1.pb, … are the model's inputs in order (one set).
    const inputs: Collected['inputs'] = [];
    for (const f of pb) inputs.push(await namedChunk(io, joinPath(path, f)));
    return { kind: 'pb', inputs, labels, grouped: true };
  }
  const idx = files.filter((n) => /idx3-ubyte$/i.test(n)).sort(byName);
  if (idx.length === 1) return collectFile(io, joinPath(path, idx[0]!), opts);
  const npz = files.filter((n) => /\.npz$/i.test(n));
  if (npz.length === 1) return collectFile(io, joinPath(path, npz[0]!), opts);
  throw usage('folder holds no .npy, .pb, test_data_set_* folders, one .npz or one IDX image file', path);
}

async function fileChunk(io: DataIo, path: string): Promise<Chunk> {
  return /\.pb$/i.test(path) ? pbChunk(io, path) : npyChunk(io, path);
}

async function namedChunk(io: DataIo, path: string): Promise<{ name: string | undefined; chunk: Chunk }> {
  if (/\.pb$/i.test(path)) {
    const c = (await pbChunk(io, path)) as Chunk & { tensorName?: string };
    return { name: c.tensorName || undefined, chunk: c };
  }
  return { name: undefined, chunk: await npyChunk(io, path) };
}

async function collectFile(io: DataIo, path: string, opts: OpenDatasetOptions): Promise<Collected> {
  const base = path.slice(path.lastIndexOf('/') + 1);
  if (/\.npz$/i.test(base)) {
    const members = await npzMembers(io, path);
    const labels = members.filter((m) => LABEL_NAMES.has(m.name.toLowerCase())).map((m) => m.chunk);
    if (labels.length > 1) throw usage('.npz holds more than one labels member', path);
    return { kind: 'npz', inputs: members.filter((m) => !LABEL_NAMES.has(m.name.toLowerCase())).map((m) => ({ name: m.name, chunk: m.chunk })), labels, grouped: true };
  }
  if (/\.npy$/i.test(base)) return { kind: 'npy', inputs: [{ name: undefined, chunk: await npyChunk(io, path) }], labels: [], grouped: false };
  if (/\.pb$/i.test(base)) return { kind: 'pb', inputs: [await namedChunk(io, path)], labels: [], grouped: true };
  if (/idx\d-ubyte$|\.idx$/i.test(base)) {
    const labelPath = opts.labels ?? path.slice(0, path.length - base.length) + base.replace('images', 'labels').replace('idx3', 'idx1');
    const images = await idxChunk(io, path);
    let labels: Chunk[] = [];
    if (labelPath !== path) {
      const exists = opts.labels !== undefined || (await io.open(labelPath).then(async (s) => { await s.close?.(); return true; }, () => false));
      if (exists) labels = [await idxChunk(io, labelPath, 1)];
    }
    return { kind: 'idx', inputs: [{ name: undefined, chunk: images }], labels, grouped: false, divisor: 255 };
  }
  throw usage(`cannot tell what data '${base}' holds (expected .npy, .npz, .pb, IDX, or a folder of them)`, path);
}

/** Opens a data set: headers are read and checked, payloads are left for `batches`. */
export async function openDataset(path: string, io: DataIo, opts: OpenDatasetOptions = {}): Promise<Dataset> {
  if (opts.maxSamples !== undefined && (!Number.isSafeInteger(opts.maxSamples) || opts.maxSamples < 1)) {
    throw usage(`maxSamples must be a positive integer, got ${String(opts.maxSamples)}`, path);
  }
  if (opts.divisor !== undefined && !(Number.isFinite(opts.divisor) && opts.divisor !== 0)) throw usage(`divisor must be a finite non-zero number, got ${String(opts.divisor)}`, path);
  const c = await collect(io, path, opts);
  const decls = opts.inputs ?? [];
  const chunks = new Map<string, Chunk[]>();
  // A tensor named after a declared input goes there (any name when nothing is declared); a lone
  // .npz member feeds a lone declared input whatever its name; the rest fill the inputs in order
  // (a folder of .npy files is one input).
  const declNames = decls.map((d) => d.name);
  const positional: string[] = declNames.length ? declNames : ['input'];
  const loneMember = c.kind === 'npz' && declNames.length === 1 && c.inputs.length === 1;
  let slot = 0;
  for (const { name, chunk } of c.inputs) {
    let target: string;
    if (loneMember) target = declNames[0]!;
    else if (name !== undefined && (!declNames.length || declNames.includes(name))) target = name;
    else if (!c.grouped) target = positional[0]!;
    else target = positional[slot++ % positional.length]!;
    checkInputDType(chunk.dtype, chunk.path, target);
    const list = chunks.get(target) ?? [];
    list.push(chunk);
    chunks.set(target, list);
  }
  if (!chunks.size) throw usage('data set holds no input tensors', path);
  for (const d of decls) if (!chunks.has(d.name)) throw usage(`no data for model input '${d.name}'`, path, d.name);
  for (const n of chunks.keys()) if (declNames.length && !declNames.includes(n)) throw usage(`data for '${n}', which is not a model input (${declNames.join(', ')})`, path, n);

  const sampleDims: Record<string, number[]> = {};
  let total: number | undefined;
  for (const [name, list] of chunks) {
    let count = 0;
    for (const ch of list) {
      const r = resolveSamples(ch.shape, decls.find((d) => d.name === name), ch.path, name);
      const prev = sampleDims[name];
      if (prev && (prev.length !== r.dims.length || prev.some((x, i) => x !== r.dims[i]))) {
        throw usage(`sample shape [${r.dims.join(',')}] differs from earlier files' [${prev.join(',')}]`, ch.path, name);
      }
      sampleDims[name] = r.dims;
      ch.count = r.count;
      count += r.count;
    }
    if (total !== undefined && count !== total) throw usage(`input '${name}' has ${count} samples, another input has ${total}`, path, name);
    total = count;
  }
  let labelCount = 0;
  for (const l of c.labels) {
    checkLabelDType(l.dtype, l.path);
    if (l.shape.length > 2 || (l.shape.length === 2 && l.shape[1] !== 1)) throw usage(`labels must be [n] or [n, 1], got [${l.shape.join(',')}]`, l.path, 'labels');
    l.count = l.shape.length === 0 ? 1 : l.shape[0]!;
    labelCount += l.count;
  }
  if (c.labels.length && labelCount !== total) throw usage(`${labelCount} labels for ${total} samples`, c.labels[0]!.path, 'labels');
  const sampleCount = Math.min(total ?? 0, opts.maxSamples ?? Infinity);
  if (sampleCount === 0) throw usage('data set holds no samples', path);
  return {
    path, kind: c.kind, sampleCount, inputNames: [...chunks.keys()], sampleDims, hasLabels: c.labels.length > 0,
    chunks, labelChunks: c.labels, divisor: opts.divisor ?? c.divisor ?? 1,
  };
}

/** Reads samples forward through a list of chunks. */
class ChunkReader {
  private i = 0;
  private cursor: ChunkCursor | undefined;
  private left = 0;
  constructor(private readonly list: readonly Chunk[], private readonly sampleBytes: (c: Chunk) => number) {}
  /** `n` samples, as (chunk, bytes) pieces in order. */
  async take(n: number): Promise<{ chunk: Chunk; bytes: Uint8Array; count: number }[]> {
    const out: { chunk: Chunk; bytes: Uint8Array; count: number }[] = [];
    while (n > 0) {
      if (!this.cursor || this.left === 0) {
        await this.cursor?.close();
        this.cursor = undefined;
        const ch = this.list[this.i++];
        if (!ch) throw new ModelsmithError(ErrorCodes.TRUNCATED, 'data set ran out of samples');
        if (ch.count === 0) continue;
        this.cursor = await ch.open();
        this.left = ch.count;
      }
      const ch = this.list[this.i - 1]!;
      const k = Math.min(n, this.left);
      out.push({ chunk: ch, bytes: await this.cursor.next(k * this.sampleBytes(ch)), count: k });
      this.left -= k;
      n -= k;
    }
    return out;
  }
  async close(): Promise<void> {
    await this.cursor?.close();
    this.cursor = undefined;
  }
}

/** Streams the data set in batches of `batchSize` samples (the last may be smaller). */
export async function* batches(ds: Dataset, batchSize: number): AsyncGenerator<Batch> {
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw usage(`batch size must be a positive integer, got ${String(batchSize)}`, ds.path);
  const per = (ch: Chunk, dims: readonly number[]): number => byteLength(ch.dtype, numelOf(dims));
  const readers = new Map<string, ChunkReader>();
  for (const [name, list] of ds.chunks) readers.set(name, new ChunkReader(list, (ch) => per(ch, ds.sampleDims[name]!)));
  const labels = ds.hasLabels ? new ChunkReader(ds.labelChunks, (ch) => byteLength(ch.dtype, 1)) : undefined;
  try {
    for (let start = 0; start < ds.sampleCount; start += batchSize) {
      const n = Math.min(batchSize, ds.sampleCount - start);
      const inputs: Record<string, FValue> = {};
      for (const [name, r] of readers) {
        const dims = ds.sampleDims[name]!;
        const each = numelOf(dims);
        if (n * each > MAX_BATCH_ELEMENTS) {
          throw new ModelsmithError(ErrorCodes.LIMIT, `a batch of ${n} × [${dims.join(',')}] is more than ${MAX_BATCH_ELEMENTS} floats; use a smaller batch size`, { path: ds.path, tensor: name });
        }
        const data = new Float32Array(n * each);
        let at = 0;
        for (const p of await r.take(n)) {
          data.set(toFloat32(p.bytes, p.chunk.dtype, ds.divisor), at);
          at += p.count * each;
        }
        inputs[name] = { dtype: 'float32', dims: [n, ...dims], data };
      }
      const batch: Batch = { inputs };
      if (labels) {
        const l = new Int32Array(n);
        let at = 0;
        for (const p of await labels.take(n)) {
          l.set(toLabels(p.bytes, p.chunk.dtype, p.chunk.path, start + at), at);
          at += p.count;
        }
        batch.labels = l;
      }
      yield batch;
    }
  } finally {
    for (const r of readers.values()) await r.close();
    await labels?.close();
  }
}
