import { describe, expect, it } from 'vitest';
import { accuracy, crossEntropy, distillationLoss } from '../../src/train/losses.js';
import { fvalue } from '../../src/engine/values.js';
import { seededRandom } from '../../src/train/shuffle.js';
import { maxAbsDiff, torchJson } from './torch.js';

function randomLogits(n: number, c: number, seed: number, scale = 4): Float32Array {
  const r = seededRandom(seed);
  return Float32Array.from({ length: n * c }, () => (r() * 2 - 1) * scale);
}

const N = 7, C = 5;
const s = randomLogits(N, C, 1);
const t = randomLogits(N, C, 2, 6);
const y = [0, 4, 2, 2, 1, 3, 4];

describe('losses vs torch', () => {
  const ref = torchJson<{ ce: number; ceGrad: number[]; kd: Record<string, { loss: number; grad: number[] }> }>(
    `
s = torch.tensor(inp['s'], dtype=torch.float32).reshape(${N}, ${C}).requires_grad_()
t = torch.tensor(inp['t'], dtype=torch.float32).reshape(${N}, ${C})
y = torch.tensor(inp['y'])
ce = F.cross_entropy(s, y)
ce.backward()
out = {'ce': ce.item(), 'ceGrad': s.grad.flatten().tolist(), 'kd': {}}
for T, a in [(1.0, 0.5), (4.0, 0.9), (2.5, 1.0), (3.0, 0.0)]:
    s.grad = None
    kl = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction='batchmean')
    loss = a * T * T * kl + (1 - a) * F.cross_entropy(s, y)
    loss.backward()
    out['kd'][f'{T}/{a}'] = {'loss': loss.item(), 'grad': s.grad.flatten().tolist()}
print(json.dumps(out))
`,
    { s: [...s], t: [...t], y },
  );

  it('cross-entropy loss and gradient match F.cross_entropy', () => {
    const r = crossEntropy(fvalue([N, C], s), y);
    expect(Math.abs(r.loss - ref.ce)).toBeLessThan(1e-5);
    expect(maxAbsDiff(r.grad.data, ref.ceGrad)).toBeLessThan(1e-6);
    expect(r.correct).toBe(Math.round(accuracy(fvalue([N, C], s), y) * N));
  });

  for (const [T, a] of [[1, 0.5], [4, 0.9], [2.5, 1], [3, 0]] as const) {
    it(`distillation loss T=${T} alpha=${a} matches α·T²·KL + (1-α)·CE`, () => {
      const r = distillationLoss(fvalue([N, C], s), fvalue([N, C], t), y, { temperature: T, alpha: a });
      const key = `${T.toFixed(1)}/${a.toFixed(1)}`;
      const want = ref.kd[key]!;
      expect(Math.abs(r.loss - want.loss)).toBeLessThan(1e-5);
      expect(maxAbsDiff(r.grad.data, want.grad)).toBeLessThan(1e-6);
    });
  }

  it('distillation loss is zero with zero gradient when the student equals the teacher and alpha = 1', () => {
    const r = distillationLoss(fvalue([N, C], t), fvalue([N, C], Float32Array.from(t)), undefined, { temperature: 3, alpha: 1 });
    expect(Math.abs(r.loss)).toBeLessThan(1e-9);
    expect(maxAbsDiff(r.grad.data, new Float32Array(N * C))).toBeLessThan(1e-9);
  });

  it('accuracy takes the first maximum', () => {
    const l = fvalue([2, 3], Float32Array.from([1, 3, 3, 0, 0, 0]));
    expect(accuracy(l, [1, 0])).toBe(1);
    expect(accuracy(l, [2, 1])).toBe(0);
  });

  it('refuses bad labels, shapes and options with E_OUT_OF_RANGE / E_UNSUPPORTED', () => {
    const l = fvalue([N, C], s);
    expect(() => crossEntropy(l, [0, 1])).toThrow(/E_OUT_OF_RANGE.*2 labels for a batch of 7/);
    expect(() => crossEntropy(l, [0, 1, 2, 3, 4, 5, 0])).toThrow(/E_OUT_OF_RANGE.*label 5 of sample 5/);
    expect(() => crossEntropy(fvalue([N * C], s), y)).toThrow(/E_UNSUPPORTED.*\[batch, classes\]/);
    expect(() => distillationLoss(l, fvalue([N, C + 1]), y, { temperature: 1, alpha: 0.5 })).toThrow(/E_OUT_OF_RANGE.*do not match/);
    expect(() => distillationLoss(l, l, y, { temperature: 0, alpha: 0.5 })).toThrow(/E_OUT_OF_RANGE.*temperature/);
    expect(() => distillationLoss(l, l, y, { temperature: 1, alpha: 1.5 })).toThrow(/E_OUT_OF_RANGE.*alpha/);
  });
});
