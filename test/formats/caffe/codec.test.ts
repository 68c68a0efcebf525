/** Caffe codec on the corpus: prototxt (V0/V1/current) parsing + upgrade + summary, caffemodel read/write, weights. */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { create, equals, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { ErrorCodes, ModelsmithError } from '../../../src/core/errors.js';
import { blobBytes, blobFloat32 } from '../../../src/formats/caffe/blob.js';
import { BlobProtoSchema, BlobShapeSchema, LayerParameterSchema, NetParameterSchema } from '../../../src/formats/caffe/gen/caffe_pb.js';
import {
  caffeWeights,
  decodeCaffemodel,
  parseCaffePrototxt,
  parseCaffeSolver,
  readCaffemodel,
  summarizeCaffe,
  writeCaffemodel,
  type NetParameter,
} from '../../../src/formats/caffe/index.js';
import { MemorySink, MemorySource, type ByteSource } from '../../../src/io/source.js';
import { listCaffeFiles, loadCaffemodel, loadPrototxt, rel } from './helpers.js';

async function errorOf(f: () => unknown): Promise<ModelsmithError> {
  try {
    await f();
  } catch (e) {
    if (e instanceof ModelsmithError) return e;
    throw e;
  }
  throw new Error('expected an error');
}

/** Layer structure that must survive the V0/V1 upgrade. */
const structure = (net: NetParameter) => net.layer.map((l) => ({
  name: l.name, type: l.type, bottom: l.bottom, top: l.top,
  numOutput: l.convolutionParam?.numOutput ?? l.innerProductParam?.numOutput,
  kernel: l.convolutionParam?.kernelSize ?? l.poolingParam?.kernelSize,
  input: l.inputParam?.shape.map((s) => s.dim.map(Number)),
}));

describe('prototxt corpus', () => {
  const nets = listCaffeFiles((n) => n.endsWith('.prototxt') && !n.includes('solver'));
  const solvers = listCaffeFiles((n) => n.endsWith('.prototxt') && n.includes('solver'));

  it('finds the corpus', () => {
    expect(nets.length).toBe(33);
    expect(solvers.length).toBe(3);
  });

  for (const p of nets) {
    it(`${rel(p)} parses, upgrades and summarises`, () => {
      const net = parseCaffePrototxt(readFileSync(p, 'utf8'), { path: rel(p) });
      expect(net.layers).toEqual([]);
      expect(net.input).toEqual([]);
      const s = summarizeCaffe(net);
      expect(s.layerCount).toBe(net.layer.length);
      expect(s.layerCount).toBeGreaterThan(1);
      for (const l of s.layers) {
        expect(l.name).not.toBe('');
        expect(l.type).toMatch(/^[A-Z][A-Za-z0-9]+$/);
        expect(l.tops.length + l.bottoms.length).toBeGreaterThan(0);
      }
      expect(JSON.parse(JSON.stringify(s))).toEqual(s);
    });
  }

  for (const p of solvers) {
    it(`${rel(p)} parses as a SolverParameter`, () => {
      const s = parseCaffeSolver(readFileSync(p, 'utf8'), { path: rel(p) });
      expect(s.baseLr).toBeGreaterThan(0);
      expect(s.maxIter).toBeGreaterThan(0);
      expect(s.net || s.trainNet).not.toBe('');
    });
  }

  it('GoogLeNet deploy: 143 layers with the inception concat fan-in', () => {
    const s = summarizeCaffe(loadPrototxt('bvlc/models/bvlc_googlenet/deploy.prototxt'));
    expect(s.layerCount).toBe(143);
    expect(s.typeCounts).toEqual({ Input: 1, Convolution: 57, ReLU: 57, Pooling: 14, LRN: 2, Concat: 9, Dropout: 1, InnerProduct: 1, Softmax: 1 });
    expect(s.inputs).toEqual([{ name: 'data', shape: [10, 3, 224, 224] }]);
    expect(s.layers.find((l) => l.name === 'inception_3a/output')!.bottoms).toEqual(['inception_3a/1x1', 'inception_3a/3x3', 'inception_3a/5x5', 'inception_3a/pool_proj']);
  });

  it('V1 and V0 LeNet upgrade to the same structure as the current LeNet', () => {
    const current = structure(loadPrototxt('bvlc/examples/mnist_lenet.prototxt'));
    const v1 = structure(loadPrototxt('bvlc-legacy/v1-2015-02/mnist_lenet.prototxt'));
    const v0 = structure(loadPrototxt('bvlc-legacy/v0-2014-03/lenet_lenet.prototxt'));
    expect(v1).toEqual(current);
    expect(v0.map((l) => ({ ...l, input: undefined }))).toEqual(current.map((l) => ({ ...l, input: undefined })));
    expect(current[0]).toMatchObject({ type: 'Input', input: [[64, 1, 28, 28]] });
    expect(v0[0]!.input).toEqual([[64, 1, 28, 28]]);
  });

  it('V1 blobs_lr / weight_decay become param specs; V0 filler and pool params carry over', () => {
    const v1 = loadPrototxt('bvlc-legacy/v1-2015-02/bvlc_reference_caffenet_deploy.prototxt');
    const c = loadPrototxt('bvlc/models/bvlc_reference_caffenet/deploy.prototxt');
    expect(structure(v1)).toEqual(structure(c));
    const v0 = loadPrototxt('bvlc-legacy/v0-2014-03/imagenet_imagenet_deploy.prototxt');
    const conv1 = v0.layer.find((l) => l.name === 'conv1')!;
    expect(conv1.convolutionParam).toMatchObject({ numOutput: 96, kernelSize: [11], stride: [4] });
    expect(conv1.convolutionParam!.weightFiller!.type).toBe('gaussian');
    expect(conv1.param.map((p) => [p.lrMult, p.decayMult])).toEqual([[1, 1], [2, 0]]);
    expect(v0.layer.find((l) => l.name === 'pool1')!.poolingParam).toMatchObject({ pool: 0, kernelSize: 3, stride: 2 });
    expect(v0.layer.find((l) => l.name === 'norm1')!.lrnParam).toMatchObject({ localSize: 5, alpha: 0.0001, beta: 0.75 });
    const train = loadPrototxt('bvlc-legacy/v1-2015-02/mnist_lenet_train_test.prototxt');
    expect(summarizeCaffe(train).layers.filter((l) => l.include).map((l) => l.include)).toEqual([['phase TRAIN'], ['phase TEST'], ['phase TEST']]);
  });

  it('a V0 padding layer is folded into the convolution it feeds', () => {
    const diagnostics: { code: string }[] = [];
    const net = parseCaffePrototxt(`input: "data" input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
      layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "data" top: "pad1" }
      layers { layer { name: "conv1" type: "conv" num_output: 4 kernelsize: 3 } bottom: "pad1" top: "conv1" }`, { diagnostics: diagnostics as never });
    expect(net.layer.map((l) => l.name)).toEqual(['data', 'conv1']);
    expect(net.layer[1]!.bottom).toEqual(['data']);
    expect(net.layer[1]!.convolutionParam!.pad).toEqual([2]);
    expect(diagnostics.map((d) => d.code)).toEqual(['caffe.v0_padding', 'caffe.upgraded']);
  });

  it('V1 layers written with current string types are accepted', () => {
    const net = parseCaffePrototxt('layers { name: "c" type: "Convolution" bottom: "x" top: "c" }');
    expect(net.layer[0]!.type).toBe('Convolution');
  });

  it('a solver with an inline V1 net upgrades it', () => {
    const s = parseCaffeSolver('base_lr: 0.1 net_param { input: "x" input_dim: 1 input_dim: 1 input_dim: 2 input_dim: 2 layers { name: "r" type: RELU bottom: "x" top: "x" } }');
    expect(s.netParam!.layer.map((l) => l.type)).toEqual(['Input', 'ReLU']);
  });
});

describe('caffemodel', () => {
  it('reads the 2014 V1 binary LeNet: legacy 4-D blobs, squeezed in the WeightSet', async () => {
    const diagnostics: { code: string }[] = [];
    const net = await readCaffemodel(new MemorySource(readFileSync(listCaffeFiles((n) => n === 'lenet_iter_10000')[0]!), 'lenet_iter_10000'), { diagnostics: diagnostics as never });
    expect(diagnostics.map((d) => d.code)).toContain('caffe.upgraded');
    expect(net.layer.map((l) => l.type)).toEqual(['Data', 'Convolution', 'Pooling', 'Convolution', 'Pooling', 'InnerProduct', 'ReLU', 'InnerProduct', 'SoftmaxWithLoss']);
    const s = summarizeCaffe(net);
    expect(s.blobCount).toBe(8);
    expect(s.parameterCount).toBe(431080);
    expect(s.layers.find((l) => l.name === 'ip1')!.blobs).toEqual([{ shape: [1, 1, 500, 800], dtype: 'float32', legacy: true }, { shape: [1, 1, 1, 500], dtype: 'float32', legacy: true }]);
    const w = caffeWeights(net);
    expect(w.format).toBe('caffemodel');
    expect(w.path).toBe('lenet_iter_10000');
    expect(w.tensors.map((t) => `${t.name}:${t.shape.join('x')}`)).toEqual([
      'conv1.weight:20x1x5x5', 'conv1.bias:20', 'conv2.weight:50x20x5x5', 'conv2.bias:50',
      'ip1.weight:500x800', 'ip1.bias:500', 'ip2.weight:10x500', 'ip2.bias:10',
    ]);
    const ip2 = w.tensors[6]!;
    expect(ip2.extra).toMatchObject({ layer: 'ip2', layerType: 'InnerProduct', blobIndex: 0, storedShape: [1, 1, 10, 500] });
    const bytes = await ip2.load();
    expect(bytes.byteLength).toBe(ip2.byteLength);
    const values = new Float32Array(bytes.slice().buffer);
    expect(values.length).toBe(5000);
    expect(Array.from(values)).toEqual(Array.from(blobFloat32(net.layer[7]!.blobs[0]!)));
    // Payloads are views into the file, not decoded number arrays.
    expect(net.layer[7]!.blobs[0]!.data).toEqual([]);
    expect(net.layer[7]!.blobs[0]!.$unknown).toBeUndefined();
  });

  it('reads every corpus caffemodel; blob counts match INDEX.txt', () => {
    const expected: Record<string, [number, number]> = {
      'mtcnn-jfda/det1.caffemodel': [13, 15], 'mtcnn-jfda/det2.caffemodel': [16, 18], 'mtcnn-jfda/det4.caffemodel': [22, 17], 'ultra-light-face/slim-320.caffemodel': [100, 84],
    };
    for (const [p, [layers, blobs]] of Object.entries(expected)) {
      const net = loadCaffemodel(p);
      expect(net.layer.length, p).toBe(layers);
      expect(caffeWeights(net).tensors.length, p).toBe(blobs);
    }
  });

  it('write → read is lossless (current and upgraded V1 nets), blob bytes included', async () => {
    for (const p of ['mtcnn-jfda/det1.caffemodel', 'ultra-light-face/slim-320.caffemodel', 'lenet-v1-2014/lenet_iter_10000']) {
      const net = loadCaffemodel(p);
      const sink = new MemorySink();
      await writeCaffemodel(net, sink);
      const again = decodeCaffemodel(sink.bytes());
      expect(equals(NetParameterSchema, again, net), p).toBe(true);
      const hash = (n: NetParameter) => createHash('sha256').update(Buffer.concat(n.layer.flatMap((l) => l.blobs.map((b) => blobBytes(b))))).digest('hex');
      expect(hash(again), p).toBe(hash(net));
      expect(net.layer.flatMap((l) => l.blobs).every((b) => b.data.length === 0), p).toBe(true);
    }
  });

  it('the reader leaves the caller\'s bytes unchanged (tags are patched and restored)', () => {
    const bytes = readFileSync(listCaffeFiles((n) => n === 'det4.caffemodel')[0]!);
    const before = createHash('sha256').update(bytes).digest('hex');
    const net = decodeCaffemodel(bytes);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(before);
    expect(blobFloat32(net.layer.find((l) => l.name === 'conv1')!.blobs[0]!).length).toBe(50 * 3 * 3 * 3);
  });

  it('blobs written unpacked or split over several records still decode', () => {
    // BlobProto { shape { dim: 2 } data (unpacked): 1.5, -2 } inside a layer.
    const f32 = (v: number) => Array.from(new Uint8Array(Float32Array.of(v).buffer));
    const blob = [0x3a, 0x03, 0x0a, 0x01, 0x02, 0x2d, ...f32(1.5), 0x2d, ...f32(-2)];
    const split = [0x3a, 0x03, 0x0a, 0x01, 0x02, 0x2a, 0x04, ...f32(1.5), 0x2a, 0x04, ...f32(-2)];
    for (const b of [blob, split]) {
      const layer = [0x0a, 0x01, 0x63, 0x3a, b.length, ...b];
      const net = decodeCaffemodel(Uint8Array.from([0xa2, 0x06, layer.length, ...layer]));
      expect(Array.from(blobFloat32(net.layer[0]!.blobs[0]!))).toEqual([1.5, -2]);
    }
  });

  it('keeps unknown (fork) fields through a round trip', async () => {
    const original = readFileSync(listCaffeFiles((n) => n === 'det1.caffemodel')[0]!);
    const sink = new MemorySink();
    await writeCaffemodel(decodeCaffemodel(original), sink);
    // JfdaLoss' field 23333 is not in our schema; its bytes must still be there.
    const tag = Uint8Array.from([0xaa, 0xb2, 0x0b]);
    const has = (b: Uint8Array) => Buffer.from(b).includes(Buffer.from(tag));
    expect(has(original)).toBe(true);
    expect(has(sink.bytes())).toBe(true);
  });

  it('double_data blobs become float64 tensors', async () => {
    const net = create(NetParameterSchema, { layer: [create(LayerParameterSchema, { name: 'c', type: 'Convolution', blobs: [create(BlobProtoSchema, { shape: create(BlobShapeSchema, { dim: [2n] }), doubleData: [1.5, -2] })] })] });
    const decoded = decodeCaffemodel(toBinary(NetParameterSchema, net));
    const t = caffeWeights(decoded).tensors[0]!;
    expect(t.dtype).toBe('float64');
    expect(Array.from(new Float64Array((await t.load()).slice().buffer))).toEqual([1.5, -2]);
    expect(createHash('sha256').update(await t.load()).digest('hex')).toBe(createHash('sha256').update(new Uint8Array(Float64Array.from([1.5, -2]).buffer)).digest('hex'));
  });
});

describe('caffemodel errors', () => {
  const det1 = () => readFileSync(listCaffeFiles((n) => n === 'det1.caffemodel')[0]!);

  it('E_TRUNCATED: empty file and a file cut short, with the byte offset', async () => {
    expect((await errorOf(() => decodeCaffemodel(new Uint8Array(0), { path: 'x.caffemodel' }))).code).toBe(ErrorCodes.TRUNCATED);
    const e = await errorOf(() => decodeCaffemodel(det1().subarray(0, 20000), { path: 'det1.caffemodel' }));
    expect(e.code).toBe(ErrorCodes.TRUNCATED);
    expect(e.path).toBe('det1.caffemodel');
    expect(e.offset).toBeGreaterThan(0);
    expect(e.format).toBe('caffemodel');
  });

  it('E_MALFORMED: wrong wire types, and bytes that decode to a net without layers', async () => {
    expect((await errorOf(() => decodeCaffemodel(Uint8Array.from([0xa2, 0x06, 0x01, 0x00])))).code).toBe(ErrorCodes.MALFORMED);
    expect((await errorOf(() => decodeCaffemodel(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff])))).code).toBe(ErrorCodes.MALFORMED);
    const e = await errorOf(() => decodeCaffemodel(toBinary(NetParameterSchema, create(NetParameterSchema, { name: 'empty' }))));
    expect(e.code).toBe(ErrorCodes.MALFORMED);
    expect(e.message).toContain('no layers');
  });

  it('E_TENSOR_SIZE: blob values disagree with the shape (names the blob)', async () => {
    const net = create(NetParameterSchema, { layer: [create(LayerParameterSchema, { name: 'fc', type: 'InnerProduct', blobs: [create(BlobProtoSchema, { num: 1, channels: 1, height: 2, width: 3, data: [1, 2, 3] })] })] });
    const e = await errorOf(() => decodeCaffemodel(toBinary(NetParameterSchema, net), { path: 'm.caffemodel' }));
    expect(e.code).toBe(ErrorCodes.TENSOR_SIZE);
    expect(e.tensor).toBe('fc.0');
  });

  it('E_OUT_OF_RANGE: negative or huge dims', async () => {
    const neg = create(NetParameterSchema, { layer: [create(LayerParameterSchema, { name: 'a', blobs: [create(BlobProtoSchema, { num: -1 })] })] });
    expect((await errorOf(() => decodeCaffemodel(toBinary(NetParameterSchema, neg))) ).code).toBe(ErrorCodes.OUT_OF_RANGE);
    const huge = create(NetParameterSchema, { layer: [create(LayerParameterSchema, { name: 'a', blobs: [create(BlobProtoSchema, { shape: create(BlobShapeSchema, { dim: [1n << 40n, 1n << 40n] }) })] })] });
    expect((await errorOf(() => decodeCaffemodel(toBinary(NetParameterSchema, huge)))).code).toBe(ErrorCodes.OUT_OF_RANGE);
  });

  it('E_LIMIT: files of 2 GiB or more, and nesting deeper than the cap', async () => {
    const big: ByteSource = { size: 2 ** 31, name: 'big.caffemodel', read: async () => new Uint8Array(0), readInto: async () => {} };
    expect((await errorOf(() => readCaffemodel(big))).code).toBe(ErrorCodes.LIMIT);
    // 200 nested groups inside an unknown field.
    const bytes = new Uint8Array(400);
    for (let i = 0; i < 200; i++) bytes[i] = 0x4b; // field 9, start group
    for (let i = 0; i < 200; i++) bytes[200 + i] = 0x4c; // field 9, end group
    expect((await errorOf(() => decodeCaffemodel(bytes))).code).toBe(ErrorCodes.LIMIT);
  });

  it('E_TENSOR_SIZE from caffeWeights for blobs written inline in a prototxt', async () => {
    const ok = caffeWeights(parseCaffePrototxt('layer { name: "s" type: "Scale" blobs { shape { dim: 2 } data: [1, 2] } }', { path: 'inline.prototxt' }));
    expect(ok.tensors.map((t) => `${t.name}:${t.shape}`)).toEqual(['s.weight:2']);
    expect(Array.from(new Float32Array((await ok.tensors[0]!.load()).slice().buffer))).toEqual([1, 2]);
    const e = await errorOf(() => caffeWeights(parseCaffePrototxt('layer { name: "s" type: "Scale" blobs { shape { dim: 3 } data: [1, 2] } }', { path: 'inline.prototxt' })));
    expect(e.code).toBe(ErrorCodes.TENSOR_SIZE);
    expect(e.tensor).toBe('s.weight');
    expect(e.path).toBe('inline.prototxt');
  });

  it('E_IO: a source that fails to read', async () => {
    const broken: ByteSource = { size: 10, name: 'broken', read: async () => { throw new Error('disk on fire'); }, readInto: async () => {} };
    const e = await errorOf(() => readCaffemodel(broken));
    expect(e.code).toBe(ErrorCodes.IO);
    expect(e.message).toContain('disk on fire');
  });
});
