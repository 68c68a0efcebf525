/**
 * Cross-check of the whole reverse pass against torch autograd (Debian's torch 1.13 through
 * /usr/bin/python3): a small MLP built in memory as ONNX with fixed weights, the same network in
 * torch, gradients of the same loss w.r.t. every parameter and the input compared within 1e-4.
 */
import { create } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema, AttributeProto_AttributeType as AT, GraphProtoSchema, ModelProtoSchema, NodeProtoSchema, OperatorSetIdProtoSchema,
  type NodeProto,
} from 'onnx-buf';
import { beforeAll, describe, expect, it } from 'vitest';
import { createEngine } from '../../src/engine/engine.js';
import type { FValue } from '../../src/engine/types.js';
import { fvalue } from '../../src/engine/values.js';
import { float32TensorProto, tensorValueInfo } from '../../src/formats/onnx/build.js';
import type { Kernels } from '../../src/kernels/loader.js';
import { runPython } from '../kernels/helpers.js';
import { closeness, randomValue, testKernels } from './helpers.js';

let K: Kernels;
beforeAll(async () => {
  K = await testKernels();
});

function node(opType: string, input: string[], output: string, ints: Record<string, number> = {}): NodeProto {
  return create(NodeProtoSchema, {
    opType, name: output, input, output: [output],
    attribute: Object.entries(ints).map(([name, v]) => create(AttributeProtoSchema, { name, type: AT.INT, i: BigInt(v) })),
  });
}

const B = 5, IN = 6, H1 = 8, H2 = 7, H3 = 6, OUT = 4;

/** Parameters with torch's layouts: MatMul weights [in, out], Gemm (transB) weights [out, in]. */
const PARAMS: Record<string, number[]> = { W1: [IN, H1], b1: [H1], W2: [H2, H1], b2: [H2], W3: [H2, H3], b3: [H3], W4: [OUT, H3], b4: [OUT] };

/**
 * x → MatMul+Add → Relu → Gemm(transB) → Tanh → MatMul+Add → Sigmoid → Gemm(transB) → (Log)Softmax.
 * W2 is read twice (Gemm and a Mul by 0.5 added back) to exercise accumulation across the graph.
 */
function mlp(head: 'LogSoftmax' | 'Softmax', weights: Map<string, FValue>) {
  const nodes = [
    node('MatMul', ['x', 'W1'], 'm1'), node('Add', ['m1', 'b1'], 'a1'), node('Relu', ['a1'], 'h1'),
    node('Mul', ['W2', 'half'], 'W2h'), node('Add', ['W2', 'W2h'], 'W2s'),
    node('Gemm', ['h1', 'W2s', 'b2'], 'g2', { transB: 1 }), node('Tanh', ['g2'], 'h2'),
    node('MatMul', ['h2', 'W3'], 'm3'), node('Add', ['m3', 'b3'], 'a3'), node('Sigmoid', ['a3'], 'h3'),
    node('Gemm', ['h3', 'W4', 'b4'], 'logits', { transB: 1 }), node(head, ['logits'], 'out', { axis: 1 }),
  ];
  const inits = [...weights].map(([n, v]) => float32TensorProto(n, v.dims, v.data));
  inits.push(float32TensorProto('half', [], Float32Array.of(0.5)));
  return create(ModelProtoSchema, {
    irVersion: 8n,
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 13n })],
    graph: create(GraphProtoSchema, { name: 'mlp', node: nodes, input: [tensorValueInfo('x', ['N', IN])], output: [tensorValueInfo('out', ['N', OUT])], initializer: inits }),
  });
}

const TORCH = `
import json, sys, torch
torch.set_grad_enabled(True)
def run(d):
  t = lambda k: torch.tensor(d['w'][k]['v'], dtype=torch.float32).reshape(d['w'][k]['dims']).requires_grad_(True)
  P = {k: t(k) for k in d['w']}
  x = torch.tensor(d['x'], dtype=torch.float32).reshape(${B}, ${IN}).requires_grad_(True)
  h1 = torch.relu(x @ P['W1'] + P['b1'])
  W2s = P['W2'] + P['W2'] * 0.5
  h2 = torch.tanh(h1 @ W2s.T + P['b2'])
  h3 = torch.sigmoid(h2 @ P['W3'] + P['b3'])
  logits = h3 @ P['W4'].T + P['b4']
  if d['head'] == 'LogSoftmax':
      out = torch.log_softmax(logits, dim=1)
      loss = torch.nn.functional.nll_loss(out, torch.tensor(d['labels']))
  else:
      out = torch.softmax(logits, dim=1)
      loss = ((out - torch.tensor(d['target']).reshape(${B}, ${OUT})) ** 2).mean()
  loss.backward()
  g = {k: v.grad.reshape(-1).tolist() for k, v in P.items()}
  g['x'] = x.grad.reshape(-1).tolist()
  return {'out': out.detach().reshape(-1).tolist(), 'loss': loss.item(), 'grads': g}
print(json.dumps([run(d) for d in json.load(sys.stdin)]))
`;

describe('gradients vs torch autograd', () => {
  it('MLPs with LogSoftmax+NLL and Softmax+MSE heads: dL/dparam for all 8 parameters and dL/dx within 1e-4', async () => {
    const weights = new Map<string, FValue>();
    let seed = 100;
    for (const [n, dims] of Object.entries(PARAMS)) weights.set(n, randomValue(dims, seed++, -0.8, 0.8));
    const x = randomValue([B, IN], 7, -2, 2);
    const labels = [0, 3, 1, 2, 3];
    const target = randomValue([B, OUT], 8, 0, 1);
    const heads = ['LogSoftmax', 'Softmax'] as const;

    const ours = [];
    for (const head of heads) {
      const engine = await createEngine(mlp(head, weights), { kernels: K });
      expect([...engine.params.keys()].sort()).toEqual([...Object.keys(PARAMS), 'half'].sort());
      const { values, tape } = engine.forward({ x });
      const out = values.out as FValue;
      // dL/d(out) for the losses torch computes: mean NLL over log-probabilities, or mean squared error.
      const seedG = new Float32Array(B * OUT);
      if (head === 'LogSoftmax') labels.forEach((c, i) => (seedG[i * OUT + c] = -1 / B));
      else out.data.forEach((p, i) => (seedG[i] = (2 * (p - target.data[i]!)) / (B * OUT)));
      ours.push({ out, grads: engine.backward(tape, { out: fvalue([B, OUT], seedG) }, ['x']) });
    }

    const payload = heads.map((head) => ({
      head, labels, x: Array.from(x.data), target: Array.from(target.data),
      w: Object.fromEntries([...weights].map(([n, v]) => [n, { dims: v.dims, v: Array.from(v.data) }])),
    }));
    const refs = JSON.parse(new TextDecoder().decode(runPython(TORCH, [], new TextEncoder().encode(JSON.stringify(payload))))) as {
      out: number[]; loss: number; grads: Record<string, number[]>;
    }[];
    heads.forEach((head, h) => {
      const { out, grads } = ours[h]!;
      const ref = refs[h]!;
      expect(closeness(out.data, ref.out), head).toBeLessThanOrEqual(1);
      for (const name of [...Object.keys(PARAMS), 'x']) {
        const g = grads.get(name);
        expect(g, `${head} ${name}`).toBeDefined();
        expect(g!.dims, `${head} ${name}`).toEqual(name === 'x' ? [B, IN] : PARAMS[name]);
        expect(closeness(g!.data, ref.grads[name]!), `${head} ${name}`).toBeLessThanOrEqual(1);
        // Not trivially zero: every parameter of this network influences the loss.
        expect(g!.data.some((v) => Math.abs(v) > 1e-6), `${head} ${name}`).toBe(true);
      }
    });
  });
});
