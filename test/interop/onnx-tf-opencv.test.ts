/**
 * The resnet18 conversion read by a second TF consumer: OpenCV dnn (`cv2.dnn.readNetFromTensorflow`,
 * Debian python3-opencv 4.6) loads the frozen GraphDef of our SavedModel and agrees with onnxruntime.
 *
 * OpenCV's TF importer assumes TF's NHWC graphs and keeps its own blobs NCHW: the graph is
 * converted with `nhwcIo` (so the Placeholder is NHWC and the input transpose cancels into the
 * first conv) and fed the ONNX NCHW batch unchanged. The other forms it needs are the converter's
 * defaults: zero `Pad` (not PadV2) before the MaxPool that follows a Relu, the global average pool
 * as `Mean` over NHWC [1, 2], and the Gemm weight stored pre-transposed (the importer ignores
 * `transpose_b`).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { toBinary } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../../src/core/tensor.js';
import { writeOnnxAsSavedModel, type OnnxToTfReport } from '../../src/convert/onnx-tf/index.js';
import { decodeOnnx } from '../../src/formats/onnx/read.js';
import { GraphDefSchema } from '../../src/formats/savedmodel/gen/tensorflow/graph_pb.js';
import { freezeSignature, readSavedModel, type FrozenGraph } from '../../src/formats/savedmodel/index.js';
import { memoryFolder } from '../formats/savedmodel/memory-folder.js';
import { maxDiff, rand, runOrt } from '../convert/onnx-tf-helpers.js';

const SCRIPT = resolve(import.meta.dirname, '../../bench/onnx-tf/export_torchvision.py');
const PY = '/usr/bin/python3';

/** Reads the .pb with OpenCV, runs one NCHW float32 batch (raw bytes on stdin), writes the output bytes. */
const CV_RUN = `
import sys, numpy as np, cv2
pb, n = sys.argv[1], int(sys.argv[2])
x = np.frombuffer(sys.stdin.buffer.read(), dtype=np.float32).reshape(n, 3, 224, 224)
net = cv2.dnn.readNetFromTensorflow(pb)
net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
net.setInput(x)
y = np.ascontiguousarray(net.forward(), dtype=np.float32)
sys.stderr.write("shape %s\\n" % (list(y.shape),))
sys.stdout.buffer.write(y.tobytes())
`;

function pythonHas(mod: string): boolean {
  try {
    execFileSync(PY, ['-c', `import ${mod}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const missing = ['torchvision', 'cv2'].filter((m) => !pythonHas(m));
if (missing.length) console.warn(`onnx-tf OpenCV cross-check: skipped, ${PY} cannot import ${missing.join(', ')} (Debian python3-torchvision, python3-opencv)`);

/** OpenCV 4.6's TF importer dispatch table, restricted to what a converted CNN may use. */
const OPENCV_TF_OPS = new Set(['Placeholder', 'Const', 'Identity', 'Conv2D', 'DepthwiseConv2dNative', 'Pad', 'BiasAdd', 'AddV2', 'Add', 'Sub',
  'Relu', 'Relu6', 'Sigmoid', 'Tanh', 'MaxPool', 'AvgPool', 'Mean', 'Reshape', 'MatMul', 'Transpose', 'Mul', 'ConcatV2', 'FusedBatchNormV3']);

describe.skipIf(missing.length > 0)('resnet18 SavedModel (nhwc-io) through OpenCV dnn readNetFromTensorflow', () => {
  let dir: string;
  let onnxBytes: Uint8Array;
  let report: OnnxToTfReport;
  let frozen: FrozenGraph;
  let pbPath: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ms-tf-cv-'));
    execFileSync(PY, [SCRIPT, dir, 'resnet18'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const path = join(dir, 'resnet18.onnx');
    onnxBytes = new Uint8Array(readFileSync(path));
    const { out, dir: folder } = memoryFolder();
    ({ report } = await writeOnnxAsSavedModel(decodeOnnx(onnxBytes, { path }), out, { nhwcIo: true }));
    frozen = await freezeSignature(await readSavedModel(folder, { path: `${path}.savedmodel` }));
    pbPath = join(dir, 'resnet18_frozen.pb');
    writeFileSync(pbPath, toBinary(GraphDefSchema, frozen.graph));
  }, 120_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the frozen graph uses only ops OpenCV imports, with an NHWC placeholder', () => {
    const ops: Record<string, number> = {};
    for (const n of frozen.graph.node) ops[n.op] = (ops[n.op] ?? 0) + 1;
    console.log(`resnet18 nhwc-io frozen graph: ${JSON.stringify(ops)}; transposes left ${report.transposesLeft}`);
    expect(Object.keys(ops).filter((op) => !OPENCV_TF_OPS.has(op))).toEqual([]);
    expect(ops.PadV2).toBeUndefined();
    expect(ops.Conv2D).toBe(20);
    expect(frozen.inputs.map((i) => [i.key, i.shape])).toEqual([['input', [-1, 224, 224, 3]]]);
    // The input transpose cancels into conv1; the one left turns the pooled [N,1,1,C] back to NCHW.
    expect(report.transposesLeft).toBeLessThanOrEqual(1);
    const mm = frozen.graph.node.find((n) => n.op === 'MatMul')!;
    expect(mm.attr.transpose_b?.value).toEqual({ case: 'b', value: false });
  });

  it('OpenCV matches onnxruntime within 1e-4 on 8 seeded random images', async () => {
    const x: Tensor = rand('input', [8, 3, 224, 224], 4242);
    const want = (await runOrt(onnxBytes, [x])).get('output')!;
    const raw = execFileSync(PY, ['-c', CV_RUN, pbPath, '8'], { input: x.data, maxBuffer: 1 << 26, stdio: ['pipe', 'pipe', 'pipe'] });
    const got: Tensor = { name: 'output', dtype: 'float32', shape: [8, 1000], data: new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength) };
    expect(got.data.byteLength).toBe(8 * 1000 * 4);
    const d = maxDiff(got, want);
    const ref = new Float32Array(want.data.slice().buffer);
    const scale = ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    console.log(`resnet18 OpenCV vs onnxruntime: max-abs ${d.toExponential(3)} (largest |output| ${scale.toFixed(3)})`);
    expect(scale).toBeGreaterThan(0.1);
    expect(d).toBeLessThanOrEqual(1e-4);
  }, 120_000);
});
