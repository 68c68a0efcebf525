/**
 * The GEMM bench baseline: onnxruntime-node's MatMul on the same shape, one thread, in the same
 * process. Both operands are graph inputs (not initializers) so ORT cannot pre-pack B once at
 * session creation: like our kernel, it packs on every call. The model is built in memory and
 * written to a temp file because that is the session-creation path our ORT wrapper types.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import { GraphProtoSchema, ModelProtoSchema, NodeProtoSchema, OperatorSetIdProtoSchema } from 'onnx-buf';
import { tensorValueInfo } from '../formats/onnx/build.js';
import { loadOrt } from '../eval/ort.js';

/** A MatMul model Y[m,n] = A[m,k]·B[k,n], serialized. */
export function matmulModelBytes(m: number, n: number, k: number): Uint8Array {
  const graph = create(GraphProtoSchema, {
    name: 'gemm_bench',
    node: [create(NodeProtoSchema, { opType: 'MatMul', name: 'mm', input: ['A', 'B'], output: ['Y'] })],
    input: [tensorValueInfo('A', [m, k]), tensorValueInfo('B', [k, n])],
    output: [tensorValueInfo('Y', [m, n])],
  });
  const proto = create(ModelProtoSchema, { irVersion: 8n, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 17n })], graph });
  return toBinary(ModelProtoSchema, proto);
}

/** A ready MatMul session on fixed inputs: `run()` does one product. */
export interface OrtMatMul {
  run(): Promise<void>;
  release(): Promise<void>;
}

/**
 * Opens an onnxruntime-node MatMul session (one intra-op and one inter-op thread) for
 * A (m×k) · B (k×n). Undefined when onnxruntime-node cannot be loaded: the bench then reports
 * no baseline rather than failing.
 */
export async function openOrtMatMul(a: Float32Array, b: Float32Array, m: number, n: number, k: number): Promise<OrtMatMul | undefined> {
  let ort;
  try {
    ort = await loadOrt();
  } catch {
    return undefined;
  }
  const dir = await mkdtemp(join(tmpdir(), 'modelsmith-gemm-'));
  try {
    const path = join(dir, 'matmul.onnx');
    await writeFile(path, matmulModelBytes(m, n, k));
    const session = await ort.InferenceSession.create(path, {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
    const feeds = { A: new ort.Tensor('float32', a, [m, k]), B: new ort.Tensor('float32', b, [k, n]) };
    return {
      run: async () => {
        await session.run(feeds);
      },
      release: () => session.release(),
    };
  } finally {
    // The session has read the file; it is not needed afterwards.
    await rm(dir, { recursive: true, force: true });
  }
}
