/**
 * `modelsmith eval`: output comparison in onnxruntime-node, per-weight error on the host, inputs
 * (random, .pb data sets, .npy) and every error the input handling throws.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, mkdir, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { NodeProtoSchema, AttributeProtoSchema, AttributeProto_AttributeType } from 'onnx-buf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelsmithError } from '../../src/core/errors.js';
import type { Tensor } from '../../src/core/tensor.js';
import { errorStats } from '../../src/eval/metrics.js';
import { compareWeights, dequantizeHost, evaluate, toFloat64, top1Agreement } from '../../src/eval/compare.js';
import { declaredInputs, parseShapeArgs, randomInputs, readNpy, resolveShape } from '../../src/eval/inputs.js';
import { loadOrt } from '../../src/eval/ort.js';
import { evalCommand, humanReport } from '../../src/cli/commands/eval.js';
import type { Out } from '../../src/cli/output.js';
import { tensorFromProto, tensorToProto, modelTensorContext } from '../../src/formats/onnx/tensor.js';
import { openModelFile, saveOnnxFile } from '../../src/platform/open.js';
import { f32BitsToF16Bits } from '../../src/kernels/reference/cast.js';
import { CORPUS_ONNX } from '../formats/onnx/helpers.js';

const FACE = join(CORPUS_ONNX, 'models/ultra-light-face/version-slim-320.onnx');
const SQUEEZE = join(CORPUS_ONNX, 'light/light_squeezenet.onnx');
const ADD = join(CORPUS_ONNX, 'node/test_add/model.onnx');
const PY = '/usr/bin/python3';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'modelsmith-eval-'));
});
afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

async function expectCode(p: Promise<unknown> | (() => unknown), code: string, msg?: RegExp): Promise<ModelsmithError> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${code}`).toBeInstanceOf(ModelsmithError);
  expect((err as ModelsmithError).code).toBe(code);
  if (msg) expect((err as ModelsmithError).message).toMatch(msg);
  return err as ModelsmithError;
}

function npy(descr: string, shape: number[], data: Uint8Array, opts: { version?: number; fortran?: boolean; header?: string } = {}): Uint8Array {
  const version = opts.version ?? 1;
  let header = opts.header ?? `{'descr': '${descr}', 'fortran_order': ${opts.fortran ? 'True' : 'False'}, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const pre = version === 1 ? 10 : 12;
  while ((pre + header.length + 1) % 64) header += ' ';
  header += '\n';
  const out = new Uint8Array(pre + header.length + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, header.length, true);
  else dv.setUint32(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[pre + i] = header.charCodeAt(i);
  out.set(data, pre + header.length);
  return out;
}

const f32 = (...v: number[]): Uint8Array => new Uint8Array(Float32Array.from(v).buffer);

/** FACE with its first Conv weight scaled by 1.1 and shifted by 0.01 (written once, in tmp). */
let perturbedOnce: Promise<{ file: string; weight: string }> | undefined;
function perturbed(): Promise<{ file: string; weight: string }> {
  perturbedOnce ??= (async () => {
    const { model, close } = await openModelFile(FACE);
    try {
      const g = model.proto.graph!;
      const weight = g.node.find((n) => n.opType === 'Conv')!.input[1]!;
      const i = g.initializer.findIndex((t) => t.name === weight);
      const t = await tensorFromProto(g.initializer[i]!, modelTensorContext(model));
      const w = new Float32Array(t.data.slice().buffer);
      for (let k = 0; k < w.length; k++) w[k] = w[k]! * 1.1 + 0.01;
      g.initializer[i] = tensorToProto({ ...t, data: new Uint8Array(w.buffer) });
      const file = join(tmp, 'perturbed.onnx');
      await saveOnnxFile(model, file);
      return { file, weight };
    } finally {
      await close();
    }
  })();
  return perturbedOnce;
}

describe('eval: outputs in onnxruntime', () => {
  it('a model against itself: cosine 1, max-abs 0 on every output, no weight changed', async () => {
    const r = await evaluate(FACE, FACE, { samples: 2, seed: 3 });
    expect(r.inputSource).toBe('random');
    expect(r.samples).toBe(2);
    expect(r.inputs).toEqual([{ name: 'input', dtype: 'float32', shape: [1, 3, 240, 320] }]);
    expect(r.outputs.map((o) => o.name)).toEqual(['scores', 'boxes']);
    for (const o of r.outputs) {
      expect(o.cosine).toBe(1);
      expect(o.maxAbs).toBe(0);
      expect(o.meanAbs).toBe(0);
      expect(o.snrDb).toBe(Infinity);
      expect(o.elements).toBeGreaterThan(0);
    }
    expect(r.outputs[0]!.top1).toBe(1); // scores [1,4420,2]: argmax over the 2 classes
    expect(r.outputs[0]!.rows).toBe(2 * 4420);
    expect(r.weightSummary.compared).toBeGreaterThan(40);
    expect(r.weightSummary.changed).toBe(0);
    expect(r.weights.every((w) => w.form === 'same' && w.stats!.maxAbs === 0)).toBe(true);
  });

  it('a perturbed Conv weight: cosine < 1 on the outputs, and the weight is named with its error', async () => {
    const { file, weight: name } = await perturbed();
    const r = await evaluate(FACE, file, { samples: 2 });
    for (const o of r.outputs) {
      expect(o.cosine).toBeLessThan(1);
      expect(o.cosine).toBeGreaterThan(0.5);
      expect(o.maxAbs).toBeGreaterThan(0);
      expect(Number.isFinite(o.snrDb)).toBe(true);
    }
    expect(r.weightSummary.changed).toBe(1);
    const w = r.weights.find((x) => x.name === name)!;
    expect(w.form).toBe('same');
    expect(w.stats!.maxAbs).toBeGreaterThan(0.01);
    expect(w.stats!.cosine).toBeLessThan(1);

    // The CLI command gives the same numbers, in the human table and in --json.
    const said: string[] = [];
    const out: Out = { json: true, say: (...l) => said.push(...l), note: () => {}, report: () => {} };
    const rep = (await evalCommand.run([FACE, file], { samples: '2', json: true }, out)) as Record<string, unknown>;
    const parsed = JSON.parse(JSON.stringify(rep)) as { ok: boolean; outputs: { cosine: number; snrDb: number }[]; weights: { stats?: { snrDb: number | string } }[] };
    expect(parsed.ok).toBe(true);
    expect(parsed.outputs[0]!.cosine).toBe(r.outputs[0]!.cosine);
    expect(parsed.weights.some((x) => x.stats?.snrDb === 'inf')).toBe(true);
    expect(said.join('\n')).toMatch(/scores\s+float32\[1,4420,2\]/);
    expect(said.join('\n')).toContain(name);
  });

  it('the same seed gives the same inputs and numbers; another seed other inputs', async () => {
    const { model, close } = await openModelFile(SQUEEZE);
    try {
      const specs = declaredInputs(model.proto);
      const a = randomInputs(specs, { samples: 2, seed: 5 });
      const b = randomInputs(specs, { samples: 2, seed: 5 });
      const c = randomInputs(specs, { samples: 1, seed: 6 });
      expect(Buffer.from(a.samples[1]![0]!.data).equals(Buffer.from(b.samples[1]![0]!.data))).toBe(true);
      expect(Buffer.from(a.samples[0]![0]!.data).equals(Buffer.from(c.samples[0]![0]!.data))).toBe(false);
      const v = new Float32Array(a.samples[0]![0]!.data.slice().buffer);
      const mean = v.reduce((s, x) => s + x, 0) / v.length;
      const sd = Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length);
      expect(Math.abs(mean)).toBeLessThan(0.02);
      expect(Math.abs(sd - 1)).toBeLessThan(0.02);
    } finally {
      await close();
    }
  });

  it('a candidate with float16 inputs and outputs is fed converted inputs and its outputs are widened', async () => {
    const { model, close } = await openModelFile(ADD);
    try {
      const g = model.proto.graph!;
      for (const v of [...g.input, ...g.output]) {
        if (v.type?.value.case === 'tensorType') v.type.value.value.elemType = 10;
      }
      await saveOnnxFile(model, join(tmp, 'add16.onnx'));
    } finally {
      await close();
    }
    const r = await evaluate(ADD, join(tmp, 'add16.onnx'), { inputs: [join(CORPUS_ONNX, 'node/test_add/test_data_set_0')] });
    const o = r.outputs[0]!;
    expect(o.dtype).toBe('float32→float16');
    expect(o.maxAbs).toBeGreaterThan(0);
    expect(o.maxAbs).toBeLessThan(0.01);
    expect(o.cosine).toBeGreaterThan(0.99999);
    expect(o.snrDb).toBeGreaterThan(50);
  });

  it('without onnxruntime-node: E_UNSUPPORTED naming the install command', async () => {
    await expectCode(loadOrt('onnxruntime-node-not-installed'), 'E_UNSUPPORTED', /npm install onnxruntime-node/);
  });

  it('--inputs with a node test data set (.pb), as a folder, a parent folder or files', async () => {
    const dir = join(CORPUS_ONNX, 'node/test_add');
    for (const inputs of [[join(dir, 'test_data_set_0')], [dir], [join(dir, 'test_data_set_0/input_0.pb'), join(dir, 'test_data_set_0/input_1.pb')]]) {
      const r = await evaluate(ADD, ADD, { inputs });
      expect(r.inputSource).toBe('files');
      expect(r.samples).toBe(1);
      expect(r.inputs.map((i) => i.name)).toEqual(['x', 'y']);
      expect(r.outputs).toHaveLength(1);
      expect(r.outputs[0]!.cosine).toBe(1);
      expect(r.outputs[0]!.maxAbs).toBe(0);
      expect(r.outputs[0]!.top1).toBe(1);
    }
  });

  it('a .npy input written by numpy works, matched to the input by its file name', async () => {
    const file = join(tmp, 'data_0.npy');
    execFileSync(PY, ['-c', `import numpy as np; np.random.seed(0); np.save(${JSON.stringify(file)}, np.random.randn(1, 3, 224, 224).astype(np.float32))`]);
    const r = await evaluate(SQUEEZE, SQUEEZE, { inputs: [file] });
    expect(r.inputSource).toBe('files');
    expect(r.inputs).toEqual([{ name: 'data_0', dtype: 'float32', shape: [1, 3, 224, 224] }]);
    expect(r.outputs[0]!.cosine).toBe(1);
    expect(r.outputs[0]!.maxAbs).toBe(0);
    expect(r.outputs[0]!.top1).toBeNull(); // softmaxout_1 is [1,1000,1,1]: last axis of 1
    const t = readNpy(new Uint8Array(await readFile(file)), file);
    expect(t.name).toBe('data_0');
    expect(t.shape).toEqual([1, 3, 224, 224]);
  });
});

describe('eval: .npy reader', () => {
  it('reads numpy-written files of every supported dtype, header versions 1, 2 and 3', async () => {
    const cases: [string, string, number[]][] = [
      ['float32', '<f4', [1.5, -2]], ['float64', '<f8', [1.5, -2]], ['float16', '<f2', [1.5, -2]], ['int8', '|i1', [-3, 4]],
      ['int16', '<i2', [-3, 4]], ['int32', '<i4', [-3, 4]], ['int64', '<i8', [-3, 4]], ['uint8', '|u1', [3, 250]],
      ['uint16', '<u2', [3, 65000]], ['uint32', '<u4', [3, 4e9]], ['uint64', '<u8', [3, 4]], ['bool', '|b1', [1, 0]],
    ];
    const script = [
      'import numpy as np, sys, json',
      'd = sys.argv[1]',
      `cases = json.loads(${JSON.stringify(JSON.stringify(cases))})`,
      'for name, descr, vals in cases:',
      '    a = np.array([vals, vals, vals], dtype=np.dtype(descr))',
      '    np.save(d + "/" + name + ".npy", a)',
      'np.lib.format.write_array(open(d + "/v2.npy", "wb"), np.arange(6, dtype="<f4").reshape(2, 3), version=(2, 0))',
      'np.lib.format.write_array(open(d + "/v3.npy", "wb"), np.arange(6, dtype="<i4").reshape(3, 2), version=(3, 0))',
      'np.save(d + "/scalar.npy", np.float32(7))',
    ].join('\n');
    const dir = join(tmp, 'npy');
    await mkdir(dir, { recursive: true });
    execFileSync(PY, ['-c', script, dir]);
    for (const [name, , vals] of cases) {
      const t = readNpy(new Uint8Array(await readFile(join(dir, `${name}.npy`))), name);
      expect(t.dtype).toBe(name);
      expect(t.shape).toEqual([3, 2]);
      expect(Array.from(toFloat64(t))).toEqual([...vals, ...vals, ...vals].map((x) => (name === 'bool' ? Number(!!x) : x)));
    }
    const v2 = readNpy(new Uint8Array(await readFile(join(dir, 'v2.npy'))));
    expect(v2.shape).toEqual([2, 3]);
    expect(Array.from(toFloat64(v2))).toEqual([0, 1, 2, 3, 4, 5]);
    const v3 = readNpy(new Uint8Array(await readFile(join(dir, 'v3.npy'))));
    expect(v3.dtype).toBe('int32');
    expect(v3.shape).toEqual([3, 2]);
    const s = readNpy(new Uint8Array(await readFile(join(dir, 'scalar.npy'))));
    expect(s.shape).toEqual([]);
    expect(Array.from(toFloat64(s))).toEqual([7]);
  });

  it('refuses bad headers, unsupported layouts and wrong sizes with codes', async () => {
    const good = npy('<f4', [2], f32(1, 2));
    expect(Array.from(toFloat64(readNpy(good)))).toEqual([1, 2]);
    const badMagic = good.slice();
    badMagic[1] = 0x41;
    await expectCode(() => readNpy(badMagic), 'E_MALFORMED', /magic/);
    const badVersion = good.slice();
    badVersion[6] = 9;
    await expectCode(() => readNpy(badVersion), 'E_MALFORMED', /version/);
    await expectCode(() => readNpy(good.subarray(0, 8)), 'E_TRUNCATED');
    await expectCode(() => readNpy(good.subarray(0, 40)), 'E_TRUNCATED', /header/);
    await expectCode(() => readNpy(npy('<f4', [2], f32(1, 2), { header: "{'descr': '<f4', 'shape': (2,), }" })), 'E_MALFORMED', /fortran_order/);
    await expectCode(() => readNpy(npy('<f4', [2], f32(1, 2), { header: "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'evil': __import__('os') }" })), 'E_MALFORMED', /unexpected key/);
    await expectCode(() => readNpy(npy('<f4', [2], f32(1, 2), { header: "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }" })), 'E_MALFORMED', /shape entry/);
    await expectCode(() => readNpy(npy('<f4', [2], f32(1, 2), { header: "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }" })), 'E_MALFORMED', /structured/);
    await expectCode(() => readNpy(npy('>f4', [2], f32(1, 2))), 'E_UNSUPPORTED', /big-endian/);
    await expectCode(() => readNpy(npy('<c8', [2], f32(1, 2, 3, 4))), 'E_DTYPE');
    await expectCode(() => readNpy(npy('<f4', [2, 1], f32(1, 2), { fortran: true })), 'E_UNSUPPORTED', /Fortran/);
    await expectCode(() => readNpy(npy('<f4', [3], f32(1, 2))), 'E_TRUNCATED', /needs 12 data bytes/);
    await expectCode(() => readNpy(npy('<f4', [1], f32(1, 2))), 'E_TENSOR_SIZE');
    await expectCode(() => readNpy(npy('<f4', [2 ** 40, 2 ** 40], f32(1, 2))), 'E_OUT_OF_RANGE');
    const huge = npy('<f4', [2], f32(1, 2), { version: 2 });
    new DataView(huge.buffer).setUint32(8, 0x7fffffff, true);
    await expectCode(() => readNpy(huge), 'E_LIMIT');
  });
});

describe('eval: input errors', () => {
  it('bad .npy header through --inputs', async () => {
    const file = join(tmp, 'bad.npy');
    await writeFile(file, npy('<f4', [2], f32(1, 2), { header: "{'descr': '<f4' 'shape': (2,) }" }));
    const e = await expectCode(evaluate(SQUEEZE, SQUEEZE, { inputs: [file] }), 'E_MALFORMED', /npy/);
    expect(e.path).toBe(file);
  });

  it('shape mismatch between data and declared input', async () => {
    const file = join(tmp, 'data_0.npy');
    await writeFile(file, npy('<f4', [1, 3, 2, 2], new Uint8Array(48)));
    await expectCode(evaluate(SQUEEZE, SQUEEZE, { inputs: [file] }), 'E_USAGE', /shape mismatch.*\[1,3,2,2\].*\[1,3,224,224\]/);
  });

  it('dtype mismatch between data and declared input', async () => {
    const file = join(tmp, 'data_0_i4.npy');
    await writeFile(file, npy('<i4', [1], new Uint8Array(4)));
    await expectCode(evaluate(SQUEEZE, SQUEEZE, { inputs: [file] }), 'E_DTYPE', /int32.*float32/);
  });

  it('missing input and extra files', async () => {
    const d = join(CORPUS_ONNX, 'node/test_add/test_data_set_0');
    await expectCode(evaluate(ADD, ADD, { inputs: [join(d, 'input_0.pb')] }), 'E_USAGE', /missing input 'y'/);
    const extra = join(tmp, 'extra');
    await mkdir(extra, { recursive: true });
    for (const f of ['input_0.pb', 'input_1.pb']) await copyFile(join(d, f), join(extra, f));
    await copyFile(join(d, 'input_1.pb'), join(extra, 'input_2.pb'));
    await expectCode(evaluate(ADD, ADD, { inputs: [extra] }), 'E_USAGE', /match no model input/);
    await expectCode(evaluate(ADD, ADD, { inputs: [join(tmp, 'nope')] }), 'E_IO');
    const txt = join(tmp, 'x.txt');
    await writeFile(txt, 'hi');
    await expectCode(evaluate(ADD, ADD, { inputs: [txt, txt] }), 'E_USAGE', /\.pb.*\.npy/);
  });

  it('a run failing on defaulted dynamic dims says so; --shape fixes it', async () => {
    const mel = join(CORPUS_ONNX, 'models/openwakeword/melspectrogram.onnx');
    await expectCode(evaluate(mel, mel, { samples: 1 }), 'E_UNSUPPORTED', /dynamic dims were set to 1 \(input\[0\] \(batch_size\), input\[1\] \(samples\)\).*--shape/);
    const r = await evaluate(mel, mel, { samples: 2, shapes: ['input=1,16000'] });
    expect(r.defaultedDims).toEqual([]);
    expect(r.inputs).toEqual([{ name: 'input', dtype: 'float32', shape: [1, 16000] }]);
    expect(r.outputs[0]!.cosine).toBe(1);
  });

  it('--shape: unknown name, bad syntax, wrong rank, fixed dim; dynamic dims default to 1 and are listed', async () => {
    await expectCode(evaluate(FACE, FACE, { shapes: ['image=1,3,240,320'] }), 'E_USAGE', /unknown input 'image'.*input/);
    const { model, close } = await openModelFile(FACE);
    try {
      const specs = declaredInputs(model.proto);
      await expectCode(() => parseShapeArgs(['input'], specs), 'E_USAGE', /name=d1/);
      await expectCode(() => parseShapeArgs(['input=1,a'], specs), 'E_USAGE', /non-negative/);
      await expectCode(() => parseShapeArgs(['input=1,3', 'input=1,3'], specs), 'E_USAGE', /twice/);
      await expectCode(() => resolveShape(specs[0]!, [1, 3, 240]), 'E_USAGE', /rank 3/);
      await expectCode(() => resolveShape(specs[0]!, [1, 3, 240, 321]), 'E_USAGE', /fixed to 320/);
    } finally {
      await close();
    }
    const dyn = { name: 'ids', dtype: 'int64' as const, dims: ['batch', 128, undefined] };
    expect(resolveShape(dyn)).toEqual({ shape: [1, 128, 1], defaulted: ['ids[0] (batch)', 'ids[2]'] });
    expect(resolveShape(dyn, [4, 128, 2])).toEqual({ shape: [4, 128, 2], defaulted: [] });
    const r = randomInputs([dyn], { samples: 1, seed: 1, shapes: new Map([['ids', [2, 128, 3]]]) });
    const ids = toFloat64(r.samples[0]![0]!);
    expect(ids.length).toBe(2 * 128 * 3);
    expect(ids.every((x) => Number.isInteger(x) && x >= 0 && x < 4)).toBe(true);
  });

  it('CLI usage errors', async () => {
    const out: Out = { json: false, say: () => {}, note: () => {}, report: () => {} };
    await expectCode(evalCommand.run([FACE], {}, out), 'E_USAGE', /reference and a candidate/);
    await expectCode(evalCommand.run([FACE, FACE], { samples: '0' }, out), 'E_USAGE', /--samples/);
    await expectCode(evalCommand.run([FACE, FACE], { seed: '-1' }, out), 'E_USAGE', /--seed/);
    await expectCode(evalCommand.run([FACE, FACE], { output: 'x.onnx' }, out), 'E_USAGE', /-o/);
    expect(evalCommand.help).toMatch(/examples:/);
  });
});

describe('eval: per-tensor weight error (no runtime)', () => {
  it('float16 initializers, a DequantizeLinear (per-tensor and per-axis) and a Cast node are brought back and compared', async () => {
    const { model, close } = await openModelFile(FACE);
    const cand = await openModelFile(FACE);
    try {
      const g = cand.model.proto.graph!;
      const convs = g.node.filter((n) => n.opType === 'Conv');
      const load = (name: string): Promise<Tensor> => tensorFromProto(g.initializer.find((t) => t.name === name)!, modelTensorContext(cand.model));
      const replace = (name: string, ...add: Tensor[]): void => {
        const i = g.initializer.findIndex((t) => t.name === name);
        g.initializer.splice(i, 1, ...add.map((t) => tensorToProto(t)));
      };
      const fvals = (t: Tensor): Float32Array => new Float32Array(t.data.slice().buffer);
      // 1. fp16 initializer in place.
      const w0 = await load(convs[0]!.input[1]!);
      const h = Uint16Array.from(fvals(w0), (x) => f32BitsToF16Bits(new Uint32Array(Float32Array.of(x).buffer)[0]!));
      replace(w0.name, { ...w0, dtype: 'float16', data: new Uint8Array(h.buffer) });
      // 2. per-tensor int8 behind DequantizeLinear.
      const w1 = await load(convs[1]!.input[1]!);
      const v1 = fvals(w1);
      const s1 = Math.max(...v1.map(Math.abs)) / 127;
      replace(w1.name, { name: `${w1.name}_q`, dtype: 'int8', shape: w1.shape, data: new Uint8Array(Int8Array.from(v1, (x) => Math.round(x / s1)).buffer) },
        { name: `${w1.name}_s`, dtype: 'float32', shape: [], data: f32(s1) });
      g.node.unshift(create(NodeProtoSchema, { opType: 'DequantizeLinear', input: [`${w1.name}_q`, `${w1.name}_s`], output: [w1.name] }));
      // 3. per-axis uint8 with zero points, axis 0.
      const w2 = await load(convs[2]!.input[1]!);
      const v2 = fvals(w2);
      const C = w2.shape[0]!;
      const per = v2.length / C;
      const scales = new Float32Array(C);
      const zps = new Uint8Array(C).fill(128);
      for (let c = 0; c < C; c++) scales[c] = Math.max(1e-8, ...Array.from(v2.subarray(c * per, (c + 1) * per), Math.abs)) / 127;
      const q2 = Uint8Array.from(v2, (x, i) => Math.max(0, Math.min(255, Math.round(x / scales[Math.floor(i / per)]!) + 128)));
      replace(w2.name, { name: `${w2.name}_q`, dtype: 'uint8', shape: w2.shape, data: q2 },
        { name: `${w2.name}_s`, dtype: 'float32', shape: [C], data: new Uint8Array(scales.buffer) },
        { name: `${w2.name}_z`, dtype: 'uint8', shape: [C], data: zps });
      g.node.unshift(create(NodeProtoSchema, {
        opType: 'DequantizeLinear', input: [`${w2.name}_q`, `${w2.name}_s`, `${w2.name}_z`], output: [w2.name],
        attribute: [create(AttributeProtoSchema, { name: 'axis', type: AttributeProto_AttributeType.INT, i: 0n })],
      }));
      // 4. fp16 initializer under another name + Cast node.
      const w3 = await load(convs[3]!.input[1]!);
      const h3 = Uint16Array.from(fvals(w3), (x) => f32BitsToF16Bits(new Uint32Array(Float32Array.of(x).buffer)[0]!));
      replace(w3.name, { name: `${w3.name}_h`, dtype: 'float16', shape: w3.shape, data: new Uint8Array(h3.buffer) });
      g.node.unshift(create(NodeProtoSchema, { opType: 'Cast', input: [`${w3.name}_h`], output: [w3.name],
        attribute: [create(AttributeProtoSchema, { name: 'to', type: AttributeProto_AttributeType.INT, i: 1n })] }));
      // 5. a weight turned into int8 with nothing to dequantize it.
      const w4 = await load(convs[4]!.input[1]!);
      replace(w4.name, { ...w4, dtype: 'int8', data: new Uint8Array(w4.data.byteLength / 4) });
      // 6. a weight removed.
      const w5name = convs[5]!.input[1]!;
      g.initializer.splice(g.initializer.findIndex((t) => t.name === w5name), 1);

      const file = join(tmp, 'mixed.onnx');
      await saveOnnxFile(cand.model, file);
      const r = await evaluate(FACE, file, { weightsOnly: true });
      expect(r.outputs).toEqual([]);
      expect(r.inputSource).toBe('none');
      const by = new Map(r.weights.map((w) => [w.name, w]));
      const fp16 = by.get(w0.name)!;
      expect(fp16).toMatchObject({ form: 'cast', candidateDtype: 'float16', referenceDtype: 'float32' });
      expect(fp16.stats!.maxAbs).toBeGreaterThan(0);
      expect(fp16.stats!.snrDb).toBeGreaterThan(55);
      const dq = by.get(w1.name)!;
      expect(dq).toMatchObject({ form: 'dequantize', candidateDtype: 'int8' });
      expect(dq.stats!.maxAbs).toBeLessThanOrEqual(s1 / 2 + 1e-6);
      expect(dq.stats!.cosine).toBeGreaterThan(0.99);
      const pa = by.get(w2.name)!;
      expect(pa).toMatchObject({ form: 'dequantize', candidateDtype: 'uint8' });
      expect(pa.stats!.maxAbs).toBeLessThanOrEqual(Math.max(...scales) / 2 + 1e-6);
      expect(pa.stats!.cosine).toBeGreaterThan(0.99);
      expect(by.get(w3.name)).toMatchObject({ form: 'cast-node', candidateDtype: 'float16' });
      expect(by.get(w3.name)!.stats!.snrDb).toBeGreaterThan(55);
      expect(by.get(w4.name)).toMatchObject({ form: 'dtype-change', candidateDtype: 'int8' });
      expect(by.get(w4.name)!.stats).toBeUndefined();
      expect(by.get(w5name)).toMatchObject({ form: 'absent', candidateDtype: null });
      expect(r.weightSummary).toMatchObject({ changed: 4, notComparable: 1, absent: 1 });
      const text = humanReport(r).join('\n');
      expect(text).toContain('float16 (cast)');
      expect(text).toContain('int8 (dequantize)');
      expect(text).not.toContain('outputs:');
      // the in-memory comparison gives the same
      const direct = await compareWeights(model, cand.model);
      expect(direct.find((w) => w.name === w1.name)!.stats).toEqual(dq.stats);
    } finally {
      await close();
      await cand.close();
    }
  });

  it('weights held in Constant nodes (paddle2onnx) are compared too', async () => {
    const m = join(CORPUS_ONNX, 'models/paddleocr/ch_ppocr_mobile_v2.0_cls_infer.onnx');
    const r = await evaluate(m, m, { weightsOnly: true });
    expect(r.weightSummary.compared).toBeGreaterThan(100);
    expect(r.weightSummary.changed).toBe(0);
  });

  it('host DequantizeLinear: per tensor, per axis, blocked; int4 unpacking; metrics agree with errorStats', () => {
    const x: Tensor = { name: 'x', dtype: 'int8', shape: [2, 4], data: new Uint8Array(Int8Array.of(-2, -1, 0, 1, 2, 3, 4, 5).buffer) };
    const s = (v: number[], shape: number[]): Tensor => ({ name: 's', dtype: 'float32', shape, data: f32(...v) });
    expect(Array.from(dequantizeHost(x, s([0.5], []), undefined, 1, 0))).toEqual([-1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5]);
    const zp: Tensor = { name: 'z', dtype: 'int8', shape: [2], data: new Uint8Array(Int8Array.of(0, 1).buffer) };
    expect(Array.from(dequantizeHost(x, s([1, 2], [2]), zp, 0, 0))).toEqual([-2, -1, 0, 1, 2, 4, 6, 8]);
    expect(Array.from(dequantizeHost(x, s([1, 2, 3, 4], [4]), undefined, -1, 0))).toEqual([-2, -2, 0, 4, 2, 6, 12, 20]);
    // blocks of 2 along axis 1: scale shape [2, 2]
    expect(Array.from(dequantizeHost(x, s([1, 10, 100, 1000], [2, 2]), undefined, 1, 2))).toEqual([-2, -1, 0, 10, 200, 300, 4000, 5000]);
    await_(() => dequantizeHost(x, s([1, 2, 3], [3]), undefined, 0, 0), 'E_MALFORMED');
    const i4: Tensor = { name: 'q', dtype: 'int4', shape: [3], data: Uint8Array.of(0xf7, 0x08) };
    expect(Array.from(toFloat64(i4))).toEqual([7, -1, -8]);
    expect(Array.from(toFloat64({ ...i4, dtype: 'uint4' }))).toEqual([7, 15, 8]);
    expect(top1Agreement([1, 2, 3, 0, 5, 4], [1, 2, 3, 9, 5, 4], 3)).toEqual({ agree: 1, rows: 2 });
    expect(top1Agreement([1, 2], [2, 1], 1)).toEqual({ agree: 0, rows: 0 });
  });

  it('the accumulated metrics equal errorStats on one sample', async () => {
    const tmpModel = (await perturbed()).file;
    const r = await evaluate(FACE, tmpModel, { samples: 1, seed: 9 });
    const { OrtSession } = await import('../../src/eval/ort.js');
    const { model, close } = await openModelFile(FACE);
    try {
      const inputs = randomInputs(declaredInputs(model.proto), { samples: 1, seed: 9 }).samples[0]!;
      const a = await OrtSession.create(FACE);
      const b = await OrtSession.create(tmpModel);
      const ra = await a.run(inputs);
      const rb = await b.run(inputs);
      await a.release();
      await b.release();
      ra.forEach((t, i) => {
        const want = errorStats(toFloat64(t), toFloat64(rb[i]!));
        const got = r.outputs[i]!;
        expect(got.maxAbs).toBe(want.maxAbs);
        expect(got.meanAbs).toBeCloseTo(want.meanAbs, 12);
        expect(got.cosine).toBeCloseTo(want.cosine, 12);
        expect(got.snrDb).toBeCloseTo(want.snrDb, 9);
      });
    } finally {
      await close();
    }
  });
});

function await_(f: () => unknown, code: string): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect((err as ModelsmithError).code).toBe(code);
}
