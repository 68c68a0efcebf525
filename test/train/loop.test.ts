import { beforeAll, describe, expect, it } from 'vitest';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import { arrayBatches } from '../../src/train/data.js';
import { evaluate, train, type StepProgress } from '../../src/train/loop.js';
import { Adam, Sgd } from '../../src/train/optim.js';
import { BatchStream } from '../../src/train/stream.js';
import { blobs, mlp } from './tiny.js';

const data = blobs(512, 8, 3, 42);
const test = blobs(256, 8, 3, 42);

describe('training loop on the engine', () => {
  let engine: Engine;
  beforeAll(async () => { engine = await createEngine(mlp(8, 16, 3, 5)); });

  it('reduces the loss and raises accuracy on a separable problem', () => {
    const before = evaluate(engine, arrayBatches(test, { batchSize: 64 })(0));
    const steps: StepProgress[] = [];
    const r = train(engine, arrayBatches(data, { batchSize: 32, seed: 3 }), { epochs: 4, optimizer: new Adam({ lr: 0.01 }), onProgress: (p) => steps.push(p) });
    const after = evaluate(engine, arrayBatches(test, { batchSize: 64 })(0));
    expect(r.steps).toBe(4 * 16);
    expect(steps.length).toBe(64);
    expect(steps.at(-1)).toMatchObject({ epoch: 3, step: 15, globalStep: 63 });
    expect(r.epochs.map((e) => e.samples)).toEqual([512, 512, 512, 512]);
    expect(r.epochs[3]!.loss).toBeLessThan(r.epochs[0]!.loss * 0.6);
    expect(after.loss).toBeLessThan(before.loss * 0.5);
    expect(after.accuracy).toBeGreaterThan(0.9);
    expect(after.accuracy).toBeGreaterThan(before.accuracy + 0.2);
  });

  it('stops at maxSteps', async () => {
    const e = await createEngine(mlp(8, 16, 3, 5));
    const r = train(e, arrayBatches(data, { batchSize: 32, seed: 3 }), { epochs: 10, maxSteps: 20, optimizer: new Sgd({ lr: 0.1 }) });
    expect(r.steps).toBe(20);
    expect(r.epochs.map((x) => x.steps)).toEqual([16, 4]);
  });

  it('cosine decay sets lr₀·½(1 + cos(π·e/E)) per epoch; an unknown decay is E_UNSUPPORTED', async () => {
    const e = await createEngine(mlp(8, 16, 3, 5));
    const opt = new Sgd({ lr: 0.1 });
    const lrs: number[] = [];
    train(e, arrayBatches(data, { batchSize: 128 }), { epochs: 4, optimizer: opt, lrDecay: 'cosine', onEpoch: () => lrs.push(opt.lr) });
    [0.1, 0.05 * (1 + Math.SQRT1_2), 0.05, 0.05 * (1 - Math.SQRT1_2)].forEach((v, i) => expect(lrs[i]).toBeCloseTo(v, 12));
    expect(() => train(e, [], { epochs: 1, optimizer: opt, lrDecay: 'step' as never })).toThrow(/E_UNSUPPORTED.*lr decay/);
  });

  it('the same seed gives the same trained weights', async () => {
    const runOnce = async (): Promise<Float32Array> => {
      const e = await createEngine(mlp(8, 16, 3, 9));
      train(e, arrayBatches(data, { batchSize: 32, seed: 11 }), { epochs: 1, optimizer: new Sgd({ lr: 0.05, momentum: 0.9 }) });
      return e.params.get('W1')!.data;
    };
    expect([...(await runOnce())]).toEqual([...(await runOnce())]);
  });

  it('refuses unlabelled data for cross-entropy (E_USAGE), bad epochs (E_OUT_OF_RANGE), empty data (E_USAGE)', () => {
    const unlabelled = arrayBatches({ ...data, labels: undefined }, { batchSize: 32 });
    expect(() => train(engine, unlabelled, { epochs: 1, optimizer: new Sgd({ lr: 0.1 }) })).toThrow(/E_USAGE.*needs labels/);
    expect(() => train(engine, unlabelled, { epochs: -1, optimizer: new Sgd({ lr: 0.1 }) })).toThrow(/E_OUT_OF_RANGE/);
    expect(() => train(engine, [], { epochs: 1, output: 'nope', optimizer: new Sgd({ lr: 0.1 }) })).not.toThrow();
    expect(() => new BatchStream([]).next()).toThrow(/E_USAGE.*no batches/);
    const one = [...arrayBatches(data, { batchSize: 4, limit: 4 })(0)];
    expect(() => train(engine, one, { epochs: 1, output: 'nope', optimizer: new Sgd({ lr: 0.1 }) })).toThrow(/E_USAGE|nope/);
  });
});
