/**
 * Node-side model opening and saving: detect the format, read it through its codec with a sibling
 * resolver, and write outputs atomically. CLI verbs and Node scripts use these; the codecs
 * themselves never touch the file system.
 */
import { stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import { detectFormat, requireReadable } from '../formats/registry.js';
import { readOnnx, type OnnxModel } from '../formats/onnx/read.js';
import { writeOnnx, type WriteOnnxStats } from '../formats/onnx/write.js';
import { collectTensors, externalDataRef } from '../formats/onnx/tensor.js';
import { AtomicFileSink, FileSource, siblingResolver } from './node.js';
import { nodeScratch } from './scratch.js';
import { Spill } from '../compress/spill.js';
import { tensorBytes } from '../compress/report.js';

export interface OpenedModel {
  model: OnnxModel;
  /** Close every file the model still reads lazily (external data). */
  close(): Promise<void>;
}

export async function openModelFile(path: string): Promise<OpenedModel> {
  const st = await stat(path).catch((e: unknown) => {
    throw new ModelsmithError(ErrorCodes.IO, `cannot open: ${(e as Error).message}`, { path, cause: e });
  });
  const src = st.isDirectory() ? undefined : await FileSource.open(path);
  const head = src ? await src.read(0, Math.min(16, src.size)) : new Uint8Array(0);
  try {
    const info = requireReadable(detectFormat(head, basename(path), st.isDirectory()), path);
    if (info.name !== 'onnx' || !src) throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `no reader for ${info.name}`, { path });
    const opened: FileSource[] = [];
    const model = await readOnnx(src, { path, siblings: siblingResolver(path, opened) });
    return {
      model,
      close: async () => {
        await Promise.all(opened.map((f) => f.close()));
      },
    };
  } finally {
    // The ONNX reader holds the bytes in memory; only siblings stay open.
    await src?.close();
  }
}

export interface SaveOnnxOptions {
  /** Move tensors of at least `threshold` bytes to `<output>.data` (or `location`). */
  externalData?: { location?: string; threshold?: number };
  /** Input paths the output must never replace. */
  inputs?: string[];
  /** fsync each file before its rename (default true); see AtomicFileSinkOptions.sync for what `false` gives up. */
  sync?: boolean;
}

/** Write an ONNX model (and its external data file) atomically: all files appear, or none. */
export async function saveOnnxFile(model: OnnxModel, output: string, opts: SaveOnnxOptions = {}): Promise<WriteOnnxStats & { files: string[] }> {
  // The model's own external data files are inputs too: writing over one would destroy weights still to be read.
  const inputs = [...(opts.inputs ?? []), ...externalFiles(model)];
  const sinkOpts = { sync: opts.sync ?? true };
  const sink = await AtomicFileSink.create(output, inputs, sinkOpts);
  let ext: AtomicFileSink | undefined;
  try {
    let stats: WriteOnnxStats;
    const files = [output];
    if (opts.externalData) {
      const location = opts.externalData.location ?? `${basename(output)}.data`;
      const extPath = output.slice(0, output.length - basename(output).length) + location;
      ext = await AtomicFileSink.create(extPath, inputs, sinkOpts);
      const extOpts = { location, sink: ext, ...(opts.externalData.threshold !== undefined ? { threshold: opts.externalData.threshold } : {}) };
      stats = await writeOnnx(model, sink, { externalData: extOpts });
      files.push(extPath);
    } else {
      stats = await writeOnnx(model, sink);
    }
    // The data file first: a model must never appear without the weights it points to.
    await AtomicFileSink.commitAll(ext ? [ext, sink] : [sink]);
    return { ...stats, files };
  } catch (e) {
    await sink.abort();
    await ext?.abort();
    throw e;
  }
}

/** Paths of the external data files a model reads from. */
export function externalFiles(model: OnnxModel): string[] {
  const folder = dirname(model.path);
  const out = new Set<string>();
  for (const e of collectTensors(model)) {
    const ref = externalDataRef(e.proto, model.path);
    if (ref) out.add(join(folder, ref.location));
  }
  return [...out];
}

/** Models whose tensors exceed this are converted through a scratch spill (memory bounded by one tensor). */
export const SPILL_ABOVE_BYTES = 256 * 1024 * 1024;

/**
 * A spill for a pass over `model` when it is big (or reads external data), with its scratch folder
 * next to the output (the same disk as the result, which /tmp may not have room for); undefined
 * for small models, which convert faster in memory.
 */
export function spillFor(model: OnnxModel, output: string): Spill | undefined {
  const big = tensorBytes(model).total > SPILL_ABOVE_BYTES || externalFiles(model).length > 0;
  return big ? new Spill({ scratch: nodeScratch(dirname(output) || '.') }) : undefined;
}

/** Bytes of a model file plus the external data files it reads (what "input size" means to a user). */
export async function modelFileBytes(path: string, model: OnnxModel): Promise<number> {
  let total = 0;
  for (const f of [path, ...externalFiles(model)]) total += (await stat(f).catch(() => undefined))?.size ?? 0;
  return total;
}
