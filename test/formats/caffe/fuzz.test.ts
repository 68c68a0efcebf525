/**
 * Structured fuzzing of the converter: random small nets built from the registry's layer types with
 * random parameter fields (taken from the schema by reflection), random wiring and random inline
 * blobs. Every attempt ends in success or a ModelsmithError, and every success is a model that
 * onnxruntime loads and runs, producing exactly the output shapes the converter predicted.
 */
import { ScalarType, type DescMessage } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { caffeToOnnx, supportedLayerTypes, type CaffeToOnnxResult } from '../../../src/convert/caffe-onnx/index.js';
import { ModelsmithError } from '../../../src/core/errors.js';
import { LayerParameterSchema } from '../../../src/formats/caffe/gen/caffe_pb.js';
import { parseCaffePrototxt, summarizeCaffe } from '../../../src/formats/caffe/index.js';
import { onnxModel } from '../../../src/formats/onnx/read.js';
import { encodeOnnx } from '../../../src/formats/onnx/write.js';

const ATTEMPTS = 3000;

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}

const INTS = ['0', '1', '2', '3', '-1', '-2', '5', '7', '100', '2147483647', '65536'];
const FLOATS = ['0', '1', '-1', '0.5', '1e30', 'nan', 'inf', '2', '-0.001'];

/** Random text for up to 3 fields of `desc`, nested up to 3 deep. */
function randomFields(desc: DescMessage, r: () => number, depth = 0): string {
  const pick = <T,>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
  const out: string[] = [];
  for (let i = Math.floor(r() * 4); i > 0; i--) {
    const f = pick(desc.fields);
    if (f.message) {
      if (depth < 3) out.push(`${f.name} { ${randomFields(f.message, r, depth + 1)} }`);
    } else if (f.enum) {
      out.push(`${f.name}: ${pick(f.enum.values).name}`);
    } else {
      const st = (f as { scalar: ScalarType }).scalar;
      let v = pick(INTS);
      if (st === ScalarType.FLOAT || st === ScalarType.DOUBLE) v = pick(FLOATS);
      else if (st === ScalarType.BOOL) v = pick(['true', 'false']);
      else if (st === ScalarType.STRING) v = `"${pick(['x', 'y', 'data'])}"`;
      else if ((st === ScalarType.UINT32 || st === ScalarType.UINT64) && v.startsWith('-')) v = '3';
      out.push(`${f.name}: ${v}`);
    }
  }
  return out.join(' ');
}

function randomNet(r: () => number, types: string[]): string {
  const pick = <T,>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
  const blobs = ['x', 'y', 'z'];
  const dims = [pick([1, 2]), pick([1, 3, 4]), pick([1, 5, 8]), pick([1, 6, 7])].slice(0, r() < 0.75 ? 4 : 2 + Math.floor(r() * 2));
  let text = `input: "x" input_shape { ${dims.map((d) => `dim: ${d}`).join(' ')} }\n`;
  for (let l = 1 + Math.floor(r() * 3); l > 0; l--) {
    const bottoms = Array.from({ length: Math.floor(r() * 3) }, () => `bottom: "${pick(blobs)}"`).join(' ');
    const tops = Array.from({ length: 1 + Math.floor(r() * 2) }, () => `top: "${pick(blobs)}"`).join(' ');
    const inline = Array.from({ length: Math.floor(r() * 3) }, () => {
      const n = 1 + Math.floor(r() * 12);
      return `blobs { shape { dim: ${pick([1, 2, 3, 4, 6, 12])} } data: [${new Array(n).fill('0.5').join(', ')}] }`;
    }).join(' ');
    text += `layer { name: "l${l}" type: "${pick(types)}" ${bottoms} ${tops} ${randomFields(LayerParameterSchema, r)} ${inline} }\n`;
  }
  return text;
}

describe('structured fuzzing of the Caffe → ONNX converter', () => {
  it(`${ATTEMPTS} random nets: ModelsmithError or a model onnxruntime runs with the predicted shapes`, async () => {
    const ort = await import('onnxruntime-node');
    const r = rng(7);
    const types = supportedLayerTypes();
    const successes: CaffeToOnnxResult[] = [];
    let refused = 0;
    for (let i = 0; i < ATTEMPTS; i++) {
      const text = randomNet(r, types);
      try {
        const net = parseCaffePrototxt(text);
        summarizeCaffe(net);
        successes.push(caffeToOnnx(net, undefined));
      } catch (e) {
        if (!(e instanceof ModelsmithError)) throw new Error(`escaped ${(e as Error).name}: ${(e as Error).message}\n${text}`);
        refused++;
      }
    }
    expect(successes.length + refused).toBe(ATTEMPTS);
    expect(successes.length).toBeGreaterThan(60);
    for (const res of successes) {
      const session = await ort.InferenceSession.create(await encodeOnnx(onnxModel(res.model)));
      try {
        const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {};
        for (const i of res.report.inputs) feeds[i.name] = new ort.Tensor('float32', new Float32Array(i.shape.reduce((a, b) => a * b, 1)).fill(0.3), i.shape);
        const out = await session.run(feeds);
        for (const o of res.report.outputs) expect([...out[o.name]!.dims], o.name).toEqual(o.shape);
      } finally {
        await session.release();
      }
    }
  });
});
