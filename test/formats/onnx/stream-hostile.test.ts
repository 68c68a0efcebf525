/**
 * The streaming ONNX reader and quantizer on hostile and unusual input: every failure is a
 * ModelsmithError with a stable code, the file name and (where known) the byte offset; nothing hangs
 * or escapes as a RangeError/TypeError. Also: a lazy open reads only the graph, not the payloads.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import { AttributeProtoSchema, AttributeProto_AttributeType, GraphProtoSchema, ModelProtoSchema, NodeProtoSchema, OperatorSetIdProtoSchema } from 'onnx-buf';
import { describe, expect, it } from 'vitest';
import { ErrorCodes, ModelsmithError } from '../../../src/core/errors.js';
import { quantizeWeights } from '../../../src/compress/quantize/weight.js';
import { quantizeOnnxSource, quantizeOnnxStream } from '../../../src/compress/quantize/weight-stream.js';
import { float32TensorProto, tensorValueInfo } from '../../../src/formats/onnx/build.js';
import { readOnnx } from '../../../src/formats/onnx/read.js';
import { collectTensors, tensorFromProto } from '../../../src/formats/onnx/tensor.js';
import { encodeVarint, lengthDelimitedHeader } from '../../../src/formats/onnx/wire.js';
import { writeOnnx } from '../../../src/formats/onnx/write.js';
import { readOnnxLazy } from '../../../src/formats/onnx/stream/lazy.js';
import { scanOnnxStream } from '../../../src/formats/onnx/stream/scan.js';
import { MemorySink, MemorySource, type ByteSource } from '../../../src/io/source.js';
import { ForwardStreamSource } from '../../../src/platform/web.js';

const MODELS = resolve(import.meta.dirname, '../../../../shared/corpus/onnx/models');
const INT8 = { dtype: 'int8', perChannel: true, symmetric: true } as const;

const cat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
};
const msg = (field: number, ...body: Uint8Array[]): Uint8Array => {
  const b = cat(...body);
  return cat(lengthDelimitedHeader(field, b.byteLength), b);
};
const varintField = (field: number, v: number): Uint8Array => cat(encodeVarint(field * 8), encodeVarint(v));
const str = (field: number, s: string): Uint8Array => msg(field, new TextEncoder().encode(s));

/** TensorProto fields of a float32 [n, n] tensor up to (not including) raw_data. */
const tensorHead = (name: string, n: number): Uint8Array => cat(varintField(1, n), varintField(1, n), varintField(2, 1), str(8, name));

function forward(bytes: Uint8Array, name: string, chunk = 4096): ForwardStreamSource {
  let o = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (o >= bytes.byteLength) return c.close();
      c.enqueue(bytes.slice(o, o + chunk));
      o += chunk;
    },
  });
  return new ForwardStreamSource(stream, bytes.byteLength, name);
}

async function failure(p: Promise<unknown>): Promise<ModelsmithError> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e, 'expected a failure').toBeInstanceOf(ModelsmithError);
  return e as ModelsmithError;
}

async function scanError(bytes: Uint8Array, name = 'bad.onnx'): Promise<ModelsmithError> {
  return failure(scanOnnxStream(new MemorySource(bytes, name), { threshold: 16 }));
}

/** A small MatMul model: x [1, n] → MatMul(W) → y, opset 13, fields in protobuf order. */
function matmulModel(n = 64, extraNodes: ReturnType<typeof create<typeof NodeProtoSchema>>[] = []) {
  const w = Float32Array.from({ length: n * n }, (_, i) => Math.sin(i) * 0.1);
  return create(ModelProtoSchema, {
    irVersion: 8n,
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 13n })],
    graph: create(GraphProtoSchema, {
      name: 'g',
      node: [create(NodeProtoSchema, { opType: 'MatMul', name: 'mm', input: ['x', 'W'], output: ['y'] }), ...extraNodes],
      initializer: [float32TensorProto('W', [n, n], w)],
      input: [tensorValueInfo('x', [1, n])],
      output: [tensorValueInfo('y', [1, n])],
    }),
  });
}

describe('scanOnnxStream: hostile bytes', () => {
  it('E_TRUNCATED: empty file, a record or a raw_data payload running past the end (with its offset)', async () => {
    let e = await scanError(new Uint8Array(0), 'empty.onnx');
    expect([e.code, e.path, e.offset]).toEqual([ErrorCodes.TRUNCATED, 'empty.onnx', 0]);
    e = await scanError(cat(varintField(1, 8), lengthDelimitedHeader(7, 1000), new Uint8Array(10)));
    expect([e.code, e.offset]).toEqual([ErrorCodes.TRUNCATED, 2]);
    expect(e.message).toMatch(/GraphProto|graph/);
    // raw_data announcing 1 MiB, file ends after 100 bytes of it; the enclosing lengths are consistent.
    const tensor = cat(tensorHead('W', 512), lengthDelimitedHeader(9, 512 * 512 * 4), new Uint8Array(100));
    const graph = cat(lengthDelimitedHeader(5, tensor.byteLength + 512 * 512 * 4 - 100), tensor);
    const file = cat(lengthDelimitedHeader(7, graph.byteLength + 512 * 512 * 4 - 100), graph);
    // The outermost record (the graph) is the first to overrun the end: that is where it is reported.
    e = await scanError(file);
    expect([e.code, e.offset]).toEqual([ErrorCodes.TRUNCATED, 0]);
    expect(e.message).toMatch(/ModelProto\.graph \(\d+ bytes\) runs past the end/);
    e = await failure(scanOnnxStream(forward(file, 'body.onnx'), { threshold: 16 }));
    expect([e.code, e.path]).toEqual([ErrorCodes.TRUNCATED, 'body.onnx']);
  });

  it('E_MALFORMED: bad wire types, field number 0, stray end-group, overruns, bad varints', async () => {
    let e = await scanError(cat(encodeVarint(7 * 8 + 0), encodeVarint(5)));
    expect([e.code, e.offset]).toEqual([ErrorCodes.MALFORMED, 0]);
    expect(e.message).toMatch(/ModelProto\.graph has wire type 0/);
    e = await scanError(Uint8Array.of(0x02, 0x00));
    expect(e.code).toBe(ErrorCodes.MALFORMED);
    expect(e.message).toMatch(/field number 0/);
    e = await scanError(cat(varintField(1, 8), encodeVarint(7 * 8 + 4)));
    expect([e.code, e.offset]).toEqual([ErrorCodes.MALFORMED, 2]);
    e = await scanError(cat(varintField(1, 8), encodeVarint(99 * 8 + 7)));
    expect(e.code).toBe(ErrorCodes.MALFORMED);
    // raw_data overrunning its TensorProto (inside the file): corruption, not truncation.
    const tensor = cat(tensorHead('W', 4), lengthDelimitedHeader(9, 64), new Uint8Array(64));
    e = await scanError(cat(msg(7, lengthDelimitedHeader(5, tensor.byteLength - 32), tensor)));
    expect(e.code).toBe(ErrorCodes.MALFORMED);
    expect(e.message).toMatch(/raw_data of tensor 'W' \(64 bytes\) overruns its TensorProto/);
    // An 11-byte varint.
    e = await scanError(cat(encodeVarint(8), new Uint8Array(10).fill(0x80), Uint8Array.of(1)));
    expect(e.code).toBe(ErrorCodes.MALFORMED);
    // A verbatim record (graph.input ValueInfoProto) with garbage inside: offset in the file.
    const vi = cat(encodeVarint(2 * 8 + 2), encodeVarint(50));
    e = await scanError(msg(7, str(2, 'g'), msg(11, vi)));
    expect(e.code).toBe(ErrorCodes.MALFORMED);
    expect(e.offset).toBe(2 + 3 + 2);
    expect(e.message).toMatch(/GraphProto\.input: .*overruns its ValueInfoProto record/);
  });

  it('E_MALFORMED for raw_data together with external data; E_UNSUPPORTED for raw_data twice', async () => {
    const payload = cat(lengthDelimitedHeader(9, 64), new Uint8Array(64));
    let e = await scanError(msg(7, msg(5, tensorHead('W', 4), payload, varintField(14, 1))));
    expect([e.code, e.message]).toEqual([ErrorCodes.MALFORMED, expect.stringMatching(/'W'.*both raw_data and external/)]);
    e = await scanError(msg(7, msg(5, tensorHead('W', 4), payload, payload)));
    expect(e.code).toBe(ErrorCodes.UNSUPPORTED);
    expect(e.message).toMatch(/'W' has raw_data twice/);
  });

  it('E_LIMIT: nesting deeper than the limit (subgraph in subgraph …), and files of 2 GiB', async () => {
    let g = msg(2, new TextEncoder().encode('leaf'));
    for (let i = 0; i < 200; i++) g = msg(1, msg(5, msg(6, g))); // graph.node.attribute.g
    const e = await scanError(msg(7, g));
    expect(e.code).toBe(ErrorCodes.LIMIT);
    expect(e.message).toMatch(/nesting/);
    const huge: ByteSource = { size: 2 ** 31, name: 'huge.onnx', read: async () => new Uint8Array(0), readInto: async () => undefined };
    const e2 = await failure(scanOnnxStream(huge));
    expect([e2.code, e2.path]).toEqual([ErrorCodes.LIMIT, 'huge.onnx']);
    // Millions of empty records are cheap on disk, not in memory: capped while reading.
    const nodes = new Uint8Array(200_000).fill(0).map((_, i) => (i % 2 === 0 ? 0x0a : 0));
    const e4 = await failure(scanOnnxStream(new MemorySource(msg(7, nodes), 'many.onnx'), { limits: { maxHeapEstimate: 1 << 20 } }));
    expect([e4.code, e4.path]).toEqual([ErrorCodes.LIMIT, 'many.onnx']);
    expect(e4.message).toMatch(/too many records/);
    const e3 = await failure(scanOnnxStream(new MemorySource(Uint8Array.of(8, 1)), { threshold: 0 }));
    expect(e3.code).toBe(ErrorCodes.USAGE);
  });

  it('truncations and byte flips of a real model never escape as anything but a ModelsmithError', async () => {
    const bytes = readFileSync(resolve(MODELS, 'openwakeword/hey_rhasspy_v0.1.onnx'));
    let s = 7;
    const rand = (n: number): number => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      return s % n;
    };
    const codes = new Map<string, number>();
    const tryOne = async (b: Uint8Array, fwd: boolean): Promise<void> => {
      const src = fwd ? forward(b, 'fuzz.onnx') : new MemorySource(b, 'fuzz.onnx');
      try {
        await quantizeOnnxStream(src, new MemorySink(), { ...INT8, lazyThreshold: 256, access: fwd ? 'forward' : 'random' });
        codes.set('ok', (codes.get('ok') ?? 0) + 1);
      } catch (e) {
        if (!(e instanceof ModelsmithError)) throw new Error(`not a ModelsmithError: ${String(e)}`, { cause: e });
        expect(e.path).toBe('fuzz.onnx');
        codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
      }
    };
    for (let i = 0; i < 40; i++) await tryOne(bytes.subarray(0, rand(bytes.byteLength)), i % 2 === 0);
    for (let i = 0; i < 120; i++) {
      const b = bytes.slice();
      // Flips in the first KiB hit the graph structure rather than weight bytes.
      for (let k = 0; k < 3; k++) b[i % 3 === 0 ? rand(b.byteLength) : rand(1024)] = rand(256);
      await tryOne(b, i % 2 === 1);
    }
    expect(codes.get(ErrorCodes.TRUNCATED)).toBeGreaterThan(10);
    expect(codes.get(ErrorCodes.MALFORMED) ?? 0).toBeGreaterThan(0);
  });
});

describe('readOnnxLazy / quantizeOnnxSource behaviour', () => {
  it('opens a model reading only its graph: payloads are read when written', async () => {
    const n = 512;
    const m = matmulModel(n);
    m.graph!.initializer = Array.from({ length: 8 }, (_, i) => float32TensorProto(`W${i}`, [n, n], new Float32Array(n * n).fill(i)));
    const bytes = toBinary(ModelProtoSchema, m);
    let read = 0;
    const inner = new MemorySource(bytes, 'count.onnx');
    const counting: ByteSource = {
      size: inner.size, name: inner.name,
      read: (o, l) => { read += l; return inner.read(o, l); },
      readInto: (o, t) => { read += t.byteLength; return inner.readInto(o, t); },
    };
    const lazy = await readOnnxLazy(counting);
    expect(lazy.scan.payloads.map((p) => p.decision)).toEqual(new Array(8).fill('lazy'));
    expect(read).toBeLessThan(bytes.byteLength / 10);
    const sink = new MemorySink();
    await writeOnnx(lazy, sink);
    expect(Buffer.from(sink.bytes()).equals(Buffer.from(bytes))).toBe(true);
    expect(read).toBeGreaterThan(bytes.byteLength);
  });

  it('a payload used up by a hook cannot be read later (E_UNSUPPORTED); external data needs a folder (E_EXTERNAL_DATA)', async () => {
    const bytes = toBinary(ModelProtoSchema, matmulModel());
    const lazy = await readOnnxLazy(forward(bytes, 'once.onnx'), { threshold: 1024, keep: 'hold', onPayload: async () => 'consumed' });
    const w = collectTensors(lazy).find((t) => t.name === 'W')!;
    const e = await failure(tensorFromProto(w.proto, { path: lazy.path, siblings: lazy.siblings! }));
    expect([e.code, e.path]).toEqual([ErrorCodes.UNSUPPORTED, 'once.onnx']);
    // A model whose own tensor is external: the lazy resolver passes the name on, and there is no folder.
    const ext = matmulModel();
    const t = ext.graph!.initializer[0]!;
    delete (t as Partial<typeof t>).rawData;
    t.dataLocation = 1;
    t.externalData = [create((await import('onnx-buf')).StringStringEntryProtoSchema, { key: 'location', value: 'w.bin' })];
    const e2 = await failure(quantizeOnnxSource(new MemorySource(toBinary(ModelProtoSchema, ext), 'ext.onnx'), INT8));
    expect(e2.code).toBe(ErrorCodes.EXTERNAL_DATA);
  });

  it('nodes after the initializers (not protobuf order): forward access keeps the weight and still matches', async () => {
    const m = matmulModel();
    const bytes = toBinary(ModelProtoSchema, m);
    // Re-order the graph: initializer records first, then the rest.
    const g = m.graph!;
    const inits = toBinary(GraphProtoSchema, create(GraphProtoSchema, { initializer: g.initializer }));
    const rest = toBinary(GraphProtoSchema, create(GraphProtoSchema, { ...g, initializer: [] }));
    const head = toBinary(ModelProtoSchema, create(ModelProtoSchema, { irVersion: m.irVersion, opsetImport: m.opsetImport }));
    const reordered = cat(head, msg(7, inits, rest));
    const want = new MemorySink();
    const eager = await readOnnx(new MemorySource(reordered));
    await quantizeWeights(eager, INT8);
    await writeOnnx(eager, want);
    const got = new MemorySink();
    const r = await quantizeOnnxStream(forward(reordered, 'reordered.onnx'), got, { ...INT8, access: 'forward', lazyThreshold: 1024 });
    expect(r.payloads).toMatchObject({ consumed: 0, held: 1 });
    expect(r.report.quantized).toHaveLength(1);
    expect(Buffer.from(got.bytes()).equals(Buffer.from(want.bytes()))).toBe(true);
    // In protobuf order the same weight is quantized as it passes.
    const r2 = await quantizeOnnxStream(forward(bytes, 'ordered.onnx'), new MemorySink(), { ...INT8, access: 'forward', lazyThreshold: 1024 });
    expect(r2.payloads).toMatchObject({ consumed: 1, held: 0 });
  });

  it('big records that stay in the graph (typed float_data, 400 KB) are read forward across chunk borders', async () => {
    const m = matmulModel(320);
    const w = m.graph!.initializer[0]!;
    w.floatData = Array.from(new Float32Array(w.rawData.buffer, w.rawData.byteOffset, 320 * 320));
    delete (w as Partial<typeof w>).rawData;
    const bytes = toBinary(ModelProtoSchema, m);
    const want = new MemorySink();
    const eager = await readOnnx(new MemorySource(bytes));
    expect((await quantizeWeights(eager, INT8)).report.quantized).toHaveLength(1);
    await writeOnnx(eager, want);
    for (const chunk of [1000, 65536, 1 << 20]) {
      const got = new MemorySink();
      const r = await quantizeOnnxStream(forward(bytes, 'typed.onnx', chunk), got, { ...INT8, access: 'forward' });
      expect(r.payloads).toEqual({ consumed: 0, held: 0, heldBytes: 0, lazy: 0 });
      expect(Buffer.from(got.bytes()).equals(Buffer.from(want.bytes())), `chunk ${chunk}`).toBe(true);
    }
  });

  it('forward access refuses what it cannot undo (E_UNSUPPORTED) and caps memory (E_LIMIT)', async () => {
    // A later consumer excludes a weight already quantized as it passed.
    const gemm = create(NodeProtoSchema, { opType: 'Gemm', name: 'late', input: ['x', 'W'], output: ['z'] });
    const m = matmulModel(64);
    const g = m.graph!;
    const head = toBinary(ModelProtoSchema, create(ModelProtoSchema, { irVersion: m.irVersion }));
    const tail = toBinary(ModelProtoSchema, create(ModelProtoSchema, { opsetImport: m.opsetImport }));
    const graph = cat(toBinary(GraphProtoSchema, create(GraphProtoSchema, { node: g.node, initializer: g.initializer })), toBinary(GraphProtoSchema, create(GraphProtoSchema, { node: [gemm], input: g.input, output: g.output })));
    const file = cat(head, msg(7, graph), tail);
    let e = await failure(quantizeOnnxSource(forward(file, 'late.onnx'), { ...INT8, access: 'forward', lazyThreshold: 1024, exclude: { opTypes: ['Gemm'] } }));
    expect([e.code, e.path, e.tensor]).toEqual([ErrorCodes.UNSUPPORTED, 'late.onnx', 'W']);
    // …while random access handles it like quantizeWeights (excluded).
    const ok = await quantizeOnnxSource(new MemorySource(file, 'late.onnx'), { ...INT8, lazyThreshold: 1024, exclude: { opTypes: ['Gemm'] } });
    expect(ok.report.skipped.map((s) => s.reason)).toEqual(['excluded']);
    // opset < 7 is only known at the end of the file.
    const old = matmulModel(64);
    old.opsetImport[0]!.version = 6n;
    e = await failure(quantizeOnnxSource(forward(toBinary(ModelProtoSchema, old), 'old.onnx'), { ...INT8, access: 'forward', lazyThreshold: 1024 }));
    expect(e.code).toBe(ErrorCodes.UNSUPPORTED);
    expect(e.message).toMatch(/opset 6/);
    const bytes = toBinary(ModelProtoSchema, matmulModel(64));
    e = await failure(quantizeOnnxSource(forward(bytes, 'cap.onnx'), { ...INT8, access: 'forward', lazyThreshold: 1024, maxTensorBytes: 1000 }));
    expect([e.code, e.tensor, e.path]).toEqual([ErrorCodes.LIMIT, 'W', 'cap.onnx']);
    expect(e.offset).toBeGreaterThan(0);
    e = await failure(quantizeOnnxSource(forward(bytes, 'kept.onnx'), { ...INT8, access: 'forward', lazyThreshold: 1024, maxKeptBytes: 100 }));
    expect(e.code).toBe(ErrorCodes.LIMIT);
    expect(e.message).toMatch(/kept in memory/);
  });

  it('checks its options: E_USAGE, E_UNSUPPORTED', async () => {
    const src = () => new MemorySource(toBinary(ModelProtoSchema, matmulModel()), 'o.onnx');
    expect((await failure(quantizeOnnxSource(src(), { ...INT8, access: 'sideways' as 'random' }))).code).toBe(ErrorCodes.USAGE);
    expect((await failure(quantizeOnnxSource(src(), { ...INT8, dtype: 'int3' as 'int8', access: 'forward' }))).code).toBe(ErrorCodes.UNSUPPORTED);
    expect((await failure(quantizeOnnxSource(src(), { ...INT8, minElements: 0, access: 'forward' }))).code).toBe(ErrorCodes.USAGE);
  });

  it('subgraph weights (If branches) are quantized as they pass in forward mode, same bytes', async () => {
    const branch = (name: string) => create(GraphProtoSchema, {
      name,
      node: [create(NodeProtoSchema, { opType: 'MatMul', input: ['x', `B_${name}`], output: [`o_${name}`] })],
      initializer: [float32TensorProto(`B_${name}`, [64, 64], Float32Array.from({ length: 4096 }, (_, i) => Math.cos(i + name.length)))],
      output: [tensorValueInfo(`o_${name}`, [1, 64])],
    });
    const m = matmulModel(64, [
      create(NodeProtoSchema, {
        opType: 'If', name: 'if', input: ['c'], output: ['z'],
        attribute: [
          create(AttributeProtoSchema, { name: 'then_branch', type: AttributeProto_AttributeType.GRAPH, g: branch('then') }),
          create(AttributeProtoSchema, { name: 'else_branch', type: AttributeProto_AttributeType.GRAPH, g: branch('else_') }),
        ],
      }),
    ]);
    const bytes = toBinary(ModelProtoSchema, m);
    const want = new MemorySink();
    const eager = await readOnnx(new MemorySource(bytes));
    const { report } = await quantizeWeights(eager, INT8);
    expect(report.quantized).toHaveLength(3);
    await writeOnnx(eager, want);
    const got = new MemorySink();
    const r = await quantizeOnnxStream(forward(bytes, 'if.onnx'), got, { ...INT8, access: 'forward', lazyThreshold: 1024 });
    expect(r.payloads.consumed).toBe(3);
    expect(Buffer.from(got.bytes()).equals(Buffer.from(want.bytes()))).toBe(true);
  });
});
