import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { create, equals, fromBinary, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { ModelsmithError } from '../../../src/core/errors.js';
import { MemorySource } from '../../../src/io/source.js';
import { GraphDefSchema, NodeDefSchema } from '../../../src/formats/savedmodel/gen/tensorflow/graph_pb.js';
import { MetaGraphDefSchema, MetaGraphDef_MetaInfoDefSchema, SavedModelSchema } from '../../../src/formats/savedmodel/gen/tensorflow/meta_graph_pb.js';
import { SavedMetadataSchema, SavedObjectSchema as KerasObjectSchema } from '../../../src/formats/savedmodel/gen/tensorflow/keras/keras_metadata_pb.js';
import { readGraphDef, readSavedModel, summarizeGraphDef, summarizeSavedModel } from '../../../src/formats/savedmodel/index.js';
import { scanProto } from '../../../src/formats/savedmodel/scan.js';
import { CORPUS, dirResolver, fileSource, savedModelDirs } from './helpers.js';

interface IndexLine {
  file: string;
  meta_graphs: Array<{ tags: string[]; signatures: string[]; nodes: number; functions: number; object_graph: boolean; tensorflow_version: string }>;
  schema_version: number;
}

const INDEX: IndexLine[] = readFileSync(join(CORPUS, 'INDEX.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as IndexLine);

async function expectCode(p: Promise<unknown>, code: string): Promise<ModelsmithError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err, `expected ${code}`).toBeInstanceOf(ModelsmithError);
  expect((err as ModelsmithError).code).toBe(code);
  return err as ModelsmithError;
}

const open = (d: string, overrides: Record<string, Uint8Array> = {}) => readSavedModel(dirResolver(join(CORPUS, d), overrides), { path: d });

describe('SavedModel corpus', () => {
  it('reads every SavedModel and agrees with INDEX.jsonl', async () => {
    const dirs = savedModelDirs();
    expect(dirs).toHaveLength(INDEX.length);
    let signatures = 0;
    for (const d of dirs) {
      const f = await open(d);
      const line = INDEX.find((l) => l.file === `savedmodel/${d}/saved_model.pb`)!;
      expect(line, d).toBeDefined();
      expect(Number(f.savedModel.savedModelSchemaVersion)).toBe(line.schema_version);
      expect(f.metaGraphs).toHaveLength(line.meta_graphs.length);
      const want = line.meta_graphs[0]!;
      const mg = f.metaGraphs[0]!;
      expect(mg.tags).toEqual(want.tags);
      expect(mg.tensorflowVersion).toBe(want.tensorflow_version);
      expect(mg.style).toBe(want.object_graph ? 'tf2' : 'tf1');
      expect(mg.metaGraph.graphDef!.node.length).toBe(want.nodes);
      expect(mg.metaGraph.graphDef!.library?.function.length ?? 0).toBe(want.functions);
      expect(f.signatures.map((s) => s.key).sort()).toEqual([...want.signatures].sort());
      signatures += f.signatures.length;
      // Every bundle tensor except the object graph is a variable, and every one loads (CRC checked).
      for (const t of f.variables.tensors) expect((await t.load()).byteLength).toBe(t.byteLength);
      expect(f.variables.tensors.some((t) => t.name === '_CHECKPOINTABLE_OBJECT_GRAPH')).toBe(false);
    }
    expect(signatures).toBe(49);
  });

  it('decodes every field: re-encoding is lossless', async () => {
    let identical = 0;
    for (const d of savedModelDirs()) {
      const f = await open(d);
      const orig = new Uint8Array(readFileSync(join(CORPUS, d, 'saved_model.pb')));
      const re = toBinary(SavedModelSchema, f.savedModel);
      expect(re.length).toBe(orig.length);
      expect(equals(SavedModelSchema, fromBinary(SavedModelSchema, re), f.savedModel)).toBe(true);
      expect(JSON.stringify(f.savedModel, (k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))).not.toContain('$unknown');
      // The rest differ only in the order of map<uint32, …> entries (JS objects sort integer keys).
      if (Buffer.compare(Buffer.from(orig), Buffer.from(re)) === 0) identical++;
    }
    expect(identical).toBe(8);
  });

  it('TF1 half_plus_two: signatures, restore-graph names, values, assets', async () => {
    const f = await open('tf-serving/saved_model_half_plus_two_cpu/00000123');
    const s = await summarizeSavedModel(f);
    expect(s.tags).toEqual(['serve']);
    expect(s.graph.nodeCount).toBe(74);
    expect(s.graph.ops['VariableV2']).toBe(6); // a, b, c, a2, c2 and the asset's filename_tensor
    expect(s.graph.ops['RestoreV2']).toBe(1);
    const serving = s.signatures.find((x) => x.key === 'serving_default')!;
    expect(serving.method).toBe('tensorflow/serving/predict');
    expect(serving.inputs).toEqual([{ key: 'x', name: 'x:0', dtype: 'float32', shape: [-1, 1], encoding: 'dense' }]);
    expect(serving.outputs).toEqual([{ key: 'y', name: 'y:0', dtype: 'float32', shape: [-1, 1], encoding: 'dense' }]);
    const classify = s.signatures.find((x) => x.key === 'classify_x_to_y')!;
    expect(classify.method).toBe('tensorflow/serving/classify');
    expect(classify.inputs[0]).toMatchObject({ key: 'inputs', name: 'tf_example:0', dtype: 'string' });
    expect(s.variables.map((v) => [v.name, v.dtype, v.shape, v.values])).toEqual([
      ['a', 'float32', [], [0.5]], ['a2', 'float32', [], [0.5]], ['b', 'float32', [], [2]], ['c', 'float32', [], [3]], ['c2', 'float32', [], [3]],
    ]);
    expect(f.variables.tensors[0]!.extra).toMatchObject({ checkpointKey: 'a', nameSource: 'restore-graph', trainable: true });
    expect(s.assets).toEqual([{ filename: 'foo.txt', tensorName: 'Const:0', path: 'assets/foo.txt', bytes: 19 }]);
    expect(JSON.parse(JSON.stringify(s))).toEqual(s); // JSON-able: no bigint, no functions
  });

  it('TF2 half_plus_two: object-graph names, functions, init op', async () => {
    const f = await open('tf-serving/saved_model_half_plus_two_tf2_cpu/00000123');
    const s = await summarizeSavedModel(f);
    expect(s.metaGraphs[0]).toMatchObject({ style: 'tf2', nodes: 29, functions: 14, objectGraphNodes: 24 });
    expect(s.variables.map((v) => [v.name, v.checkpointKey, v.values])).toEqual([
      ['a', 'a/.ATTRIBUTES/VARIABLE_VALUE', [0.5]], ['b', 'b/.ATTRIBUTES/VARIABLE_VALUE', [2]], ['c', 'c/.ATTRIBUTES/VARIABLE_VALUE', [3]],
    ]);
    expect(f.checkpointObjectGraph!.nodes.length).toBeGreaterThan(3);
    expect(s.graph.ops['VarHandleOp']).toBe(4); // a, b, c and the asset's Variable
    expect(s.graph.functionOps['RestoreV2']).toBeGreaterThan(0);
    const serving = s.signatures.find((x) => x.key === 'serving_default')!;
    expect(serving.inputs).toEqual([{ key: 'x', name: 'serving_default_x:0', dtype: 'float32', shape: [1], encoding: 'dense' }]);
    expect(serving.outputs[0]!.name).toBe('StatefulPartitionedCall_5:0');
    expect(s.signatures.find((x) => x.key === '__saved_model_init_op')!.outputs[0]!.name).toBe('NoOp');
    expect(s.assets[0]).toMatchObject({ filename: 'foo.txt', tensorName: 'asset_path_initializer:0', bytes: 19 });
  });

  it('Keras: layer_with_weights paths map to dense/kernel names, metadata listed', async () => {
    const f = await open('tensorflow-rust/keras_single_input_saved_model');
    const byKey = new Map(f.variables.tensors.map((t) => [t.extra!['checkpointKey'], t]));
    expect(byKey.get('layer_with_weights-1/kernel/.ATTRIBUTES/VARIABLE_VALUE')!.name).toBe('dense/kernel');
    expect(byKey.get('layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE')!.name).toBe('test_in/kernel');
    expect(byKey.get('layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE')!.extra!['objectPath']).toBe('layer_with_weights-0/kernel');
    expect(byKey.get('layer_with_weights-0/kernel/.OPTIMIZER_SLOT/optimizer/m/.ATTRIBUTES/VARIABLE_VALUE')!.name).toBe('Adam/test_in/kernel/m');
    // "count"/"total" repeat across metrics, so they are named by object path.
    expect(byKey.get('keras_api/metrics/1/count/.ATTRIBUTES/VARIABLE_VALUE')!.name).toBe('keras_api/metrics/1/count');
    expect(new Set(f.variables.tensors.map((t) => t.name)).size).toBe(f.variables.tensors.length);
    expect(f.keras!.source).toBe('saved_model.pb');
    expect(f.keras!.layers.filter((l) => l.className === 'Dense').map((l) => l.name)).toEqual(['test_in', 'dense', 'test_out']);
    const s = await summarizeSavedModel(f);
    expect(s.variables.find((v) => v.name === 'Adam/iter')!.values).toEqual([1]);
    expect(s.variables.find((v) => v.name === 'dense/kernel')!.values).toBeUndefined(); // 25 elements
    const serving = s.signatures.find((x) => x.key === 'serving_default')!;
    expect(serving.inputs[0]).toMatchObject({ key: 'test_in_input', dtype: 'float32', shape: [-1, 5] });
  });

  it('tfjs-node: int64 values, duplicate "Variable" names fall back to object paths', async () => {
    const s = await summarizeSavedModel(await open('tfjs-node/int64_multiply'));
    expect(s.variables.map((v) => [v.name, v.dtype, v.values])).toEqual([['v1', 'int64', [3]], ['v2', 'int64', [2]]]);
    expect(s.signatures.find((x) => x.key === 'serving_default')!.inputs[0]).toMatchObject({ dtype: 'int64', shape: [2] });
    expect(s.diagnostics.some((d) => d.code === 'SM_VARIABLE_NAME_CLASH')).toBe(true);
    const m = await summarizeSavedModel(await open('tfjs-node/model_multi_output'));
    expect(m.signatures.find((x) => x.key === 'serving_default')!.outputs.map((o) => o.name)).toEqual(['StatefulPartitionedCall:0', 'StatefulPartitionedCall:1']);
    expect(m.variables.map((v) => [v.name, v.values])).toEqual([['two', [2]], ['v', [3]]]);
    const t = await summarizeSavedModel(await open('tfjs-node/times_three_float'));
    expect(t.variables.map((v) => [v.name, v.values])).toEqual([['Variable', [3]]]);
  });

  it('counter (TF 1.5) and regression (custom signatures)', async () => {
    const c = await summarizeSavedModel(await open('tf-serving/saved_model_counter/00000123'));
    expect(c.variables).toEqual([{ name: 'counter', checkpointKey: 'counter', dtype: 'float32', shape: [], bytes: 4, values: [0] }]);
    expect(c.signatures.find((x) => x.key === 'incr_counter_by')!.inputs[0]).toMatchObject({ key: 'delta', name: 'delta:0', shape: null });
    const rf = await open('tensorflow-rust/regression_savedmodel');
    const trainable = Object.fromEntries(rf.variables.tensors.map((t) => [t.name, t.extra!['trainable']]));
    expect(trainable).toEqual({ w: true, b: true, 'SGD/iter': false, 'SGD/decay': false, 'SGD/learning_rate': false, 'SGD/momentum': false });
    const r = await summarizeSavedModel(rf);
    expect(r.signatures.find((x) => x.key === 'train')!.inputs.map((i) => i.key)).toEqual(['x', 'y']);
    expect(r.variables.find((v) => v.name === 'w')!.values![0]).toBeCloseTo(0.2043, 4);
    expect(r.variables.find((v) => v.name === 'SGD/learning_rate')!.values).toEqual([0.5]);
  });

  it('reads frozen GraphDefs', async () => {
    const a = summarizeGraphDef(await readGraphDef(fileSource(join(CORPUS, 'graphdef-frozen/tf-rust-addition.pb'))));
    expect(a.graph.nodeCount).toBe(3);
    expect(a.graph.ops).toEqual({ Placeholder: 2, AddV2: 1 });
    expect(a.graph.placeholders.map((p) => p.dtype)).toEqual(['int32', 'int32']);
    const r = await readGraphDef(fileSource(join(CORPUS, 'graphdef-frozen/tf-rust-regression.pb')));
    expect(r.graph.node.length).toBe(95);
    expect(r.diagnostics).toEqual([]);
  });

  it('lists keras_metadata.pb when present', async () => {
    const meta = toBinary(SavedMetadataSchema, create(SavedMetadataSchema, {
      nodes: [create(KerasObjectSchema, { nodeId: 1, nodePath: 'root.layer_with_weights-0', identifier: '_tf_keras_layer', metadata: '{"class_name": "Dense", "name": "dense"}' })],
    }));
    const f = await open('tfjs-node/times_three_float', { 'keras_metadata.pb': meta });
    expect(f.keras).toEqual({ source: 'keras_metadata.pb', layers: [{ nodePath: 'root.layer_with_weights-0', identifier: '_tf_keras_layer', className: 'Dense', name: 'dense' }] });
  });
});

describe('SavedModel errors', () => {
  const half = 'tf-serving/saved_model_half_plus_two_cpu/00000123';
  const pb = () => new Uint8Array(readFileSync(join(CORPUS, half, 'saved_model.pb')));

  it('no saved_model.pb → E_IO; text and chunked variants → E_UNSUPPORTED', async () => {
    const none = async () => { throw new ModelsmithError('E_EXTERNAL_DATA', 'missing'); };
    await expectCode(readSavedModel(none, { path: 'empty' }), 'E_IO');
    const only = (name: string) => async (rel: string) => {
      if (rel === name) return new MemorySource(new Uint8Array(1), name);
      throw new ModelsmithError('E_EXTERNAL_DATA', 'missing');
    };
    expect((await expectCode(readSavedModel(only('saved_model.pbtxt')), 'E_UNSUPPORTED')).message).toMatch(/text format/);
    await expectCode(readSavedModel(only('saved_model.cpb')), 'E_UNSUPPORTED');
  });

  it('truncated and undecodable saved_model.pb → offsets', async () => {
    const cut = pb().subarray(0, 5000);
    const e = await expectCode(open(half, { 'saved_model.pb': cut }), 'E_TRUNCATED');
    expect(e.offset).toBeGreaterThanOrEqual(0);
    expect(e.path).toBe(`${half}/saved_model.pb`);
    const bad = pb();
    bad[0] = 0x0f; // field 1 with wire type 7
    expect((await expectCode(open(half, { 'saved_model.pb': bad }), 'E_MALFORMED')).offset).toBe(0);
  });

  it('a SavedModel without MetaGraphDefs → E_MALFORMED; unknown tags → E_USAGE', async () => {
    const empty = toBinary(SavedModelSchema, create(SavedModelSchema, { savedModelSchemaVersion: 1n }));
    await expectCode(open(half, { 'saved_model.pb': empty }), 'E_MALFORMED');
    await expectCode(readSavedModel(dirResolver(join(CORPUS, half)), { tags: ['train'] }), 'E_USAGE');
    const two = toBinary(SavedModelSchema, create(SavedModelSchema, {
      metaGraphs: [
        create(MetaGraphDefSchema, { metaInfoDef: create(MetaGraphDef_MetaInfoDefSchema, { tags: ['train'] }) }),
        create(MetaGraphDefSchema, { metaInfoDef: create(MetaGraphDef_MetaInfoDefSchema, { tags: ['serve'] }), graphDef: create(GraphDefSchema, { node: [create(NodeDefSchema, { name: 'n', op: 'NoOp' })] }) }),
      ],
    }));
    const f = await readSavedModel(dirResolver(join(CORPUS, 'tfjs-node/times_three_float'), { 'saved_model.pb': two }));
    expect(f.metaGraphIndex).toBe(1);
    expect(f.diagnostics.some((d) => d.code === 'SM_META_GRAPHS')).toBe(true);
    expect((await readSavedModel(dirResolver(join(CORPUS, 'tfjs-node/times_three_float'), { 'saved_model.pb': two }), { tags: ['train'] })).metaGraphIndex).toBe(0);
  });

  it('hostile nesting and inflation → E_LIMIT before decoding', async () => {
    // AttrValue.list.func[0].attr[k] = AttrValue … nested 200 deep inside NodeDef.attr maps.
    let inner = new Uint8Array(0);
    const ld = (field: number, body: Uint8Array) => {
      const len: number[] = [];
      let n = body.length;
      while (n >= 0x80) { len.push((n & 0x7f) | 0x80); n >>>= 7; }
      len.push(n);
      return new Uint8Array([(field << 3) | 2, ...len, ...body]);
    };
    for (let i = 0; i < 200; i++) {
      const attrValue = ld(10, ld(2, new Uint8Array([...ld(1, new Uint8Array([0x6b])), ...ld(2, inner)]))); // func { attr { key "k" value inner } }
      inner = attrValue;
    }
    const graph = ld(1, ld(5, new Uint8Array([...ld(1, new Uint8Array([0x61])), ...ld(2, inner)]))); // GraphDef.node[0].attr["a"]
    await expectCode(readGraphDef(new MemorySource(graph, 'deep.pb')), 'E_LIMIT');
    // 256 KiB of packed int64 in AttrValue.list.i would need ~10 MiB of bigints: over a small cap.
    const many = ld(1, ld(5, new Uint8Array([...ld(1, new Uint8Array([0x61])), ...ld(2, ld(1, ld(3, new Uint8Array(1 << 18))))])));
    expect(() => scanProto(many, GraphDefSchema, { format: 'tf-graphdef' }, { maxDepth: 100, maxHeapEstimate: 4 * 2 ** 20 })).toThrow(/memory/);
    expect(scanProto(many, GraphDefSchema, { format: 'tf-graphdef' }).heapEstimate).toBeGreaterThan(10 * 2 ** 20);
  });

  it('a missing data shard → the resolver error E_EXTERNAL_DATA; an empty GraphDef → a warning', async () => {
    const base = dirResolver(join(CORPUS, half));
    const noShard = async (rel: string) => {
      if (rel.startsWith('variables/variables.data-')) throw new ModelsmithError('E_EXTERNAL_DATA', `file '${rel}' not found`);
      return base(rel);
    };
    await expectCode(readSavedModel(noShard), 'E_EXTERNAL_DATA');
    const g = await readGraphDef(new MemorySource(new Uint8Array(0), 'empty.pb'));
    expect(g.diagnostics.map((d) => d.code)).toEqual(['TF_GRAPHDEF_EMPTY']);
    // A SavedModel is not a GraphDef: field 1 is a varint there, a message here.
    await expectCode(readGraphDef(new MemorySource(pb(), 'saved_model.pb')), 'E_MALFORMED');
  });

  it('a damaged variables bundle fails the read with its code', async () => {
    const idx = new Uint8Array(readFileSync(join(CORPUS, half, 'variables/variables.index')));
    idx[idx.length - 3] ^= 0xff;
    await expectCode(open(half, { 'variables/variables.index': idx }), 'E_MALFORMED');
    const data = new Uint8Array(readFileSync(join(CORPUS, half, 'variables/variables.data-00000-of-00001')));
    data[0] ^= 1;
    const f = await open(half, { 'variables/variables.data-00000-of-00001': data });
    const s = await summarizeSavedModel(f); // the summary reports, never throws
    expect(s.diagnostics.find((d) => d.tensor === 'a')!.code).toBe('E_MALFORMED');
    expect(s.variables.find((v) => v.name === 'a')!.values).toBeUndefined();
  });
});
