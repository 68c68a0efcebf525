/**
 * Opset 9/10 → 11 upgrade (src/compress/opset-upgrade.ts): the adapted nodes (Slice, Clip, Pad whose
 * attributes became inputs) must compute exactly what they computed before, in onnxruntime.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { AttributeProtoSchema, AttributeProto_AttributeType, GraphProtoSchema, ModelProtoSchema, NodeProtoSchema, OperatorSetIdProtoSchema } from 'onnx-buf';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upgradeToOpset11 } from '../../src/compress/opset-upgrade.js';
import type { Diagnostic } from '../../src/core/errors.js';
import { onnxModel } from '../../src/formats/onnx/read.js';
import { saveOnnxFile } from '../../src/platform/open.js';
import { rng } from '../formats/onnx/helpers.js';
import { run, vi } from './quant-fixtures.js';

let dir: string;
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'ms-opset-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

const ints = (name: string, v: number[]) => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INTS, ints: v.map(BigInt) });
const float = (name: string, f: number) => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.FLOAT, f });

function model(opset: number, extra: ReturnType<typeof create<typeof NodeProtoSchema>>[] = []) {
  const graph = create(GraphProtoSchema, {
    name: 'g',
    node: [
      create(NodeProtoSchema, { opType: 'Slice', name: 's', input: ['x'], output: ['a'], attribute: [ints('starts', [1, 2]), ints('ends', [4, 100]), ints('axes', [1, 2])] }),
      create(NodeProtoSchema, { opType: 'Clip', name: 'c', input: ['a'], output: ['b'], attribute: [float('min', -0.5), float('max', 0.75)] }),
      create(NodeProtoSchema, { opType: 'Pad', name: 'p', input: ['b'], output: ['d'], attribute: [ints('pads', [0, 1, 0, 0, 2, 1]), float('value', 0.25)] }),
      create(NodeProtoSchema, { opType: 'Relu', name: 'r', input: ['d'], output: ['y'] }),
      ...extra,
    ],
    input: [vi('x', [2, 5, 6])],
    output: [vi('y', [2, 6, 5])],
  });
  return onnxModel(create(ModelProtoSchema, { irVersion: 4n, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(opset) })], graph }));
}

describe('upgradeToOpset11', () => {
  it('adapts Slice/Clip/Pad so onnxruntime gives bit-identical outputs', async () => {
    const before = model(9);
    const f0 = join(dir, 'v9.onnx');
    await saveOnnxFile(before, f0);
    const after = model(9);
    const diags: Diagnostic[] = [];
    const r = upgradeToOpset11(after.proto, diags);
    expect(r).toEqual({ upgraded: true, blockers: [], adapted: { Slice: 1, Clip: 1, Pad: 1 } });
    expect(Number(after.proto.opsetImport[0]!.version)).toBe(11);
    expect(after.proto.irVersion).toBe(6n);
    expect(after.proto.graph!.node.every((n) => n.attribute.length === 0)).toBe(true);
    expect(diags[0]!.code).toBe('opset.upgraded');
    const f1 = join(dir, 'v11.onnx');
    await saveOnnxFile(after, f1);
    const g = rng(4);
    const feeds = { x: new ort.Tensor('float32', Float32Array.from({ length: 60 }, () => g() * 2 - 1), [2, 5, 6]) };
    const a = (await run(f0, feeds)).y!;
    const b = (await run(f1, feeds)).y!;
    expect(b.length).toBe(60);
    expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
  });

  it('refuses (and changes nothing) when an op changed meaning, or the model has functions', () => {
    const m = model(10, [create(NodeProtoSchema, { opType: 'Upsample', input: ['y', 'sc'], output: ['z'] })]);
    const r = upgradeToOpset11(m.proto, []);
    expect(r.upgraded).toBe(false);
    expect(r.blockers).toEqual(['Upsample ×1']);
    expect(m.proto.graph!.node[0]!.attribute.length).toBe(3);
    expect(Number(m.proto.opsetImport[0]!.version)).toBe(10);
    expect(upgradeToOpset11(model(13).proto, [])).toEqual({ upgraded: false, blockers: [], adapted: {} });
  });
});
