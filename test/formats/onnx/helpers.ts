/** Shared by the ONNX codec tests and the interop tests. */
import { readdirSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clone, toBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema, type ModelProto } from 'onnx-buf';
import { AtomicFileSink, FileSource, siblingResolver } from '../../../src/platform/node.js';
import { readOnnx, type OnnxModel } from '../../../src/formats/onnx/read.js';
import { writeOnnx, type WriteOnnxOptions, type WriteOnnxStats } from '../../../src/formats/onnx/write.js';
import { collectTensors, modelTensorContext, tensorFromProto } from '../../../src/formats/onnx/tensor.js';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const CORPUS_ONNX = resolve(REPO_ROOT, '../shared/corpus/onnx');

export function listFiles(dir: string, suffix: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (name.endsWith(suffix)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

export function corpusOnnxFiles(): string[] {
  return listFiles(CORPUS_ONNX, '.onnx');
}

export function corpusName(p: string): string {
  return relative(CORPUS_ONNX, p);
}

/** Reads a model file with a sibling resolver; the opened files are closed by `close()`. */
export async function openModel(path: string): Promise<{ model: OnnxModel; close: () => Promise<void> }> {
  const opened: FileSource[] = [];
  const src = await FileSource.open(path);
  try {
    const model = await readOnnx(src, { path, siblings: siblingResolver(path, opened) });
    return {
      model,
      close: async () => {
        await src.close();
        for (const s of opened) await s.close();
      },
    };
  } catch (e) {
    await src.close();
    throw e;
  }
}

/** Writes `model` to `<dir>/<name>` (+ `<name>.data` when external) through atomic file sinks. */
export async function writeModelFile(
  model: OnnxModel,
  dir: string,
  name: string,
  opts: { external?: boolean; threshold?: number; attributes?: boolean; streamThreshold?: number } = {},
): Promise<{ path: string; stats: WriteOnnxStats }> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, name);
  const sink = await AtomicFileSink.create(path);
  const dataSink = opts.external ? await AtomicFileSink.create(`${path}.data`) : undefined;
  try {
    const wo: WriteOnnxOptions = {};
    if (opts.streamThreshold !== undefined) wo.streamThreshold = opts.streamThreshold;
    if (dataSink) {
      wo.externalData = { location: `${name}.data`, sink: dataSink };
      if (opts.threshold !== undefined) wo.externalData.threshold = opts.threshold;
      if (opts.attributes !== undefined) wo.externalData.attributes = opts.attributes;
    }
    const stats = await writeOnnx(model, sink, wo);
    await sink.commit();
    await dataSink?.commit();
    return { path, stats };
  } catch (e) {
    await sink.abort();
    await dataSink?.abort();
    throw e;
  }
}

/**
 * The model's bytes with every tensor payload removed (raw_data, typed fields, external-data
 * entries, data_location): what must survive any rewrite unchanged.
 */
export function normalisedGraphBytes(proto: ModelProto): Uint8Array {
  const c = clone(ModelProtoSchema, proto);
  for (const e of collectTensors(c)) {
    const tp = e.proto;
    delete (tp as { rawData?: unknown }).rawData;
    delete (tp as { dataLocation?: unknown }).dataLocation;
    tp.externalData = [];
    tp.floatData = [];
    tp.int32Data = [];
    tp.int64Data = [];
    tp.doubleData = [];
    tp.uint64Data = [];
  }
  return toBinary(ModelProtoSchema, c);
}

/** Normalised payload bytes of every tensor (strings joined with their lengths), in model order. */
export async function tensorPayloads(model: OnnxModel): Promise<{ name: string; bytes: Uint8Array }[]> {
  const ctx = modelTensorContext(model);
  const out: { name: string; bytes: Uint8Array }[] = [];
  for (const e of collectTensors(model)) {
    const t = await tensorFromProto(e.proto, ctx);
    if (t.dtype === 'string') {
      const parts = (t.strings ?? []).map((s) => [...new TextEncoder().encode(`${s.byteLength}:`), ...s]);
      out.push({ name: e.name, bytes: Uint8Array.from(parts.flat()) });
    } else out.push({ name: e.name, bytes: t.data });
  }
  return out;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Deterministic PRNG (mulberry32), the same one eval uses for random inputs. */
export { mulberry32 as rng } from '../../../src/eval/inputs.js';
