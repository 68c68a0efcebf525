/**
 * OpenCV dnn as the reference executor for Caffe nets (see /work/shared/docs/oracles.md), and the
 * ORT side of the comparison. One python process runs every job: onnx.checker on the converted model,
 * then `cv2.dnn.readNetFromCaffe(prototxt, caffemodel)` forward on each input.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { caffeToOnnx, type CaffeToOnnxResult } from '../../../src/convert/caffe-onnx/index.js';
import type { NetParameter } from '../../../src/formats/caffe/index.js';
import { onnxModel } from '../../../src/formats/onnx/read.js';
import { encodeOnnx } from '../../../src/formats/onnx/write.js';
import { seededFloats } from './helpers.js';

const ORACLE = `
import json, sys
import numpy as np
import cv2
import onnx
jobs = json.load(sys.stdin)
out = []
for j in jobs:
    r = {"name": j["name"]}
    try:
        onnx.checker.check_model(onnx.load(j["onnx"]))
        r["checker"] = "ok"
    except Exception as e:
        r["checker"] = (type(e).__name__ + ": " + str(e))[:300]
    try:
        net = cv2.dnn.readNetFromCaffe(j["prototxt"], j["caffemodel"])
        results = []
        for k, run in enumerate(j["runs"]):
            for inp in run:
                x = np.fromfile(inp["file"], dtype=np.float32).reshape(inp["shape"])
                net.setInput(x, inp["name"])
            ys = net.forward(j["layers"])
            files = []
            for n, y in enumerate(ys):
                f = "%s/%s_cv_%d_%d.bin" % (j["dir"], j["name"], k, n)
                np.ascontiguousarray(y, dtype=np.float32).tofile(f)
                files.append(f)
            results.append(files)
        r["runs"] = results
    except Exception as e:
        r["error"] = (type(e).__name__ + ": " + str(e))[:500]
    out.append(r)
sys.stdout.write(json.dumps(out))
`;

export interface OracleCase {
  name: string;
  /** Absolute paths of the Caffe files OpenCV loads. */
  prototxtPath: string;
  caffemodelPath: string;
  deploy: NetParameter;
  weights: NetParameter;
}

export interface CaseOutcome {
  name: string;
  checker: string;
  error?: string;
  result: CaffeToOnnxResult;
  /** Worst |ORT − OpenCV| over all runs and outputs. */
  worst: number;
  /** Worst difference per output name (for failure messages). */
  perOutput: Record<string, number>;
  /** Largest |output| seen (so a test can tell a real comparison from all-zero outputs). */
  largest: number;
  /** True when some output differs between two inputs (the net is not constant). */
  varies: boolean;
}

/** Convert each case, run ORT and OpenCV on `runs` seeded inputs, and compare. */
export async function compareWithOpenCV(dir: string, cases: OracleCase[], runs = 8): Promise<CaseOutcome[]> {
  const ort = await import('onnxruntime-node');
  const jobs = [];
  const prepared = [];
  for (const c of cases) {
    const result = caffeToOnnx(c.deploy, c.weights, { path: c.caffemodelPath });
    const onnxPath = join(dir, `${c.name}.onnx`);
    const bytes = await encodeOnnx(onnxModel(result.model));
    writeFileSync(onnxPath, bytes);
    const inputRuns = [];
    for (let k = 0; k < runs; k++) {
      inputRuns.push(result.report.inputs.map((inp, i) => {
        const data = seededFloats(inp.shape.reduce((a, b) => a * b, 1), 7919 * k + 31 * i + c.name.length + 1);
        const file = join(dir, `${c.name}_in_${k}_${i}.bin`);
        writeFileSync(file, data);
        return { name: inp.name, shape: inp.shape, file, data };
      }));
    }
    prepared.push({ c, result, bytes, inputRuns });
    jobs.push({
      name: c.name, dir, onnx: onnxPath, prototxt: c.prototxtPath, caffemodel: c.caffemodelPath,
      runs: inputRuns.map((r) => r.map(({ name, shape, file }) => ({ name, shape, file }))),
      layers: result.report.outputs.map((o) => o.layer),
    });
  }
  const r = spawnSync('/usr/bin/python3', ['-c', ORACLE], { input: JSON.stringify(jobs), encoding: 'utf8', maxBuffer: 1 << 26, timeout: 120_000 });
  if (r.status !== 0) throw new Error(`python oracle failed: ${r.stderr}`);
  const oracle = JSON.parse(r.stdout) as { name: string; checker: string; error?: string; runs?: string[][] }[];
  const outcomes: CaseOutcome[] = [];
  for (const p of prepared) {
    const o = oracle.find((x) => x.name === p.c.name)!;
    const outcome: CaseOutcome = { name: p.c.name, checker: o.checker, result: p.result, worst: Infinity, largest: 0, varies: false, perOutput: {} };
    if (o.error !== undefined || !o.runs) {
      outcome.error = o.error ?? 'no runs';
      outcomes.push(outcome);
      continue;
    }
    const session = await ort.InferenceSession.create(p.bytes, { executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1 });
    try {
      let worst = 0;
      let first: Float32Array[] | undefined;
      for (let k = 0; k < runs; k++) {
        const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {};
        for (const inp of p.inputRuns[k]!) feeds[inp.name] = new ort.Tensor('float32', inp.data, inp.shape);
        const out = await session.run(feeds);
        const outs: Float32Array[] = [];
        p.result.report.outputs.forEach((spec, n) => {
          const got = out[spec.name]!.data as Float32Array;
          outs.push(got);
          const want = new Float32Array(Uint8Array.from(readFileSync(o.runs![k]![n]!)).buffer);
          if (want.length !== got.length) {
            worst = Infinity;
            outcome.perOutput[spec.name] = Infinity;
            return;
          }
          for (let i = 0; i < got.length; i++) {
            const d = Math.abs(got[i]! - want[i]!);
            if (!(d <= worst)) worst = d;
            if (!(d <= (outcome.perOutput[spec.name] ?? 0))) outcome.perOutput[spec.name] = d;
            outcome.largest = Math.max(outcome.largest, Math.abs(want[i]!));
          }
        });
        if (!first) first = outs;
        else if (outs.some((g, n) => g.some((v, i) => v !== first![n]![i]))) outcome.varies = true;
      }
      outcome.worst = worst;
    } finally {
      await session.release();
    }
    outcomes.push(outcome);
  }
  return outcomes;
}
