/**
 * The corpus Caffe pairs converted to ONNX: onnx.checker (python3-onnx 1.12) accepts them, and
 * onnxruntime-node's outputs match OpenCV dnn running the original prototxt + caffemodel
 * (`cv2.dnn.readNetFromCaffe`) on 8 seeded random inputs each, within 1e-4 max-abs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CORPUS_CAFFE, PAIRS, loadCaffemodel, loadPrototxt } from '../formats/caffe/helpers.js';
import { compareWithOpenCV, type CaseOutcome } from '../formats/caffe/oracle.js';

let dir: string;
let outcomes: CaseOutcome[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'caffe-opencv-'));
  outcomes = await compareWithOpenCV(dir, PAIRS.map((p) => ({
    name: p.name,
    prototxtPath: join(CORPUS_CAFFE, p.prototxt),
    caffemodelPath: join(CORPUS_CAFFE, p.weights),
    deploy: loadPrototxt(p.prototxt),
    weights: loadCaffemodel(p.weights),
  })));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const EXPECTED_OUTPUTS: Record<string, string[]> = {
  'lenet-v1': ['prob'],
  'slim-320': ['boxes', 'scores'],
  'mtcnn-det1': ['prob', 'bbox_pred', 'landmark_pred'],
  'mtcnn-det4': ['landmark_offset'],
};

describe('Caffe → ONNX vs OpenCV dnn (corpus pairs)', () => {
  for (const pair of PAIRS) {
    it(`${pair.name}: onnx.checker accepts, onnxruntime matches OpenCV on 8 inputs within 1e-4`, () => {
      const o = outcomes.find((x) => x.name === pair.name)!;
      expect(o.error).toBeUndefined();
      expect(o.checker).toBe('ok');
      expect(o.result.report.outputs.map((x) => x.name)).toEqual(EXPECTED_OUTPUTS[pair.name]);
      expect(o.varies).toBe(true);
      expect(o.largest).toBeGreaterThan(0.01);
      expect(o.worst, JSON.stringify(o.perOutput)).toBeLessThanOrEqual(1e-4);
    });
  }

  it('slim-320 has the documented output shapes (boxes 1×4420×4, scores 1×4420×2)', () => {
    const o = outcomes.find((x) => x.name === 'slim-320')!;
    expect(o.result.report.outputs.map((x) => x.shape)).toEqual([[1, 4420, 4], [1, 4420, 2]]);
    expect(o.result.report.inputs).toEqual([{ name: 'input', shape: [1, 3, 240, 320] }]);
  });
});
