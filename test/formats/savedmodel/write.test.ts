import { create } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { ModelsmithError } from '../../../src/core/errors.js';
import { attr, node, readSavedModel, summarizeSavedModel, writeSavedModel, type WriteSavedModelInput } from '../../../src/formats/savedmodel/index.js';
import { GraphDefSchema } from '../../../src/formats/savedmodel/gen/tensorflow/graph_pb.js';
import { objectPaths, tf1VariableNames } from '../../../src/formats/savedmodel/variable-names.js';
import { memoryFolder } from './memory-folder.js';
import { inMemoryTensor } from '../../../src/formats/weights.js';


const f32 = (xs: number[]) => new Uint8Array(Float32Array.from(xs).buffer);

function linearModel(): WriteSavedModelInput {
  const F = 1;
  return {
    nodes: [
      node('x', 'Placeholder', [], { dtype: attr.type(F), shape: attr.shape([-1, 2]) }),
      node('MatMul', 'MatMul', ['x', 'dense/kernel/Read/ReadVariableOp'], { T: attr.type(F) }),
      node('BiasAdd', 'BiasAdd', ['MatMul', 'dense/bias/Read/ReadVariableOp'], { T: attr.type(F) }),
      node('y', 'Identity', ['BiasAdd'], { T: attr.type(F) }),
    ],
    variables: [
      inMemoryTensor({ name: 'dense/kernel', dtype: 'float32', shape: [2, 3], data: f32([1, 2, 3, 4, 5, 6]) }),
      inMemoryTensor({ name: 'dense/bias', dtype: 'float32', shape: [3], data: f32([0.5, -1, 2]) }),
      inMemoryTensor({ name: 'global_step', dtype: 'int64', shape: [], data: new Uint8Array(new BigInt64Array([7n]).buffer) }),
    ],
    signatures: [{ inputs: { x: { name: 'x:0', dtype: 'float32', shape: [-1, 2] } }, outputs: { y: { name: 'y:0', dtype: 'float32', shape: [-1, 3] } } }],
  };
}

describe('writeSavedModel', () => {
  it('writes a TF1-style SavedModel that the reader resolves through its restore graph', async () => {
    const m = memoryFolder();
    const { files } = await writeSavedModel(linearModel(), m.out);
    expect(files.map((f) => f.path)).toEqual(['variables/variables.data-00000-of-00001', 'variables/variables.index', 'saved_model.pb']);
    expect(files[0]!.bytes).toBe(24 + 12 + 8);
    const f = await readSavedModel(m.dir, { path: 'out' });
    expect(f.metaGraphs[0]!.style).toBe('tf1');
    expect(f.diagnostics).toEqual([]);
    const mg = f.metaGraphs[0]!.metaGraph;
    expect(mg.saverDef).toMatchObject({ filenameTensorName: 'save/Const:0', restoreOpName: 'save/restore_all', version: 2, sharded: true });
    expect(mg.collectionDef['variables']!.kind.case).toBe('bytesList');
    const s = await summarizeSavedModel(f);
    expect(s.signatures).toEqual([{
      key: 'serving_default', method: 'tensorflow/serving/predict',
      inputs: [{ key: 'x', name: 'x:0', dtype: 'float32', shape: [-1, 2], encoding: 'dense' }],
      outputs: [{ key: 'y', name: 'y:0', dtype: 'float32', shape: [-1, 3], encoding: 'dense' }],
    }]);
    expect(s.variables.map((v) => [v.name, v.dtype, v.shape, v.values])).toEqual([
      ['dense/bias', 'float32', [3], [0.5, -1, 2]],
      ['dense/kernel', 'float32', [2, 3], [1, 2, 3, 4, 5, 6]],
      ['global_step', 'int64', [], [7]],
    ]);
    expect(f.variables.tensors.every((t) => t.extra!['nameSource'] === 'restore-graph')).toBe(true);
    expect(s.graph.ops).toMatchObject({ VarHandleOp: 3, ReadVariableOp: 3, AssignVariableOp: 6, RestoreV2: 1, Fill: 3, MatMul: 1 });
    // Every node input resolves (the writer validated it; check the decoded result independently).
    const names = new Set(mg.graphDef!.node.map((n) => n.name));
    for (const n of mg.graphDef!.node) for (const i of n.input) expect(names.has(i.replace(/^\^/, '').replace(/:\d+$/, ''))).toBe(true);
  });

  it('writes a constants-only model without variables or saver', async () => {
    const m = memoryFolder();
    await writeSavedModel({ nodes: [node('x', 'Placeholder', [], { dtype: attr.type(1), shape: attr.shape(null) })], signatures: [{ key: 'k', inputs: { x: { name: 'x:0', dtype: 'float32', shape: null } }, outputs: { y: { name: 'x:0', dtype: 'float32', shape: null } } }] }, m.out);
    expect([...m.files.keys()]).toEqual(['saved_model.pb']);
    const f = await readSavedModel(m.dir);
    expect(f.metaGraphs[0]!.metaGraph.saverDef).toBeUndefined();
    expect(f.signatures[0]).toMatchObject({ key: 'k', inputs: [{ shape: null }] });
    expect(f.diagnostics.map((d) => d.code)).toEqual(['SM_NO_VARIABLES']);
  });

  it('refuses graphs TF could not import', async () => {
    const code = async (input: WriteSavedModelInput, c: string) => {
      const err = await writeSavedModel(input, memoryFolder().out).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(ModelsmithError);
      expect((err as ModelsmithError).code).toBe(c);
      return err as ModelsmithError;
    };
    const base = linearModel();
    expect((await code({ ...base, nodes: [...base.nodes!, node('dense/kernel', 'NoOp', [])] }, 'E_MALFORMED')).op).toBe('dense/kernel');
    await code({ ...base, nodes: [node('a', 'Identity', ['missing:0'])] }, 'E_MALFORMED');
    await code({ ...base, nodes: [node('bad name', 'NoOp', [])] }, 'E_MALFORMED');
    await code({ ...base, signatures: [{ inputs: {}, outputs: { y: { name: 'nowhere:0', dtype: 'float32', shape: [] } } }] }, 'E_MALFORMED');
    await code({ variables: [inMemoryTensor({ name: 'q', dtype: 'float8e4m3fnuz', shape: [1], data: new Uint8Array(1) })] }, 'E_DTYPE');
    await code({ variables: [inMemoryTensor({ name: 's', dtype: 'string', shape: [], data: new Uint8Array(0) })] }, 'E_UNSUPPORTED');
  });
});

describe('variable naming rules', () => {
  it('falls back to variable nodes named like the key; object paths are breadth-first', () => {
    const g = create(GraphDefSchema, { node: [node('w', 'VariableV2', []), node('v', 'VarHandleOp', []), node('c', 'Const', [])] });
    const m = tf1VariableNames(g, ['w', 'v', 'c', 'missing'], new Set(['w']));
    expect([...m.entries()].map(([k, v]) => [k, v.name, v.source, v.trainable])).toEqual([['w', 'w', 'graph-node', true], ['v', 'v', 'graph-node', false]]);
    // Breadth-first: the shortest path names an object reachable twice; cycles terminate.
    const paths = objectPaths([
      { children: [{ nodeId: 1, localName: 'model' }, { nodeId: 2, localName: 'w' }] },
      { children: [{ nodeId: 2, localName: 'kernel' }, { nodeId: 0, localName: 'root' }, { nodeId: 9, localName: 'bad' }] },
      { children: [] },
    ]);
    expect([...paths.entries()]).toEqual([[0, ''], [1, 'model'], [2, 'w']]);
  });
});
