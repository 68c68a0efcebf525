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
    console.log(`conformance: passed ${s.passed}/${s.total} (${(100 * s.passRateAll).toFixed(1)}%), ${s.passed}/${s.supported} supported (${(100 * s.passRateSupported).toFixed(1)}%); ${s.refused} refused by design, ${s.failing} failing`);
    expect(s.total).toBe(192);
    expect(s.supported).toBeGreaterThanOrEqual(122);
    // The done-when of the conversion: every supported node test passes.
    expect(s.passed).toBe(s.supported);
    // Every supported test is accounted for: pass, refused by design, or a named failure.
    expect(s.passed + s.refused + s.failing).toBe(s.supported);
    expect(s.failing).toBe(bad.length);
    expect(s.failing).toBe(0);
    expect(s.refused).toBe(0);
    // Failures must be refusals or executor limits, never numbers that differ.
    expect(s.results.filter((r) => r.outcome === 'mismatch').map((r) => r.test)).toEqual([]);
    for (const r of bad) expect(r.detail).toMatch(/^E_[A-Z_]+: /);
    // Refusals by design are the converter's own, up front, and say why.
    for (const r of s.results.filter((x) => x.outcome === 'refused')) expect(r.detail, r.test).toMatch(/^E_UNSUPPORTED: unsupported form: .*(TF\.js|TensorFlow) has no/);
    // Spot checks: these ops must pass (the run-time parameter forms among them).
    const mustPass = ['test_abs', 'test_add_bcast', 'test_averagepool_2d_ceil', 'test_gelu_tanh_2', 'test_slice', 'test_edge_pad', 'test_resize_downsample_scales_linear',
      'test_resize_upsample_scales_linear', 'test_upsample_nearest', 'test_onehot_negative_indices', 'test_triu_zero', 'test_convtranspose_1d', 'test_spacetodepth_example',
      'test_reduce_l1_empty_set', 'test_attention_4d_fp16_expanded', 'test_layer_normalization_2d_axis_negative_1_expanded_ver18',
      'test_swish', 'test_gathernd_example_int32', 'test_scatternd', 'test_cumprod_2d_int32', 'test_top_k_uint64', 'test_group_normalization_example',
      'test_scatter_elements_with_axis', 'test_scatter_with_axis', 'test_nllloss_NC_expanded', 'test_compress_default_axis',
      // 8/4/2-bit dtypes in their carriers, bfloat16 held like float16, a sequence stacked on axis 0.
      'test_cast_FLOAT16_to_FLOAT8E4M3FNUZ', 'test_cast_FLOAT16_to_FLOAT8E5M2FNUZ', 'test_cast_FLOAT16_to_FLOAT4E2M1', 'test_cast_INT4_to_INT8',
      'test_cast_UINT2_to_UINT8', 'test_castlike_INT2_to_INT8', 'test_cast_e8m0_FLOAT8E8M0_to_FLOAT16', 'test_dequantizelinear_e4m3fn_float16',
      'test_dequantizelinear_e5m2', 'test_cast_FLOAT_to_BFLOAT16', 'test_identity_sequence'];
    for (const t of mustPass.filter((x) => s.results.some((r) => r.test === x))) {
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
