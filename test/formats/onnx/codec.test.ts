/**
 * Unit tests of the ONNX codec: typed-field normalisation (incl. bit patterns and sub-byte packing),
 * the streaming writer, external data layout, preservation of everything that is not a tensor
 * payload, tensor listing, summary and sniffing.
 */
import { readFileSync } from 'node:fs';
import { create, fromBinary, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  FunctionProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  SparseTensorProtoSchema,
  StringStringEntryProtoSchema,
  TensorProtoSchema,
  TrainingInfoProtoSchema,
  ValueInfoProtoSchema,
  type ModelProto,
  type TensorProto,
} from 'onnx-buf';
import { describe, expect, it } from 'vitest';
import { MemorySink, MemorySource } from '../../../src/io/source.js';
import { decodeOnnx, onnxModel, readOnnx } from '../../../src/formats/onnx/read.js';
import { encodeOnnx, writeOnnx } from '../../../src/formats/onnx/write.js';
import { summarizeOnnx } from '../../../src/formats/onnx/summary.js';
import { collectTensors, externalDataRef, tensorFromProto, tensorFromProtoSync, tensorToProto } from '../../../src/formats/onnx/tensor.js';
import { sniffOnnx } from '../../../src/formats/onnx/index.js';
import { corpusOnnxFiles, normalisedGraphBytes, sameBytes } from './helpers.js';

function tp(init: MessageInitShape<typeof TensorProtoSchema>): TensorProto {
  return create(TensorProtoSchema, { name: 't', ...init });
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

describe('typed fields → little-endian bytes', () => {
  it('float16 / bfloat16 / float8 bit patterns in int32_data', () => {
    expect(hex(tensorFromProtoSync(tp({ dataType: 10, dims: [3n], int32Data: [0x3c00, 0xc000, 0x7c00] })).data)).toBe('003c00c0007c');
    expect(hex(tensorFromProtoSync(tp({ dataType: 16, dims: [2n], int32Data: [0x3f80, 0xbf80] })).data)).toBe('803f80bf');
    expect(hex(tensorFromProtoSync(tp({ dataType: 17, dims: [2n], int32Data: [0x38, 0xb8] })).data)).toBe('38b8');
    expect(hex(tensorFromProtoSync(tp({ dataType: 24, dims: [1n], int32Data: [127] })).data)).toBe('7f');
  });

  it('small integers, bool, negative values (two’s complement)', () => {
    expect(hex(tensorFromProtoSync(tp({ dataType: 3, dims: [3n], int32Data: [-1, -128, 127] })).data)).toBe('ff807f');
    expect(hex(tensorFromProtoSync(tp({ dataType: 5, dims: [2n], int32Data: [-2, 258] })).data)).toBe('feff0201');
    expect(hex(tensorFromProtoSync(tp({ dataType: 9, dims: [3n], int32Data: [1, 0, 1] })).data)).toBe('010001');
    expect(hex(tensorFromProtoSync(tp({ dataType: 6, dims: [1n], int32Data: [-2] })).data)).toBe('feffffff');
  });

  it('int4 / uint4 / float4 hold one packed byte per int32 (2 elements, low nibble first), uint2/int2 four', () => {
    // int4 [1, -1, 7] → bytes 0xf1, 0x07
    const t = tensorFromProtoSync(tp({ dataType: 22, dims: [3n], int32Data: [0xf1, 0x07] }));
    expect(hex(t.data)).toBe('f107');
    expect(hex(tensorFromProtoSync(tp({ dataType: 21, dims: [2n, 2n], int32Data: [0x21, 0x43] })).data)).toBe('2143');
    expect(hex(tensorFromProtoSync(tp({ dataType: 23, dims: [1n], int32Data: [0x02] })).data)).toBe('02');
    expect(hex(tensorFromProtoSync(tp({ dataType: 25, dims: [5n], int32Data: [0xe4, 0x03] })).data)).toBe('e403');
  });

  it('int64, uint32/uint64 (uint64_data), double, complex', () => {
    expect(hex(tensorFromProtoSync(tp({ dataType: 7, dims: [2n], int64Data: [-1n, 2n] })).data)).toBe('ffffffffffffffff0200000000000000');
    expect(hex(tensorFromProtoSync(tp({ dataType: 12, dims: [1n], uint64Data: [0xfffffffen] })).data)).toBe('feffffff');
    expect(hex(tensorFromProtoSync(tp({ dataType: 13, dims: [1n], uint64Data: [2n ** 64n - 1n] })).data)).toBe('ffffffffffffffff');
    expect(hex(tensorFromProtoSync(tp({ dataType: 11, dims: [1n], doubleData: [1] })).data)).toBe('000000000000f03f');
    expect(hex(tensorFromProtoSync(tp({ dataType: 14, dims: [1n], floatData: [1, -2] })).data)).toBe('0000803f000000c0');
    expect(tensorFromProtoSync(tp({ dataType: 15, dims: [1n], doubleData: [1, 2] })).data.byteLength).toBe(16);
  });

  it('strings, scalars, empty tensors', () => {
    const s = tensorFromProtoSync(tp({ dataType: 8, dims: [2n], stringData: [new TextEncoder().encode('a'), new Uint8Array([0xff])] }));
    expect(s.strings?.map(hex)).toEqual(['61', 'ff']);
    expect(tensorFromProtoSync(tp({ dataType: 1, dims: [], floatData: [1.5] })).shape).toEqual([]);
    const empty = tensorFromProtoSync(tp({ dataType: 1, dims: [0n, 3n] }));
    expect(empty.data.byteLength).toBe(0);
  });

  it('raw_data wins and is a view, not a copy', () => {
    const raw = new Uint8Array([0, 0, 128, 63]);
    const t = tensorFromProtoSync(tp({ dataType: 1, dims: [1n], rawData: raw }));
    expect(t.data.buffer).toBe(raw.buffer);
  });

  it('tensorToProto ↔ tensorFromProtoSync', () => {
    const t = tensorFromProtoSync(tp({ dataType: 10, dims: [2n], int32Data: [0x3c00, 0x4000] }));
    const back = tensorFromProtoSync(fromBinary(TensorProtoSchema, toBinary(TensorProtoSchema, tensorToProto(t))));
    expect(hex(back.data)).toBe(hex(t.data));
    expect(back.dtype).toBe('float16');
  });
});

// ------------------------------------------------------------------------------------------------

function node(op: string, inputs: string[], outputs: string[], attrs: ReturnType<typeof create<typeof AttributeProtoSchema>>[] = [], domain = '') {
  return create(NodeProtoSchema, { opType: op, input: inputs, output: outputs, attribute: attrs, domain, name: `${op}_${outputs[0]}` });
}

/** A model that has a bit of everything: big and small initializers, typed fields, Constant in an If branch, a function, training info, metadata, unknown fields. */
function richModel(bigElems = 600_000): ModelProto {
  const big = new Float32Array(bigElems).map((_, i) => (i % 97) / 7);
  const w = tp({ name: 'W', dataType: 1, dims: [BigInt(bigElems)], rawData: new Uint8Array(big.buffer), docString: 'weights' });
  const typed = tp({ name: 'T', dataType: 1, dims: [300n], floatData: Array.from({ length: 300 }, (_, i) => i * 0.5) });
  const small = tp({ name: 'S', dataType: 7, dims: [2n], int64Data: [1n, -1n] });
  const strings = tp({ name: 'Str', dataType: 8, dims: [1n], stringData: [new TextEncoder().encode('hello')] });
  const cval = tp({ name: '', dataType: 10, dims: [2000n], int32Data: Array.from({ length: 2000 }, (_, i) => 0x3c00 + (i % 50)) });
  const thenBranch = create(GraphProtoSchema, {
    name: 'then',
    node: [node('Constant', [], ['c'], [create(AttributeProtoSchema, { name: 'value', type: AttributeProto_AttributeType.TENSOR, t: cval })])],
    output: [create(ValueInfoProtoSchema, { name: 'c' })],
  });
  const ifNode = node('If', ['cond'], ['y'], [
    create(AttributeProtoSchema, { name: 'then_branch', type: AttributeProto_AttributeType.GRAPH, g: thenBranch }),
    create(AttributeProtoSchema, { name: 'else_branch', type: AttributeProto_AttributeType.GRAPH, g: create(GraphProtoSchema, { name: 'else' }) }),
  ]);
  const sparse = create(SparseTensorProtoSchema, {
    values: tp({ name: 'sp', dataType: 1, dims: [2n], floatData: [1, 2] }),
    indices: tp({ name: 'sp_idx', dataType: 7, dims: [2n], int64Data: [0n, 5n] }),
    dims: [10n],
  });
  const graph = create(GraphProtoSchema, {
    name: 'main',
    docString: 'graph doc',
    node: [node('Add', ['W', 'W'], ['w2']), ifNode, node('MyFn', ['w2'], ['z'], [], 'custom')],
    initializer: [w, typed, small, strings],
    sparseInitializer: [sparse],
  });
  const fn = create(FunctionProtoSchema, {
    name: 'MyFn',
    domain: 'custom',
    input: ['x'],
    output: ['z'],
    node: [node('Constant', [], ['k'], [create(AttributeProtoSchema, { name: 'value', type: AttributeProto_AttributeType.TENSOR, t: tp({ name: 'k', dataType: 1, dims: [512n], rawData: new Uint8Array(2048).fill(1) }) })]), node('Mul', ['x', 'k'], ['z'])],
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 17n })],
  });
  const training = create(TrainingInfoProtoSchema, {
    initialization: create(GraphProtoSchema, { name: 'init', initializer: [tp({ name: 'seed', dataType: 1, dims: [4096n], rawData: new Uint8Array(16384).fill(2) })] }),
  });
  const m = create(ModelProtoSchema, {
    irVersion: 8n,
    producerName: 'modelsmith-test',
    producerVersion: '1',
    docString: 'model doc',
    graph,
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 17n }), create(OperatorSetIdProtoSchema, { domain: 'custom', version: 1n })],
    metadataProps: [create(StringStringEntryProtoSchema, { key: 'author', value: 'me' })],
    functions: [fn],
    trainingInfo: [training],
  });
  // Unknown fields on the model, the graph and a tensor.
  m.$unknown = [{ no: 999, wireType: 2, data: new Uint8Array([3, 1, 2, 3]) }];
  graph.$unknown = [{ no: 777, wireType: 0, data: new Uint8Array([42]) }];
  w.$unknown = [{ no: 555, wireType: 0, data: new Uint8Array([7]) }];
  return m;
}

describe('writer', () => {
  it('streams big payloads and still produces exactly what toBinary would', async () => {
    const m = onnxModel(richModel());
    const reference = toBinary(ModelProtoSchema, m.proto);
    for (const streamThreshold of [0, 1, 1000, 2 ** 20, Infinity]) {
      const sink = new MemorySink();
      const stats = await writeOnnx(m, sink, { streamThreshold });
      expect(sameBytes(sink.bytes(), reference), `streamThreshold ${streamThreshold}`).toBe(true);
      if (streamThreshold === 2 ** 20) expect(stats.streamedTensors).toBe(1); // W (2.4 MB)
    }
  });

  it('a big payload is handed to the sink as is, not copied into one encoded buffer', async () => {
    const m = onnxModel(richModel(4_000_000)); // 16 MB
    const chunks: number[] = [];
    let position = 0;
    await writeOnnx(m, { get position() { return position; }, async write(c) { chunks.push(c.byteLength); position += c.byteLength; } });
    expect(Math.max(...chunks)).toBe(16_000_000);
    expect(position).toBe(toBinary(ModelProtoSchema, m.proto).byteLength);
  });

  it('external data: 4096-aligned, location/offset/length, data_location EXTERNAL, nothing else lost', async () => {
    const m = onnxModel(richModel());
    const sink = new MemorySink();
    const data = new MemorySink();
    const stats = await writeOnnx(m, sink, { externalData: { location: 'w.bin', sink: data, attributes: true } });
    const back = decodeOnnx(sink.bytes(), { path: 'x.onnx', siblings: async (loc) => { expect(loc).toBe('w.bin'); return new MemorySource(data.bytes(), loc); } });
    const ext = collectTensors(back).filter((e) => e.proto.dataLocation === 1);
    // W (2.4 MB), T (1200 B, typed → raw), Constant value in the If branch (4000 B), k in the function (2048 B), seed in training_info (16 KB).
    expect(ext.map((e) => e.name).sort()).toEqual(['T', 'W', 'c', 'k', 'seed']);
    expect(stats.externalTensors).toBe(5);
    for (const e of ext) {
      const ref = externalDataRef(e.proto)!;
      expect(ref.offset % 4096).toBe(0);
      expect(ref.length).toBe(e.name === 'W' ? 2_400_000 : ref.length);
      expect(e.proto.rawData.byteLength).toBe(0);
      expect(e.proto.floatData.length + e.proto.int32Data.length).toBe(0);
    }
    // Small ones (S), strings and sparse tensors stay inline.
    expect(collectTensors(back).filter((e) => e.proto.dataLocation !== 1).map((e) => e.name).sort()).toEqual(['S', 'Str', 'sp', 'sp_idx']);
    // Everything but tensor payloads survives: docs, metadata, functions, training info, unknown fields.
    expect(sameBytes(normalisedGraphBytes(back.proto), normalisedGraphBytes(m.proto))).toBe(true);
    expect(back.proto.$unknown?.[0]?.no).toBe(999);
    expect(back.proto.graph?.$unknown?.[0]?.no).toBe(777);
    expect(back.proto.graph?.initializer[0]?.$unknown?.[0]?.no).toBe(555);
    expect(back.proto.metadataProps[0]?.value).toBe('me');
    expect(back.proto.graph?.initializer[0]?.docString).toBe('weights');
    // Payloads identical after normalisation.
    const before = collectTensors(m);
    const after = collectTensors(back);
    for (let i = 0; i < before.length; i++) {
      const a = await tensorFromProto(before[i]!.proto);
      const b = await tensorFromProto(after[i]!.proto, { siblings: back.siblings! });
      expect(hex(b.data), before[i]!.name).toBe(hex(a.data));
    }
    // Without `attributes`, only initializers move (onnx's default).
    const d2 = new MemorySink();
    const s2 = await writeOnnx(m, new MemorySink(), { externalData: { location: 'w.bin', sink: d2 } });
    expect(s2.externalTensors).toBe(3); // W, T, seed
  });

  it('re-writing an externally stored model: kept external, or inlined', async () => {
    const m = onnxModel(richModel());
    const sink = new MemorySink();
    const data = new MemorySink();
    await writeOnnx(m, sink, { externalData: { location: 'a.bin', sink: data, threshold: 100 } });
    const siblings = async (loc: string) => new MemorySource(data.bytes(), loc);
    const ext = decodeOnnx(sink.bytes(), { siblings });
    // Kept external (threshold ignored for tensors that already are), into the new file.
    const data2 = new MemorySink();
    const again = new MemorySink();
    const st = await writeOnnx(ext, again, { externalData: { location: 'b.bin', sink: data2, threshold: 1e9 } });
    expect(st.externalTensors).toBe(3);
    expect(data2.position).toBe(data.position);
    // Inlined: identical to the original model's bytes, since raw_data was the storage everywhere… except T, which was typed.
    const inlined = await encodeOnnx(ext);
    const back = decodeOnnx(inlined);
    expect(collectTensors(back).some((e) => e.proto.dataLocation === 1)).toBe(false);
    expect(sameBytes(normalisedGraphBytes(back.proto), normalisedGraphBytes(m.proto))).toBe(true);
    expect(hex(tensorFromProtoSync(back.proto.graph!.initializer[1]!).data)).toBe(hex(tensorFromProtoSync(m.proto.graph!.initializer[1]!).data));
  });

  it('does not modify the model it writes', async () => {
    const m = onnxModel(richModel());
    const before = toBinary(ModelProtoSchema, m.proto);
    await writeOnnx(m, new MemorySink(), { externalData: { location: 'w.bin', sink: new MemorySink(), threshold: 0, attributes: true }, streamThreshold: 0 });
    expect(sameBytes(toBinary(ModelProtoSchema, m.proto), before)).toBe(true);
  });
});

describe('tensor listing and summary', () => {
  it('collectTensors finds initializers, Constant values in subgraphs and functions, sparse tensors, training info', () => {
    const entries = collectTensors(onnxModel(richModel()));
    const kinds = entries.map((e) => `${e.kind}:${e.name}@${e.scope}`);
    expect(kinds).toEqual([
      'initializer:W@graph',
      'initializer:T@graph',
      'initializer:S@graph',
      'initializer:Str@graph',
      'sparse_initializer:sp@graph',
      'sparse_initializer:sp_idx@graph',
      'constant:c@graph/If_y:then_branch',
      'constant:k@function:custom.MyFn',
      'initializer:seed@training_info[0].initialization',
    ]);
  });

  it('summarizeOnnx: JSON-safe report with ops, parameters, dtypes, largest tensors, diagnostics', () => {
    const r = summarizeOnnx(onnxModel(richModel()));
    const json = JSON.parse(JSON.stringify(r)) as typeof r;
    expect(json.irVersion).toBe(8);
    expect(json.opsetImports).toEqual([{ domain: 'ai.onnx', version: 17 }, { domain: 'custom', version: 1 }]);
    expect(json.ops.find((o) => o.op === 'Constant')).toEqual({ op: 'Constant', count: 0, nestedCount: 2 });
    expect(json.ops.find((o) => o.op === 'custom::MyFn')?.count).toBe(1);
    expect(json.nodes).toEqual({ total: 6, mainGraph: 3, subgraphs: 1, functions: 2 });
    expect(json.subgraphCount).toBe(2);
    expect(json.largestTensors[0]).toMatchObject({ name: 'W', dtype: 'float32', shape: [600000], bytes: 2_400_000 });
    expect(json.bytesByDtype.float16).toEqual({ tensors: 1, bytes: 4000 });
    expect(json.parameters).toBe(600000 + 300 + 2 + 2000 + 2 + 512 + 4096);
    expect(json.diagnostics.map((d) => d.code)).toContain('onnx.sparse');
    expect(json.diagnostics.map((d) => d.code)).toContain('onnx.training_info');
    expect(json.hasTrainingInfo).toBe(true);
  });

  it('summary of a real model: inputs with dim_param, external data listing', async () => {
    const file = corpusOnnxFiles().find((f) => f.endsWith('silero_vad_legacy.onnx'))!;
    const m = await readOnnx(new MemorySource(new Uint8Array(readFileSync(file)), file));
    const r = summarizeOnnx(m);
    expect(r.producer.name).toBe('pytorch');
    expect(r.inputs.some((i) => i.shape?.some((d) => typeof d === 'string'))).toBe(true);
    expect(r.opsetImports.length).toBe(9);
    const sink = new MemorySink();
    await writeOnnx(m, sink, { externalData: { location: 'silero.data', sink: new MemorySink() } });
    const r2 = summarizeOnnx(decodeOnnx(sink.bytes()));
    expect(r2.externalData).toHaveLength(1);
    expect(r2.externalData[0]!.location).toBe('silero.data');
    expect(r2.parameters).toBe(r.parameters);
  });
});

describe('sniffOnnx', () => {
  it('accepts every corpus model head', () => {
    for (const f of corpusOnnxFiles()) expect(sniffOnnx(readFileSync(f).subarray(0, 32)), f).toBe(true);
  });
  it('rejects other formats', () => {
    const samples = [
      new Uint8Array([0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 0]), // zip
      new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), // png
      new Uint8Array([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc]), // pickle
      new TextEncoder().encode('name: "caffe"\nlayer {'),
      new Uint8Array([0x40, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x22]), // safetensors
      new Uint8Array([0x08, 0x00]), // ir_version 0
      new Uint8Array([0x08, 0xc8, 0x01]), // ir_version 200
      new Uint8Array(0),
    ];
    for (const s of samples) expect(sniffOnnx(s), hex(s)).toBe(false);
  });
});
