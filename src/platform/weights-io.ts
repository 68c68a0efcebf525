/**
 * Node-side opening and saving of weight containers (PyTorch, safetensors single/sharded, TF bundles,
 * Caffe weights, ONNX initializers) as WeightSets. Files stay open while the set is used, because
 * tensors are read lazily; `close()` releases them. Outputs are written atomically (all files or none)
 * and never over an input.
 */
import { mkdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import { detectFormat, requireReadable, type FormatName } from '../formats/registry.js';
import type { WeightSet } from '../formats/weights.js';
import { onnxWeights } from '../formats/onnx/weights.js';
import { readPytorch } from '../formats/pytorch/read.js';
import { writePytorch } from '../formats/pytorch/write.js';
import { readSafetensors } from '../formats/safetensors/read.js';
import { writeSafetensors } from '../formats/safetensors/write.js';
import { readShardedSafetensors, writeShardedSafetensors } from '../formats/safetensors/shard.js';
import { readTensorBundle } from '../formats/savedmodel/bundle/read.js';
import { readSavedModel } from '../formats/savedmodel/read.js';
import { caffeWeights, readCaffemodel } from '../formats/caffe/index.js';
import { AtomicFileSink, FileSource, siblingResolver } from './node.js';
import { openModelFile } from './open.js';

export interface OpenedWeights {
  set: WeightSet;
  /** The detected container format. */
  format: FormatName;
  /** Format-specific facts for `inspect` (e.g. the PyTorch pickle tree, unknown globals). */
  details: Record<string, unknown>;
  close(): Promise<void>;
}

export interface OpenWeightsOptions {
  /** PyTorch checkpoints: the (dotted) key of the state_dict to take. */
  key?: string;
}

/** Open any container modelsmith reads as a flat set of named tensors. */
export async function openWeights(path: string, opts: OpenWeightsOptions = {}): Promise<OpenedWeights> {
  const st = await stat(path).catch((e: unknown) => {
    throw new ModelsmithError(ErrorCodes.IO, `cannot open: ${(e as Error).message}`, { path, cause: e });
  });
  if (st.isDirectory()) {
    // A SavedModel folder: its variables, named by graph variable name, in TF's layouts.
    const files: FileSource[] = [];
    try {
      const sm = await readSavedModel(siblingResolver(join(path, 'saved_model.pb'), files), { path });
      return {
        // The parsed SavedModel rides along for converters that need more than the variables (Keras → PyTorch).
        set: sm.variables, format: 'savedmodel', details: { signatures: sm.signatures.map((x) => x.key), savedModel: sm },
        close: async () => { await Promise.all(files.map((f) => f.close().catch(() => undefined))); },
      };
    } catch (e) {
      await Promise.all(files.map((f) => f.close().catch(() => undefined)));
      throw e;
    }
  }
  const src = await FileSource.open(path);
  const opened: FileSource[] = [src];
  const close = async () => {
    await Promise.all(opened.map((f) => f.close().catch(() => undefined)));
  };
  try {
    const head = await src.read(0, Math.min(16, src.size));
    const info = requireReadable(detectFormat(head, basename(path)), path);
    let set: WeightSet;
    const details: Record<string, unknown> = {};
    switch (info.name) {
      case 'pytorch-zip':
      case 'pytorch-legacy': {
        const pt = await readPytorch(src, { path, ...(opts.key !== undefined ? { key: opts.key } : {}) });
        set = pt;
        Object.assign(details, { kind: pt.format, stateDictKeys: pt.stateDictKeys, selectedKey: pt.selectedKey, unknownGlobals: pt.unknownGlobals, tree: pt.tree });
        break;
      }
      case 'safetensors':
        set = await readSafetensors(src, { path });
        break;
      case 'safetensors-index':
        set = await readShardedSafetensors(src, siblingResolver(path, opened), { path });
        break;
      case 'tf-bundle': {
        const resolve = siblingResolver(path, opened);
        const stem = basename(path).replace(/\.index$/, '');
        set = await readTensorBundle(src, (i, n) => resolve(`${stem}.data-${String(i).padStart(5, '0')}-of-${String(n).padStart(5, '0')}`), { path });
        break;
      }
      case 'caffemodel':
        set = caffeWeights(await readCaffemodel(src, { path }));
        break;
      case 'onnx': {
        // ONNX models are read whole (protobuf); initializers become the set.
        await src.close();
        opened.splice(0, 1);
        const m = await openModelFile(path);
        return { set: onnxWeights(m.model), format: 'onnx', details, close: async () => { await m.close(); await close(); } };
      }
      default:
        throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `${info.name} files hold no weights by themselves (convert the model instead)`, { path });
    }
    return { set, format: info.name, details, close };
  } catch (e) {
    await close();
    throw e;
  }
}

function archiveName(output: string): string {
  const stem = basename(output).replace(/\.[^.]*$/, '');
  return /^[A-Za-z0-9_.-]+$/.test(stem) && stem !== '' ? stem : 'archive';
}

export type WeightOutputFormat = 'safetensors' | 'pytorch';

/** The weight container an output path asks for, by extension. */
export function weightOutputFormat(output: string): WeightOutputFormat | undefined {
  const lower = output.toLowerCase();
  if (lower.endsWith('.safetensors') || lower.endsWith('.safetensors.index.json')) return 'safetensors';
  if (/\.(pt|pth|bin|ckpt)$/.test(lower)) return 'pytorch';
  return undefined;
}

export interface SaveWeightsOptions {
  /** Paths that must never be overwritten (the inputs). */
  inputs?: string[];
  /** safetensors: split into shards of at most this many bytes (plus `<base>.safetensors.index.json`). */
  shardSize?: number;
  /** fsync each file before its rename (default true); see AtomicFileSinkOptions.sync for what `false` gives up. */
  sync?: boolean;
}

export interface SaveWeightsResult {
  format: WeightOutputFormat;
  files: string[];
  bytes: number;
  tensors: number;
}

/** Write a WeightSet as .safetensors (single or sharded) or .pt, atomically. */
export async function saveWeights(set: WeightSet, output: string, opts: SaveWeightsOptions = {}): Promise<SaveWeightsResult> {
  const format = weightOutputFormat(output);
  if (!format) {
    throw new ModelsmithError(ErrorCodes.USAGE, `cannot tell the weight format of '${output}': use .safetensors, .safetensors.index.json, .pt, .pth or .bin`, { path: output });
  }
  const inputs = opts.inputs ?? [];
  const sinkOpts = { sync: opts.sync ?? true };
  const sharded = format === 'safetensors' && (opts.shardSize !== undefined || output.toLowerCase().endsWith('.index.json'));
  if (sharded) {
    const folder = dirname(output);
    // Shards are a folder's worth of files: create it, as save_pretrained does.
    await mkdir(folder, { recursive: true });
    const baseName = basename(output).replace(/\.safetensors(\.index\.json)?$/i, '');
    const sinks: AtomicFileSink[] = [];
    try {
      const r = await writeShardedSafetensors(set, async (fileName) => {
        const sink = await AtomicFileSink.create(join(folder, fileName), inputs, sinkOpts);
        sinks.push(sink);
        return sink;
      }, { shardSize: opts.shardSize ?? 5 * 1024 ** 3, baseName });
      // Synced together rather than one after another; renamed only once all are on disk.
      await AtomicFileSink.commitAll(sinks);
      const bytes = sinks.reduce((a, s) => a + s.position, 0);
      return { format, files: r.files.map((f) => join(folder, f)), bytes, tensors: set.tensors.length };
    } catch (e) {
      await Promise.all(sinks.map((s) => s.abort()));
      throw e;
    }
  }
  const sink = await AtomicFileSink.create(output, inputs, sinkOpts);
  try {
    if (format === 'safetensors') await writeSafetensors(set, sink, { path: output });
    // torch.save names the archive folder after the file; loaders accept any name, but match it.
    else await writePytorch(set, sink, { archiveName: archiveName(output), path: output });
    await sink.commit();
    return { format, files: [output], bytes: sink.position, tensors: set.tensors.length };
  } catch (e) {
    await sink.abort();
    throw e;
  }
}
