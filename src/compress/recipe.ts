/**
 * Recipes: a JSON file that chains compression passes, so a pipeline that was tuned once can be
 * re-run exactly (in CI, in a worker, from the CLI with `--recipe`). Example:
 *
 *   { "steps": [
 *       { "pass": "prune", "method": "nm", "n": 2, "m": 4 },
 *       { "pass": "quantize", "method": "weight", "dtype": "int8", "perChannel": true, "symmetric": true }
 *     ],
 *     "eval": { "samples": 8 } }
 *
 * Steps run in order on the same model. Every field is checked before anything runs, and an unknown
 * field is an error (a typo must not silently fall back to a default). Platform-neutral: the caller
 * reads the file and saves the result.
 */
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import type { OnnxModel } from '../formats/onnx/read.js';
import type { WeightSet } from '../formats/weights.js';
import { castModel } from './cast.js';
import { pruneWeights } from './prune.js';
import { quantizeDynamic } from './quantize/dynamic.js';
import { quantizeInt4 } from './quantize/int4.js';
import { quantizeWeights } from './quantize/weight.js';
import { castWeightSet } from './weights/cast.js';
import { pruneWeightSet } from './weights/prune.js';
import { quantizeWeightSet } from './weights/quantize.js';

export type RecipeStep =
  | { pass: 'quantize'; method: 'weight'; dtype: 'int8' | 'uint8'; perChannel: boolean; symmetric: boolean; exclude: string[]; minElements?: number }
  | { pass: 'quantize'; method: 'dynamic'; perChannel: boolean; reduceRange: boolean; exclude: string[]; minElements?: number }
  | { pass: 'quantize'; method: 'int4'; blockSize: number; symmetric: boolean; exclude: string[] }
  | { pass: 'cast'; to: 'float16' | 'bfloat16'; keepIoTypes: boolean; blockOps: string[] }
  | { pass: 'prune'; method: 'magnitude' | 'global' | 'nm'; sparsity?: number; n: number; m: number; includeOneDim: boolean; exclude: string[] };

export interface Recipe {
  steps: RecipeStep[];
  /** Evaluate the result against the input when done (ONNX only; needs onnxruntime-node). */
  eval?: { samples: number; seed?: number };
}

type Json = Record<string, unknown>;

/** Parse and check a recipe; every problem is E_USAGE naming the step and field. */
export function parseRecipe(text: string, path = '<recipe>'): Recipe {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ModelsmithError(ErrorCodes.USAGE, `recipe is not valid JSON: ${(e as Error).message}`, { path });
  }
  const top = obj(raw, 'recipe', path);
  only(top, ['steps', 'eval'], 'recipe', path);
  if (!Array.isArray(top.steps) || top.steps.length === 0) throw usage('recipe.steps must be a non-empty array', path);
  const steps = top.steps.map((s, i) => parseStep(s, `steps[${i}]`, path));
  const recipe: Recipe = { steps };
  if (top.eval !== undefined) {
    const e = obj(top.eval, 'eval', path);
    only(e, ['samples', 'seed'], 'eval', path);
    recipe.eval = { samples: int(e.samples ?? 8, 'eval.samples', path, 1, 10_000) };
    if (e.seed !== undefined) recipe.eval.seed = int(e.seed, 'eval.seed', path, 0, 2 ** 32 - 1);
  }
  return recipe;
}

function parseStep(raw: unknown, where: string, path: string): RecipeStep {
  const s = obj(raw, where, path);
  const pass = s.pass;
  const exclude = () => strings(s.exclude ?? [], `${where}.exclude`, path);
  if (pass === 'quantize') {
    const method = s.method ?? 'weight';
    if (method === 'weight') {
      only(s, ['pass', 'method', 'dtype', 'perChannel', 'symmetric', 'exclude', 'minElements'], where, path);
      const dtype = oneOf(s.dtype ?? 'int8', ['int8', 'uint8'] as const, `${where}.dtype`, path);
      return { pass, method, dtype, perChannel: bool(s.perChannel ?? false, `${where}.perChannel`, path), symmetric: bool(s.symmetric ?? false, `${where}.symmetric`, path), exclude: exclude(), ...minEl(s, where, path) };
    }
    if (method === 'dynamic') {
      only(s, ['pass', 'method', 'perChannel', 'reduceRange', 'exclude', 'minElements'], where, path);
      return { pass, method, perChannel: bool(s.perChannel ?? false, `${where}.perChannel`, path), reduceRange: bool(s.reduceRange ?? false, `${where}.reduceRange`, path), exclude: exclude(), ...minEl(s, where, path) };
    }
    if (method === 'int4') {
      only(s, ['pass', 'method', 'blockSize', 'symmetric', 'exclude'], where, path);
      return { pass, method, blockSize: int(s.blockSize ?? 32, `${where}.blockSize`, path, 16, 256), symmetric: bool(s.symmetric ?? true, `${where}.symmetric`, path), exclude: exclude() };
    }
    throw usage(`${where}.method must be weight, dynamic or int4`, path);
  }
  if (pass === 'cast') {
    only(s, ['pass', 'to', 'keepIoTypes', 'blockOps'], where, path);
    return { pass, to: oneOf(s.to, ['float16', 'bfloat16'] as const, `${where}.to`, path), keepIoTypes: bool(s.keepIoTypes ?? true, `${where}.keepIoTypes`, path), blockOps: strings(s.blockOps ?? [], `${where}.blockOps`, path) };
  }
  if (pass === 'prune') {
    only(s, ['pass', 'method', 'sparsity', 'n', 'm', 'includeOneDim', 'exclude'], where, path);
    const method = oneOf(s.method ?? 'magnitude', ['magnitude', 'global', 'nm'] as const, `${where}.method`, path);
    const step: RecipeStep = { pass, method, n: int(s.n ?? 2, `${where}.n`, path, 1, 256), m: int(s.m ?? 4, `${where}.m`, path, 1, 256), includeOneDim: bool(s.includeOneDim ?? false, `${where}.includeOneDim`, path), exclude: exclude() };
    if (s.sparsity !== undefined) {
      if (typeof s.sparsity !== 'number' || !(s.sparsity >= 0 && s.sparsity <= 1)) throw usage(`${where}.sparsity must be a number in [0, 1]`, path);
      step.sparsity = s.sparsity;
    } else if (method !== 'nm') throw usage(`${where}: method ${method} needs sparsity`, path);
    return step;
  }
  throw usage(`${where}.pass must be quantize, cast or prune`, path);
}

export interface RecipeStepResult {
  step: RecipeStep;
  report: unknown;
}

/** Run the steps on an ONNX model, in place. */
export async function runRecipeOnnx(model: OnnxModel, recipe: Recipe, onStep?: (i: number, step: RecipeStep) => void): Promise<RecipeStepResult[]> {
  const results: RecipeStepResult[] = [];
  for (const [i, step] of recipe.steps.entries()) {
    onStep?.(i, step);
    results.push({ step, report: (await runOnnxStep(model, step)).report });
  }
  return results;
}

function runOnnxStep(model: OnnxModel, s: RecipeStep): Promise<{ report: unknown }> {
  const names = (ex: string[]) => ({ names: ex });
  switch (s.pass) {
    case 'quantize':
      if (s.method === 'weight') {
        return quantizeWeights(model, { dtype: s.dtype, perChannel: s.perChannel, symmetric: s.symmetric, exclude: names(s.exclude), ...(s.minElements !== undefined ? { minElements: s.minElements } : {}) });
      }
      if (s.method === 'dynamic') {
        return quantizeDynamic(model, { perChannel: s.perChannel, reduceRange: s.reduceRange, exclude: names(s.exclude), ...(s.minElements !== undefined ? { minElements: s.minElements } : {}) });
      }
      return quantizeInt4(model, { blockSize: s.blockSize, symmetric: s.symmetric, exclude: names(s.exclude) });
    case 'cast':
      return castModel(model, { to: s.to, keepIoTypes: s.keepIoTypes, blockOps: s.blockOps });
    case 'prune':
      return pruneWeights(model, { method: s.method, ...(s.method === 'nm' ? { n: s.n, m: s.m } : {}), includeOneDim: s.includeOneDim, exclude: names(s.exclude), ...(s.sparsity !== undefined ? { sparsity: s.sparsity } : {}) });
  }
}

/** Run the steps on a weight container; returns the transformed (still lazy) set. */
export async function runRecipeWeights(set: WeightSet, recipe: Recipe): Promise<{ set: WeightSet; results: RecipeStepResult[] }> {
  const results: RecipeStepResult[] = [];
  let cur = set;
  for (const s of recipe.steps) {
    let r: { set: WeightSet; report: unknown };
    if (s.pass === 'cast') r = await castWeightSet(cur, { to: s.to });
    else if (s.pass === 'prune') {
      if (s.method === 'global') throw new ModelsmithError(ErrorCodes.USAGE, 'prune method global needs a whole ONNX model; weight containers support magnitude and nm');
      r = await pruneWeightSet(cur, { method: s.method, n: s.n, m: s.m, includeOneDim: s.includeOneDim, exclude: s.exclude, ...(s.sparsity !== undefined ? { sparsity: s.sparsity } : {}) });
    } else {
      if (s.method === 'dynamic') throw new ModelsmithError(ErrorCodes.USAGE, 'quantize method dynamic rewrites a graph; weight containers support weight and int4');
      const scheme = s.method === 'int4' ? (s.symmetric ? 'int4' : 'uint4') : s.dtype;
      r = await quantizeWeightSet(cur, {
        scheme, exclude: s.exclude,
        ...(s.method === 'weight' ? { perChannel: s.perChannel, symmetric: s.symmetric } : { blockSize: s.blockSize }),
      });
    }
    cur = r.set;
    results.push({ step: s, report: r.report });
  }
  return { set: cur, results };
}

function usage(msg: string, path: string): ModelsmithError {
  return new ModelsmithError(ErrorCodes.USAGE, msg, { path });
}
function obj(v: unknown, where: string, path: string): Json {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw usage(`${where} must be an object`, path);
  return v as Json;
}
function only(o: Json, keys: string[], where: string, path: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw usage(`${where}: unknown field '${k}' (allowed: ${keys.join(', ')})`, path);
}
function bool(v: unknown, where: string, path: string): boolean {
  if (typeof v !== 'boolean') throw usage(`${where} must be true or false`, path);
  return v;
}
function int(v: unknown, where: string, path: string, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw usage(`${where} must be an integer in ${lo}..${hi}`, path);
  return v;
}
function strings(v: unknown, where: string, path: string): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw usage(`${where} must be an array of strings`, path);
  return v as string[];
}
function oneOf<T extends string>(v: unknown, allowed: readonly T[], where: string, path: string): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) throw usage(`${where} must be one of ${allowed.join(', ')}`, path);
  return v as T;
}
function minEl(s: Json, where: string, path: string): { minElements?: number } {
  return s.minElements === undefined ? {} : { minElements: int(s.minElements, `${where}.minElements`, path, 1, Number.MAX_SAFE_INTEGER) };
}
