/**
 * ONNX → TF conformance over the ONNX node tests in the corpus: every test whose ops are all in the
 * onnx-tf registry is converted (frozen, `constants`), run in TF.js and compared with the expected
 * outputs stored beside it (float: |got − want| ≤ 1e-4 + 1e-3·|want|; integers and bools exact).
 * Prints the pass rate over all tests and over the supported subset, and splits the rest of that
 * subset into forms the converter refuses by design (a correct TF graph that TF.js, the reference
 * executor, cannot run: the converter says so up front with "unsupported form") and real failures.
 * Usage: node dist/bench/conformance.js [--json] [--corpus <node-tests dir>] [--filter <substring>]
 */
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { dtypeInfo } from '../core/dtype.js';
import { typedView, type Tensor } from '../core/tensor.js';
import { onnxToTf, supportedOps } from '../convert/onnx-tf/index.js';
import { REFUSED_FORM } from '../convert/onnx-tf/context.js';
import { decodeOnnx } from '../formats/onnx/read.js';
import { decodeSequenceProto, stackSequence } from '../formats/onnx/sequence.js';
import { decodeTensorProto, tensorFromProtoSync } from '../formats/onnx/tensor.js';
import { toCarrier } from '../convert/onnx-tf/carriers.js';
import type { ValueInfoProto } from 'onnx-buf';
import type { GraphDef } from '../formats/savedmodel/gen/tensorflow/graph_pb.js';
import { runGraphDef } from '../formats/savedmodel/tfjs.js';
import { bf16ToF32Ref, f16ToF32Ref } from '../kernels/reference/cast.js';

export type Outcome = 'pass' | 'mismatch' | 'error' | 'refused' | 'unsupported';

export interface TestResult {
  test: string;
  outcome: Outcome;
  /** Largest deviation beyond tolerance (mismatch) or the error message. */
  detail?: string;
  ops: string[];
}

export interface ConformanceSummary {
  total: number;
  supported: number;
  passed: number;
  /** Supported-op tests whose form the converter refuses by design (see `Cx.refuse`). */
  refused: number;
  /** Supported-op tests that neither pass nor are refused by design. */
  failing: number;
  passRateAll: number;
  passRateSupported: number;
  results: TestResult[];
}

export const DEFAULT_NODE_TESTS = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../shared/corpus/onnx/node');

const ATOL = 1e-4;
const RTOL = 1e-3;

/** Element values as numbers; 16-bit floats decoded from their bit patterns. */
function values(t: Tensor): number[] {
  if (t.dtype === 'float16') return Array.from(f16ToF32Ref(typedView(t) as Uint16Array));
  if (t.dtype === 'bfloat16') return Array.from(bf16ToF32Ref(typedView(t) as Uint16Array));
  return Array.from(typedView(t) as ArrayLike<number | bigint>, (v) => Number(v));
}

/** Why `got` differs from `want`, or undefined when it matches. */
export function mismatch(got: Tensor, want: Tensor): string | undefined {
  if (got.shape.join(',') !== want.shape.join(',')) return `shape [${got.shape}] ≠ [${want.shape}]`;
  const g = values(got);
  const w = values(want);
  const exact = !dtypeInfo(want.dtype).isFloat;
  // Expected 16-bit floats are rounded; TF.js computes in float32.
  const atol = want.dtype === 'float16' || want.dtype === 'bfloat16' ? 1e-2 : ATOL;
  const rtol = want.dtype === 'float16' || want.dtype === 'bfloat16' ? 1e-2 : RTOL;
  for (let i = 0; i < w.length; i++) {
    const x = g[i]!;
    const y = w[i]!;
    if (x === y || (Number.isNaN(x) && Number.isNaN(y))) continue;
    if (exact || !(Math.abs(x - y) <= atol + rtol * Math.abs(y))) return `element ${i}: ${x} ≠ ${y}`;
  }
  return undefined;
}

/** Node names the given tensors depend on. */
export function reachable(graph: GraphDef, tensors: string[]): Set<string> {
  const byName = new Map(graph.node.map((n) => [n.name, n]));
  const seen = new Set<string>();
  const stack = tensors.map((t) => t.replace(/^\^/, '').replace(/:\d+$/, ''));
  while (stack.length) {
    const n = stack.pop()!;
    if (seen.has(n)) continue;
    seen.add(n);
    for (const i of byName.get(n)?.input ?? []) stack.push(i.replace(/^\^/, '').replace(/:\d+$/, ''));
  }
  return seen;
}

async function runOne(dir: string, test: string, ops: string[]): Promise<TestResult> {
  const base = join(dir, test);
  try {
    const bytes = new Uint8Array(await readFile(join(base, 'model.onnx')));
    const model = decodeOnnx(bytes, { path: `${test}/model.onnx` });
    const g = model.proto.graph!;
    const inits = new Set(g.initializer.map((t) => t.name));
    const inputs = g.input.filter((i) => !inits.has(i.name));
    const ds = join(base, 'test_data_set_0');
    // A value as the converted graph takes and gives it: sequences stacked, 8/4/2-bit dtypes in their carrier.
    const load = async (f: string, vi: ValueInfoProto): Promise<Tensor> => {
      const bytes = new Uint8Array(await readFile(join(ds, f)));
      if (vi.type?.value.case === 'sequenceType') return stackSequence(vi.name, decodeSequenceProto(bytes, f));
      return toCarrier(tensorFromProtoSync(decodeTensorProto(bytes, f)));
    };
    let res: Awaited<ReturnType<typeof onnxToTf>>;
    try {
      res = await onnxToTf(model, { constants: true });
    } catch (e) {
      // Only the converter's own up-front refusals count as by design; anything else is a failure.
      const msg = String((e as Error)?.message ?? e).split('\n')[0]!;
      return { test, outcome: msg.includes(`${REFUSED_FORM}:`) ? 'refused' : 'error', detail: msg, ops };
    }
    const feeds: Record<string, Tensor> = {};
    // Inputs the outputs do not depend on (folded away) are not fed: TF.js refuses feeds outside the graph it runs.
    const needed = reachable(res.graph, g.output.map((o) => res.signature.outputs[o.name]!.name));
    for (const [i, vi] of inputs.entries()) {
      const ref = res.signature.inputs[vi.name]!.name;
      if (needed.has(ref.replace(/:\d+$/, ''))) feeds[ref] = await load(`input_${i}.pb`, vi);
    }
    const outNames = g.output.map((o) => o.name);
    const got = await runGraphDef(res.graph, feeds, outNames.map((o) => res.signature.outputs[o]!.name), { fetchDtypes: outNames.map((o) => res.signature.outputs[o]!.dtype) });
    for (const [i, o] of outNames.entries()) {
      const why = mismatch(got[i]!, await load(`output_${i}.pb`, g.output[i]!));
      if (why) return { test, outcome: 'mismatch', detail: `${o}: ${why}`, ops };
    }
    return { test, outcome: 'pass', ops };
  } catch (e) {
    return { test, outcome: 'error', detail: String((e as Error)?.message ?? e).split('\n')[0], ops };
  }
}

export async function runConformance(dir = DEFAULT_NODE_TESTS, filter?: (test: string) => boolean): Promise<ConformanceSummary> {
  const supported = new Set(supportedOps());
  let index: Record<string, { ops: string[] }> | undefined;
  try {
    index = (JSON.parse(await readFile(join(dir, 'INDEX.json'), 'utf8')) as { tests: Record<string, { ops: string[] }> }).tests;
  } catch {
    index = undefined;
  }
  const tests = (await readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  const results: TestResult[] = [];
  for (const test of tests) {
    if (filter && !filter(test)) continue;
    let ops = index?.[test]?.ops;
    if (!ops) {
      const m = decodeOnnx(new Uint8Array(await readFile(join(dir, test, 'model.onnx'))));
      ops = (m.proto.graph?.node ?? []).map((n) => `${n.domain || 'ai.onnx'}::${n.opType}`);
    }
    // The registry keys ai.onnx ops by op type and other domains' as `domain::op` (ai.onnx.ml::Binarizer).
    const ok = ops.every((o) => supported.has(o.startsWith('ai.onnx::') ? o.slice('ai.onnx::'.length) : o));
    results.push(ok ? await runOne(dir, test, ops) : { test, outcome: 'unsupported', ops });
  }
  const passed = results.filter((r) => r.outcome === 'pass').length;
  const sup = results.filter((r) => r.outcome !== 'unsupported').length;
  const refused = results.filter((r) => r.outcome === 'refused').length;
  return { total: results.length, supported: sup, passed, refused, failing: sup - passed - refused, passRateAll: results.length ? passed / results.length : 0, passRateSupported: sup ? passed / sup : 0, results };
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({ options: { json: { type: 'boolean' }, corpus: { type: 'string' }, filter: { type: 'string' } } });
  const s = await runConformance(args.corpus ?? DEFAULT_NODE_TESTS, args.filter ? (t) => t.includes(args.filter!) : undefined);
  if (args.json) {
    process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
    return;
  }
  for (const r of s.results) if (r.outcome === 'mismatch' || r.outcome === 'error' || r.outcome === 'refused') process.stdout.write(`${r.outcome.padEnd(9)} ${r.test}: ${r.detail}\n`);
  const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
  process.stdout.write(`passed ${s.passed}/${s.total} node tests (${pct(s.passRateAll)}); ${s.passed}/${s.supported} of those whose ops are all supported (${pct(s.passRateSupported)})\n`);
  process.stdout.write(`of the ${s.supported} supported: ${s.passed} pass, ${s.refused} refused by design (unsupported form), ${s.failing} failing\n`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    process.stderr.write(`${(e as Error)?.message ?? String(e)}\n`);
    process.exitCode = 1;
  });
}
