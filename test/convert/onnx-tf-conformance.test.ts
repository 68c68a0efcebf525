/** The conformance runner over the corpus's ONNX node tests (expected outputs from the ONNX reference implementation). */
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mismatch, runConformance } from '../../src/bench/conformance.js';
import { tensorOf } from './onnx-tf-helpers.js';

const NODE_TESTS = resolve(import.meta.dirname, '../../../shared/corpus/onnx/node');

describe('ONNX node-test conformance of the TF conversion', () => {
  it('passes the supported node tests and never produces a silently wrong result', async () => {
    const s = await runConformance(NODE_TESTS);
    const bad = s.results.filter((r) => r.outcome === 'mismatch' || r.outcome === 'error');
    console.log(`conformance: passed ${s.passed}/${s.total} (${(100 * s.passRateAll).toFixed(1)}%), ${s.passed}/${s.supported} supported (${(100 * s.passRateSupported).toFixed(1)}%)`);
    expect(s.total).toBe(192);
    expect(s.supported).toBeGreaterThanOrEqual(110);
    expect(s.passed).toBeGreaterThanOrEqual(82);
    // Failures must be refusals or executor limits, never numbers that differ.
    expect(s.results.filter((r) => r.outcome === 'mismatch').map((r) => r.test)).toEqual([]);
    for (const r of bad) expect(r.detail).toMatch(/^E_[A-Z_]+: /);
    // Spot checks: these ops must pass.
    for (const t of ['test_abs', 'test_add_bcast', 'test_averagepool_2d_ceil', 'test_gelu_tanh_2'].filter((x) => s.results.some((r) => r.test === x))) {
      expect(s.results.find((r) => r.test === t)!.outcome, t).toBe('pass');
    }
  });

  it('compares floats with tolerance and integers exactly', () => {
    const w = tensorOf('w', 'float32', [2], [1, 2]);
    expect(mismatch(tensorOf('g', 'float32', [2], [1.00005, 2]), w)).toBeUndefined();
    expect(mismatch(tensorOf('g', 'float32', [2], [1.01, 2]), w)).toContain('element 0');
    expect(mismatch(tensorOf('g', 'float32', [1, 2], [1, 2]), w)).toContain('shape');
    expect(mismatch(tensorOf('g', 'int32', [1], [3]), tensorOf('w', 'int64', [1], [4]))).toContain('3 ≠ 4');
  });
});
