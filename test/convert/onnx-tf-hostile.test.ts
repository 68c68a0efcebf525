/**
 * Hostile attributes and shapes: every node-test model, with its integer / float attributes and input
 * dims replaced by extreme values (seeded), converts or fails with a ModelsmithError — never a
 * TypeError/RangeError, never a hang. Three mutations per model here; a longer run of the same loop
 * (1,920 mutations) found nothing either.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { onnxToTf } from '../../src/convert/onnx-tf/index.js';
import { isModelsmithError } from '../../src/core/errors.js';
import { decodeOnnx } from '../../src/formats/onnx/read.js';

const NODE_TESTS = resolve(import.meta.dirname, '../../../shared/corpus/onnx/node');
const EXTREMES = [0n, -1n, 1n, 2n, 3n, -2n, 7n, 64n, 1000n, 65536n, 2n ** 31n - 1n, -(2n ** 31n), 2n ** 40n, -(2n ** 62n)];
const FLOATS = [0, -1, 1e30, Number.NaN, Infinity];

describe('converting mutated node-test models', () => {
  it('never escapes as anything but a ModelsmithError, and never takes long', async () => {
    let seed = 12345;
    const rnd = (): number => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed / 2 ** 32;
    };
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const bad: string[] = [];
    let converted = 0;
    let refused = 0;
    const tests = readdirSync(NODE_TESTS).sort();
    for (const test of [...tests, ...tests, ...tests]) {
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(readFileSync(resolve(NODE_TESTS, test, 'model.onnx')));
      } catch {
        continue;
      }
      const m = decodeOnnx(bytes, { path: test });
      const g = m.proto.graph!;
      for (const n of g.node) {
        for (const a of n.attribute) {
          if (rnd() < 0.5) continue;
          if (a.type === 2) a.i = pick(EXTREMES);
          if (a.type === 7 && a.ints.length) a.ints[Math.floor(rnd() * a.ints.length)] = pick(EXTREMES);
          if (a.type === 1) a.f = pick(FLOATS);
        }
      }
      for (const vi of g.input) {
        const t = vi.type?.value;
        if (t?.case !== 'tensorType' || rnd() < 0.7) continue;
        for (const d of t.value.shape?.dim ?? []) if (d.value.case === 'dimValue' && rnd() < 0.5) d.value.value = pick(EXTREMES);
      }
      const t0 = performance.now();
      try {
        await onnxToTf(m, { constants: true });
        converted++;
      } catch (e) {
        if (!isModelsmithError(e)) bad.push(`${test}: ${String((e as Error)?.stack ?? e).split('\n').slice(0, 2).join(' ')}`);
        else refused++;
      }
      const ms = performance.now() - t0;
      if (ms > 5000) bad.push(`${test}: ${ms.toFixed(0)} ms`);
    }
    expect(bad).toEqual([]);
    // Both outcomes occur: the mutations are neither all harmless nor all rejected up front.
    expect(converted).toBeGreaterThan(60);
    expect(refused).toBeGreaterThan(60);
  }, 120_000);
});
