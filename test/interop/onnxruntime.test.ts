/**
 * onnxruntime-node runs each corpus test model (node/, simple/, pytorch-*) on its test_data_set_0
 * inputs (decoded with our tensor.ts), original vs rewritten with external data; the outputs must be
 * byte-identical. The real models (models/, light/) run on deterministic synthetic inputs. Models ORT
 * cannot load or run, sequence/optional inputs and nondeterministic ops are skipped and counted.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { ValueInfoProto } from 'onnx-buf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeTensorProto, tensorFromProtoSync } from '../../src/formats/onnx/tensor.js';
import type { Tensor } from '../../src/core/tensor.js';
import type { OnnxModel } from '../../src/formats/onnx/read.js';
import { CORPUS_ONNX, corpusName, corpusOnnxFiles, openModel, rng, writeModelFile } from '../formats/onnx/helpers.js';

type OrtType = keyof ort.Tensor.DataTypeMap;
const ORT_TYPES: Partial<Record<Tensor['dtype'], OrtType>> = {
  float32: 'float32', uint8: 'uint8', int8: 'int8', uint16: 'uint16', int16: 'int16', int32: 'int32', int64: 'int64',
  string: 'string', bool: 'bool', float16: 'float16', float64: 'float64', uint32: 'uint32', uint64: 'uint64',
};

function toOrt(t: Tensor): ort.Tensor | undefined {
  const type = ORT_TYPES[t.dtype];
  if (!type) return undefined;
  if (type === 'string') return new ort.Tensor('string', (t.strings ?? []).map((s) => new TextDecoder().decode(s)), t.shape);
  const copy = t.data.slice(); // aligned, owned
  const b = copy.buffer;
  const n = t.shape.reduce((a, d) => a * d, 1);
  const data: ort.Tensor.DataType = (() => {
    switch (type) {
      case 'float32': return new Float32Array(b, 0, n);
      case 'uint8': case 'bool': return new Uint8Array(b, 0, n);
      case 'int8': return new Int8Array(b, 0, n);
      case 'uint16': case 'float16': return new Uint16Array(b, 0, n);
      case 'int16': return new Int16Array(b, 0, n);
      case 'int32': return new Int32Array(b, 0, n);
      case 'int64': return new BigInt64Array(b, 0, n);
      case 'float64': return new Float64Array(b, 0, n);
      case 'uint32': return new Uint32Array(b, 0, n);
      case 'uint64': return new BigUint64Array(b, 0, n);
      default: throw new Error(type);
    }
  })();
  return new ort.Tensor(type, data as never, t.shape);
}

/** Bytes of an output for comparison (strings as JSON). */
function outputBytes(t: ort.Tensor): Buffer {
  if (t.type === 'string') return Buffer.from(JSON.stringify(t.data));
  const d = t.data as ArrayBufferView;
  return Buffer.concat([Buffer.from(JSON.stringify([t.type, t.dims])), Buffer.from(d.buffer, d.byteOffset, d.byteLength)]);
}

async function runOnce(model: string | Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Buffer[]> {
  const opts: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3 };
  const session = typeof model === 'string' ? await ort.InferenceSession.create(model, opts) : await ort.InferenceSession.create(model, opts);
  try {
    const out = await session.run(feeds);
    return session.outputNames.map((n) => outputBytes(out[n]!));
  } finally {
    await session.release();
  }
}

function graphInputs(model: OnnxModel): ValueInfoProto[] {
  const g = model.proto.graph!;
  const inits = new Set(g.initializer.map((t) => t.name));
  return g.input.filter((v) => !inits.has(v.name));
}

/** Feeds from test_data_set_0/input_*.pb, or undefined when an input is not a plain tensor ORT takes. */
function feedsFromPb(model: OnnxModel, dataDir: string): Record<string, ort.Tensor> | string {
  const names = readdirSync(dataDir).filter((n) => /^input_\d+\.pb$/.test(n)).sort((a, b) => parseInt(a.slice(6)) - parseInt(b.slice(6)));
  const inputs = graphInputs(model);
  const feeds: Record<string, ort.Tensor> = {};
  for (const [i, n] of names.entries()) {
    const vi = inputs[i];
    if (!vi) return 'more input files than graph inputs';
    if (vi.type?.value.case !== 'tensorType') return `input ${vi.name} is ${vi.type?.value.case ?? 'untyped'}`;
    let t: Tensor;
    try {
      t = tensorFromProtoSync(decodeTensorProto(readFileSync(join(dataDir, n)), n));
    } catch (e) {
      return `cannot decode ${n}: ${(e as Error).message}`;
    }
    const o = toOrt(t);
    if (!o) return `dtype ${t.dtype} has no onnxruntime-node tensor type`;
    feeds[vi.name] = o;
  }
  return feeds;
}

/** Deterministic inputs from the declared types (unknown dims = 1). */
function syntheticFeeds(model: OnnxModel, seed: number): Record<string, ort.Tensor> | string {
  const r = rng(seed);
  const feeds: Record<string, ort.Tensor> = {};
  for (const vi of graphInputs(model)) {
    const tt = vi.type?.value.case === 'tensorType' ? vi.type.value.value : undefined;
    if (!tt) return `input ${vi.name} is not a tensor`;
    const shape = (tt.shape?.dim ?? []).map((d) => (d.value.case === 'dimValue' ? Number(d.value.value) : 1));
    const n = shape.reduce((a, d) => a * d, 1);
    switch (tt.elemType) {
      case 1: feeds[vi.name] = new ort.Tensor('float32', Float32Array.from({ length: n }, () => r() * 2 - 1), shape); break;
      case 7: feeds[vi.name] = new ort.Tensor('int64', BigInt64Array.from({ length: n }, () => BigInt(Math.floor(r() * 4))), shape); break;
      case 6: feeds[vi.name] = new ort.Tensor('int32', Int32Array.from({ length: n }, () => Math.floor(r() * 4)), shape); break;
      case 9: feeds[vi.name] = new ort.Tensor('bool', Uint8Array.from({ length: n }, () => (r() < 0.5 ? 1 : 0)), shape); break;
      default: return `input ${vi.name} has elem_type ${tt.elemType}`;
    }
  }
  return feeds;
}

function testDirs(): { model: string; data?: string }[] {
  const out: { model: string; data?: string }[] = [];
  for (const f of corpusOnnxFiles()) {
    const top = corpusName(f).split(/[\\/]/)[0]!;
    const data = join(dirname(f), 'test_data_set_0');
    if (['node', 'simple', 'pytorch-converted', 'pytorch-operator'].includes(top)) {
      if (existsSync(data) && readdirSync(data).some((n) => n.startsWith('input_'))) out.push({ model: f, data });
    } else out.push({ model: f });
  }
  return out;
}

let tmp: string;
const cases = testDirs();
const skipped = new Map<string, number>();
const ran = { withData: 0, synthetic: 0, variants: 0 };
const skip = (why: string): void => {
  const k = why.replace(/\d+/g, 'N').slice(0, 100);
  skipped.set(k, (skipped.get(k) ?? 0) + 1);
};

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'modelsmith-onnx-ort-'));
});
afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
  const total = [...skipped.values()].reduce((a, b) => a + b, 0);
  console.log(
    `[onnxruntime ${ort.env.versions.common}] ${cases.length} candidate models: ${ran.withData} ran on their test data, ${ran.synthetic} on synthetic inputs ` +
      `(${ran.variants} rewritten variants compared byte-identically); ${total} skipped:\n` +
      [...skipped].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([k, v]) => `    ${v} × ${k}`).join('\n'),
  );
});

describe('onnxruntime: rewritten models give byte-identical outputs', () => {
  it.each(cases.map((c) => [corpusName(c.model), c] as const))('%s', async (name, c) => {
    const { model, close } = await openModel(c.model);
    try {
      // onnxruntime-node crashes (SIGSEGV) when a graph output is a sequence/optional/map: skip those.
      const nonTensor = model.proto.graph?.output.find((o) => o.type?.value.case !== 'tensorType');
      if (nonTensor) return skip(`output ${nonTensor.name} is ${nonTensor.type?.value.case ?? 'untyped'}`);
      const feeds = c.data ? feedsFromPb(model, c.data) : syntheticFeeds(model, name.length);
      if (typeof feeds === 'string') return skip(feeds);
      const original = new Uint8Array(readFileSync(c.model));
      let ref: Buffer[];
      try {
        ref = await runOnce(original, feeds);
      } catch (e) {
        return skip(`ORT cannot run the original: ${(e as Error).message.split('\n')[0]!.replace(/^.*?\] /, '').slice(0, 80)}`);
      }
      const again = await runOnce(original, feeds);
      if (again.some((b, i) => !b.equals(ref[i]!))) return skip('nondeterministic outputs');
      if (c.data) ran.withData++;
      else ran.synthetic++;

      const dir = join(tmp, name.replace(/[\\/]/g, '__'));
      const variants = [
        await writeModelFile(model, join(dir, 'inline'), 'model.onnx', { streamThreshold: 0 }),
        await writeModelFile(model, join(dir, 'ext'), 'model.onnx', { external: true }),
        // Every initializer external. (Not tensor attributes: ORT's shape inference refuses external
        // data in Constant values — "Cannot parse data from external tensors".)
        await writeModelFile(model, join(dir, 'ext0'), 'model.onnx', { external: true, threshold: 0 }),
      ];
      for (const v of variants) {
        const got = await runOnce(v.path, feeds);
        expect(got.length).toBe(ref.length);
        got.forEach((b, i) => {
          if (!b.equals(ref[i]!)) throw new Error(`output ${i} of ${v.path} differs:\n ${ref[i]!.toString('hex').slice(0, 400)}\n ${b.toString('hex').slice(0, 400)}`);
        });
        ran.variants++;
      }
    } finally {
      await close();
    }
  });

  it('ran a substantial number of models', () => {
    expect(ran.withData).toBeGreaterThan(120);
    expect(ran.synthetic).toBeGreaterThan(8);
  });
});

export { CORPUS_ONNX };
