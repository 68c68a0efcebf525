import { describe, expect, it } from 'vitest';
import { Adam, createOptimizer, Sgd, type Optimizer } from '../../src/train/optim.js';
import { fvalue } from '../../src/engine/values.js';
import type { FValue } from '../../src/engine/types.js';
import { seededRandom } from '../../src/train/shuffle.js';
import { maxAbsDiff, torchJson } from './torch.js';

const SHAPES: Record<string, number[]> = { w: [4, 3], b: [3] };
const STEPS = 4;

function data(seed: number) {
  const r = seededRandom(seed);
  const rand = (n: number) => Array.from({ length: n }, () => r() * 2 - 1);
  const params = Object.fromEntries(Object.entries(SHAPES).map(([k, d]) => [k, rand(d.reduce((a, b) => a * b, 1))]));
  const grads = Array.from({ length: STEPS }, () => Object.fromEntries(Object.entries(SHAPES).map(([k, d]) => [k, rand(d.reduce((a, b) => a * b, 1))])));
  return { params, grads };
}

const CONFIGS = [
  { name: 'sgd', torch: 'torch.optim.SGD(ps, lr=0.1)', make: () => new Sgd({ lr: 0.1 }) },
  { name: 'sgd momentum+wd', torch: 'torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01)', make: () => new Sgd({ lr: 0.05, momentum: 0.9, weightDecay: 0.01 }) },
  { name: 'sgd dampening', torch: 'torch.optim.SGD(ps, lr=0.05, momentum=0.8, dampening=0.3)', make: () => new Sgd({ lr: 0.05, momentum: 0.8, dampening: 0.3 }) },
  { name: 'sgd nesterov', torch: 'torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)', make: () => new Sgd({ lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-3 }) },
  { name: 'adam', torch: 'torch.optim.Adam(ps, lr=0.01)', make: () => new Adam({ lr: 0.01 }) },
  { name: 'adam l2', torch: 'torch.optim.Adam(ps, lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)', make: () => new Adam({ lr: 0.02, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.05 }) },
  { name: 'adamw', torch: 'torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1)', make: () => createOptimizer({ type: 'adamw', lr: 0.01, weightDecay: 0.1 }) },
];

describe('optimisers vs torch.optim', () => {
  const { params, grads } = data(7);
  const ref = torchJson<Record<string, Record<string, number[]>>>(
    `
out = {}
cfgs = ${JSON.stringify(CONFIGS.map((c) => [c.name, c.torch]))}
for name, ctor in cfgs:
    ps = [torch.tensor(inp['params'][k], dtype=torch.float32, requires_grad=True) for k in ['w', 'b']]
    opt = eval(ctor)
    for g in inp['grads']:
        for p, k in zip(ps, ['w', 'b']):
            p.grad = torch.tensor(g[k], dtype=torch.float32)
        opt.step()
    out[name] = {k: p.detach().tolist() for p, k in zip(ps, ['w', 'b'])}
print(json.dumps(out))
`,
    { params, grads },
  );

  for (const cfg of CONFIGS) {
    it(`${cfg.name}: ${STEPS} steps match within 1e-5`, () => {
      const ps = new Map<string, FValue>(Object.entries(params).map(([k, v]) => [k, fvalue(SHAPES[k]!, Float32Array.from(v))]));
      const opt: Optimizer = cfg.make();
      for (const g of grads) opt.step(ps, new Map(Object.entries(g).map(([k, v]) => [k, fvalue(SHAPES[k]!, Float32Array.from(v))])));
      for (const k of Object.keys(SHAPES)) {
        const d = maxAbsDiff(ps.get(k)!.data, ref[cfg.name]![k]!);
        expect(d).toBeLessThan(1e-5);
      }
      // the parameters really moved (a no-op optimiser would pass a loose comparison otherwise)
      expect(maxAbsDiff(ps.get('w')!.data, params.w!)).toBeGreaterThan(1e-3);
    });
  }
});

describe('masks', () => {
  for (const make of [() => new Sgd({ lr: 0.1, momentum: 0.9, weightDecay: 0.1 }), () => new Adam({ lr: 0.1, weightDecay: 0.1, decoupled: true })]) {
    it(`keep pruned weights at zero through steps (${make().constructor.name})`, () => {
      const { params, grads } = data(11);
      const w = fvalue([4, 3], Float32Array.from(params.w!));
      const mask = Uint8Array.from([1, 0, 1, 0, 0, 1, 1, 1, 0, 1, 0, 1]);
      for (let i = 0; i < mask.length; i++) if (!mask[i]) w.data[i] = 0;
      const opt = make();
      opt.masks.set('w', mask);
      const gw = fvalue([4, 3], Float32Array.from(grads[0]!.w!));
      const before = Float32Array.from(gw.data);
      for (let s = 0; s < 3; s++) opt.step(new Map([['w', w]]), new Map([['w', gw]]));
      for (let i = 0; i < mask.length; i++) {
        if (!mask[i]) expect(w.data[i]).toBe(0);
        else expect(w.data[i]).not.toBe(Math.fround(params.w![i]!));
      }
      // the caller's gradient is not edited by masking
      expect([...gw.data]).toEqual([...before]);
    });
  }

  it('refuses a mask of the wrong size', () => {
    const opt = new Sgd({ lr: 0.1 });
    opt.masks.set('w', new Uint8Array(3));
    expect(() => opt.step(new Map([['w', fvalue([4])]]), new Map([['w', fvalue([4])]]))).toThrow(/E_OUT_OF_RANGE.*mask has 3 entries for 4/);
  });
});

describe('optimiser option checks', () => {
  it('refuses bad hyper-parameters (E_OUT_OF_RANGE) and unknown types (E_UNSUPPORTED)', () => {
    expect(() => new Sgd({ lr: -1 })).toThrow(/E_OUT_OF_RANGE.*lr/);
    expect(() => new Sgd({ lr: 0.1, nesterov: true })).toThrow(/E_OUT_OF_RANGE.*Nesterov/);
    expect(() => new Adam({ betas: [1, 0.9] })).toThrow(/E_OUT_OF_RANGE.*beta1/);
    expect(() => createOptimizer({ type: 'lion' } as never)).toThrow(/E_UNSUPPORTED.*lion/);
    const opt = new Sgd({ lr: 0.1 });
    expect(() => opt.step(new Map([['w', fvalue([4])]]), new Map([['w', fvalue([3])]]))).toThrow(/E_OUT_OF_RANGE.*gradient has 3 elements/);
  });
});
