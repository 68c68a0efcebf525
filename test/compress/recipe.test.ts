import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRecipe, runRecipeOnnx, runRecipeWeights } from '../../src/compress/recipe.js';
import { ErrorCodes } from '../../src/core/errors.js';
import { readOnnx } from '../../src/formats/onnx/read.js';
import { onnxWeights } from '../../src/formats/onnx/weights.js';
import { MemorySource } from '../../src/io/source.js';

const SAMPLE = resolve(import.meta.dirname, '../../examples/sample/version-slim-320.onnx');
const load = () => readOnnx(new MemorySource(readFileSync(SAMPLE)), { path: SAMPLE });

describe('recipes', () => {
  it('parse with defaults filled in', () => {
    const r = parseRecipe(JSON.stringify({ steps: [{ pass: 'prune', method: 'nm' }, { pass: 'quantize', perChannel: true }, { pass: 'cast', to: 'float16' }], eval: {} }));
    expect(r.steps).toEqual([
      { pass: 'prune', method: 'nm', n: 2, m: 4, includeOneDim: false, exclude: [] },
      { pass: 'quantize', method: 'weight', dtype: 'int8', perChannel: true, symmetric: false, exclude: [] },
      { pass: 'cast', to: 'float16', keepIoTypes: true, blockOps: [] },
    ]);
    expect(r.eval).toEqual({ samples: 8 });
  });

  it.each([
    ['not json', '{steps:'],
    ['no steps', '{"steps": []}'],
    ['unknown field (a typo must not fall back to a default)', '{"steps": [{"pass": "quantize", "perChanel": true}]}'],
    ['unknown pass', '{"steps": [{"pass": "distill"}]}'],
    ['magnitude without sparsity', '{"steps": [{"pass": "prune", "method": "magnitude"}]}'],
    ['sparsity out of range', '{"steps": [{"pass": "prune", "sparsity": 2}]}'],
    ['bad cast target', '{"steps": [{"pass": "cast", "to": "int8"}]}'],
    ['bad block size', '{"steps": [{"pass": "quantize", "method": "int4", "blockSize": 8}]}'],
  ])('refuses %s with E_USAGE naming the file', (_what, text) => {
    expect(() => parseRecipe(text, 'r.json')).toThrow(expect.objectContaining({ code: ErrorCodes.USAGE, path: 'r.json' }));
  });

  it('chains prune → quantize on an ONNX model', async () => {
    const model = await load();
    const recipe = parseRecipe(JSON.stringify({ steps: [{ pass: 'prune', method: 'magnitude', sparsity: 0.5 }, { pass: 'quantize', perChannel: true, symmetric: true }] }));
    const seen: string[] = [];
    const results = await runRecipeOnnx(model, recipe, (i, s) => seen.push(`${i}:${s.pass}`));
    expect(seen).toEqual(['0:prune', '1:quantize']);
    const pruned = results[0]!.report as { totals: { sparsity: number } };
    expect(pruned.totals.sparsity).toBeGreaterThan(0.45);
    // Opset 9 model: weights dequantize through Cast → Sub → Mul, so count quantized weights and int8 initializers.
    expect((results[1]!.report as { quantized: unknown[] }).quantized.length).toBeGreaterThan(10);
    expect(model.proto.graph!.initializer.filter((t) => t.dataType === 3).length).toBeGreaterThan(10);
  });

  it('runs on weight containers, refusing graph-only methods', async () => {
    const set = onnxWeights(await load());
    const { set: out, results } = await runRecipeWeights(set, parseRecipe('{"steps": [{"pass": "prune", "method": "nm"}, {"pass": "cast", "to": "bfloat16"}]}'));
    expect(results).toHaveLength(2);
    const w = out.tensors.find((t) => t.name === 'base_net.1.3.weight')!;
    expect(w.dtype).toBe('bfloat16');
    await expect(runRecipeWeights(set, parseRecipe('{"steps": [{"pass": "quantize", "method": "dynamic"}]}'))).rejects.toMatchObject({ code: ErrorCodes.USAGE });
    await expect(runRecipeWeights(set, parseRecipe('{"steps": [{"pass": "prune", "method": "global", "sparsity": 0.5}]}'))).rejects.toMatchObject({ code: ErrorCodes.USAGE });
  });
});
