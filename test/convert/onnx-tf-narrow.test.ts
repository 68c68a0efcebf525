/**
 * 8/4/2-bit dtypes and sequences in the ONNX → TF conversion (carriers.ts, narrow.ts). Oracles:
 * onnxruntime-node (its C++ float8 casts and int4 (de)quantization) for everything it runs, the
 * corpus node tests (conformance) for float4e2m1 and e8m0, and an exponent-arithmetic rounding
 * written here — a different method from the converter's comparison search — for float4e2m1.
 */
import { create, toBinary } from '@bufbuild/protobuf';
import { GraphProtoSchema, ModelProtoSchema, OperatorSetIdProtoSchema, TensorProtoSchema, TypeProto_SequenceSchema, TypeProtoSchema, ValueInfoProtoSchema } from 'onnx-buf';
import { describe, expect, it } from 'vitest';
import { dtypeInfo, type DType } from '../../src/core/dtype.js';
import { isModelsmithError } from '../../src/core/errors.js';
import type { Tensor } from '../../src/core/tensor.js';
import { carrierOf, codeValues, encodeTable, fromCarrier, toCarrier } from '../../src/convert/onnx-tf/carriers.js';
import { onnxToTf } from '../../src/convert/onnx-tf/index.js';
import { tensorValueInfo } from '../../src/formats/onnx/build.js';
import { decodeOnnx } from '../../src/formats/onnx/read.js';
import { decodeSequenceProto, stackSequence } from '../../src/formats/onnx/sequence.js';
import { tensorToProto } from '../../src/formats/onnx/tensor.js';
import { f16ToF32Ref } from '../../src/kernels/reference/cast.js';
import { buildModel, nums, onnxNode, runOrt, runTf, tensorOf } from './onnx-tf-helpers.js';

const FLOAT8: DType[] = ['float8e4m3fn', 'float8e4m3fnuz', 'float8e5m2', 'float8e5m2fnuz'];

/** Every float16 bit pattern's value. */
const ALL_F16 = Array.from(f16ToF32Ref(Uint16Array.from({ length: 65536 }, (_, b) => b)));

function nextF32(t: number, dir: 1 | -1): number {
  const f = new Float32Array([t]);
  const u = new Uint32Array(f.buffer);
  u[0] = u[0]! + (t >= 0 ? dir : -dir);
  return f[0]!;
}

/** Every float16 value, each rounding threshold of `d` and its float32 neighbours, ± and specials. */
function probeValues(d: DType): number[] {
  const out: number[] = [];
  out.push(...ALL_F16);
  for (const t of encodeTable(d).thresholds) for (const v of [t, nextF32(t, 1), nextF32(t, -1)]) out.push(v, -v);
  out.push(3.4e38, -3.4e38, 1e-40, -1e-40, -0);
  return out;
}

function same(x: number, y: number): boolean {
  return Object.is(x, y) || (Number.isNaN(x) && Number.isNaN(y));
}

async function tfOnly(nodes: ReturnType<typeof onnxNode>[], inputs: Parameters<typeof buildModel>[1], outputs: Parameters<typeof buildModel>[2], feeds: Tensor[], inits: Tensor[] = [], opset = 21) {
  const m = buildModel(nodes, inputs, outputs, inits, opset);
  const res = await onnxToTf(m.model, { constants: true });
  return { res, got: await runTf(res, feeds), m };
}

/**
 * Non-saturating overflow where onnxruntime 1.30 and ONNX's reference implementation (its `|=` of the
 * overflow code onto a rounded code) disagree with round-to-nearest-even: e4m3fn maps [480, 496) to
 * ±448 though (464, 480) is NaN; e5m2 maps [61440, 65536) to NaN, not ±inf.
 */
const ORT_OVERFLOW_QUIRK: Partial<Record<DType, { from: number; to: number; ort: (v: number) => number; ours: (v: number) => number }>> = {
  float8e4m3fn: { from: 480, to: 496, ort: (v) => Math.sign(v) * 448, ours: () => Number.NaN },
  float8e5m2: { from: 61440, to: 65536, ort: () => Number.NaN, ours: (v) => Math.sign(v) * Infinity },
};

describe('float8 casts agree with onnxruntime on every float16 value and every rounding tie', () => {
  for (const d of FLOAT8) {
    for (const saturate of [1, 0]) {
      it(`${d}, saturate=${saturate}`, async () => {
        const vals = probeValues(d);
        const n = vals.length;
        const nodes = [onnxNode('Cast', ['x'], ['q'], { to: dtypeInfo(d).onnx, saturate }), onnxNode('Cast', ['q'], ['y'], { to: 1 })];
        const m = buildModel(nodes, [{ name: 'x', dims: [n] }], [{ name: 'y', dims: [n] }], [], 21);
        const x = tensorOf('x', 'float32', [n], vals);
        const want = nums((await runOrt(m.bytes, [x])).get('y')!);
        const res = await onnxToTf(m.model, { constants: true });
        const got = nums((await runTf(res, [x])).get('y')!);
        const quirk = saturate === 0 ? ORT_OVERFLOW_QUIRK[d] : undefined;
        const inQuirk = (v: number): boolean => !!quirk && Math.abs(v) >= quirk.from && Math.abs(v) < quirk.to;
        const bad = vals.map((v, i) => [v, got[i]!, want[i]!] as const).filter(([v, g, w]) => !same(g, w) && !inQuirk(v));
        expect(bad.slice(0, 5)).toEqual([]);
        if (quirk) {
          // Where onnxruntime (and ONNX's reference implementation) depart from round-to-nearest-even
          // overflow, the converted graph keeps the spec's answer: check both sides of that claim.
          const q = vals.map((v, i) => [v, got[i]!, want[i]!] as const).filter(([v]) => inQuirk(v) && Number.isFinite(v));
          expect(q.length).toBeGreaterThan(0);
          for (const [v, g, w] of q) {
            expect(same(w, quirk.ort(v)), `ort ${v} → ${w}`).toBe(true);
            expect(same(g, quirk.ours(v)), `ours ${v} → ${g}`).toBe(true);
          }
        }
        // The graph holds the bits in uint8 and decodes them through one table: no float8 dtype in TF.
        expect(res.graph.node.some((nd) => Object.values(nd.attr).some((a) => a.value.case === 'type' && (a.value.value === 24 || a.value.value === 25)))).toBe(false);
      });
    }
  }

  it('keeps the sign of zero where the format has a −0 and drops it where it has none', async () => {
    for (const d of FLOAT8) {
      const { got } = await tfOnly([onnxNode('Cast', ['x'], ['q'], { to: dtypeInfo(d).onnx })], [{ name: 'x', dims: [3] }], [{ name: 'q', dims: [3], dtype: d }], [tensorOf('x', 'float32', [3], [-0, -1e-30, 0])]);
      const bits = nums(got.get('q')!);
      expect(bits, d).toEqual(d.endsWith('fnuz') ? [0, 0, 0] : [0x80, 0x80, 0]);
    }
  });
});

/** Round half to even with an unbounded exponent, then saturate: the textbook definition, for float4e2m1. */
function refFloat4(x: number): number {
  if (Number.isNaN(x)) return 0x8;
  const neg = x < 0 || Object.is(x, -0) ? 0x8 : 0;
  const ax = Math.abs(x);
  const values = [0, 0.5, 1, 1.5, 2, 3, 4, 6];
  if (ax === Infinity) return neg | 7;
  let e = Math.max(ax > 0 ? Math.floor(Math.log2(ax)) : 0, 0);
  if (2 ** e > ax && e > 0) e--;
  const q = 2 ** (e - 1);
  const r = ax / q;
  let k = Math.floor(r);
  if (r - k > 0.5 || (r - k === 0.5 && k % 2 === 1)) k++;
  const v = Math.min(k * q, 6);
  return neg | values.indexOf(v);
}

describe('float4e2m1', () => {
  it('matches round-half-to-even with saturation on every float16 value', async () => {
    const vals = ALL_F16;
    const n = vals.length;
    const { got, res } = await tfOnly([onnxNode('Cast', ['x'], ['q'], { to: dtypeInfo('float4e2m1').onnx })], [{ name: 'x', dims: [n] }], [{ name: 'q', dims: [n], dtype: 'float4e2m1' }], [tensorOf('x', 'float32', [n], vals)], [], 23);
    const bits = nums(got.get('q')!);
    const bad = vals.map((v, i) => [v, bits[i]!, refFloat4(v)] as const).filter(([, g, w]) => g !== w);
    expect(bad.filter((_, i) => i % Math.max(1, Math.floor(bad.length / 12)) === 0).slice(0, 12)).toEqual([]);
    expect(res.signature.outputs['q']!.dtype).toBe('uint8');
    expect(res.report.ioForms['q']).toMatch(/float4e2m1 carried as uint8 bit patterns/);
    // Back to ONNX's packed layout: two elements per byte, low nibble first.
    const packed = fromCarrier(got.get('q')!, 'float4e2m1');
    expect(packed.data.byteLength).toBe(n / 2);
  });

  it('decodes every code', () => {
    expect(codeValues('float4e2m1')).toEqual([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6]);
  });
});

describe('4/2-bit integers and float8 weights', () => {
  it('int4/uint4 initializers cast like onnxruntime; int2/uint2 inputs unpack low bits first', async () => {
    const v4 = [-8, -1, 0, 3, 7];
    const i4: Tensor = fromCarrier(tensorOf('w', 'int8', [5], v4), 'int4');
    const u4: Tensor = fromCarrier(tensorOf('u', 'uint8', [5], [0, 1, 9, 14, 15]), 'uint4');
    const nodes = [onnxNode('Cast', ['w'], ['a'], { to: 3 }), onnxNode('Cast', ['u'], ['b'], { to: 1 })];
    const m = buildModel(nodes, [], [{ name: 'a', dims: [5], dtype: 'int8' }, { name: 'b', dims: [5] }], [i4, u4], 21);
    const want = await runOrt(m.bytes, []);
    const res = await onnxToTf(m.model, { constants: true });
    const got = await runTf(res, []);
    expect(nums(got.get('a')!)).toEqual(nums(want.get('a')!));
    expect(nums(got.get('a')!)).toEqual(v4);
    expect(nums(got.get('b')!)).toEqual(nums(want.get('b')!));

    const x2 = fromCarrier(tensorOf('x', 'int8', [7], [1, -2, -1, 0, 1, -2, -1]), 'int2');
    expect([...x2.data]).toEqual([0b00111001, 0b00111001]);
    const { got: g2, res: r2 } = await tfOnly([onnxNode('Cast', ['x'], ['y'], { to: 3 })], [{ name: 'x', dims: [7], dtype: 'int2' }], [{ name: 'y', dims: [7], dtype: 'int8' }], [toCarrier(x2)]);
    expect(nums(g2.get('y')!)).toEqual([1, -2, -1, 0, 1, -2, -1]);
    expect(r2.signature.inputs['x']!.dtype).toBe('int8');
  });

  it('float8 weights dequantize and activations quantize like onnxruntime', async () => {
    for (const d of FLOAT8) {
      const wq = toCarrier({ name: 'wq', dtype: d, shape: [8], data: Uint8Array.from([0, 1, 0x38, 0x40, 0x7b, 0x85, 0xc0, 0xfe]) });
      const w: Tensor = { ...fromCarrier(wq, d), name: 'wq' };
      const scale = tensorOf('s', 'float32', [], [0.5]);
      const zp = { ...fromCarrier(tensorOf('zp', 'uint8', [], [0]), d), name: 'zp' };
      const nodes = [
        onnxNode('DequantizeLinear', ['wq', 's', 'zp'], ['w']),
        onnxNode('QuantizeLinear', ['x', 's', 'zp'], ['xq']),
        onnxNode('DequantizeLinear', ['xq', 's', 'zp'], ['xd']),
      ];
      const m = buildModel(nodes, [{ name: 'x', dims: [6] }], [{ name: 'w', dims: [8] }, { name: 'xd', dims: [6] }], [w, scale, zp], 21);
      const x = tensorOf('x', 'float32', [6], [0.01, -0.3, 3.3, 100, -1e6, 7e4]);
      const want = await runOrt(m.bytes, [x]);
      const res = await onnxToTf(m.model, { constants: true });
      const got = await runTf(res, [x]);
      for (const k of ['w', 'xd']) {
        const g = nums(got.get(k)!);
        const wv = nums(want.get(k)!);
        expect(g.every((v, i) => same(v, wv[i]!)), `${d} ${k}: ${g} vs ${wv}`).toBe(true);
      }
    }
  });

  it('int4 quantization round-trips like onnxruntime', async () => {
    const zp = fromCarrier(tensorOf('zp', 'int8', [], [1]), 'int4');
    const s = tensorOf('s', 'float32', [], [0.25]);
    const nodes = [onnxNode('QuantizeLinear', ['x', 's', 'zp'], ['q']), onnxNode('DequantizeLinear', ['q', 's', 'zp'], ['y'])];
    const m = buildModel(nodes, [{ name: 'x', dims: [6] }], [{ name: 'y', dims: [6] }], [s, { ...zp, name: 'zp' }], 21);
    const x = tensorOf('x', 'float32', [6], [-5, -0.375, 0.125, 0.3, 1.6, 9]);
    const want = nums((await runOrt(m.bytes, [x])).get('y')!);
    const res = await onnxToTf(m.model, { constants: true });
    expect(nums((await runTf(res, [x])).get('y')!)).toEqual(want);
  });
});

describe('refusals name the op and never compute on bit patterns', () => {
  async function refusal(nodes: ReturnType<typeof onnxNode>[], inputs: Parameters<typeof buildModel>[1], outputs: Parameters<typeof buildModel>[2], opset = 21): Promise<string> {
    const m = buildModel(nodes, inputs, outputs, [], opset);
    try {
      await onnxToTf(m.model, { constants: true });
    } catch (e) {
      expect(isModelsmithError(e)).toBe(true);
      return String((e as Error).message);
    }
    throw new Error('converted');
  }

  it('arithmetic on a float8 value', async () => {
    const msg = await refusal([onnxNode('Add', ['x', 'x'], ['y'])], [{ name: 'x', dims: [2], dtype: 'float8e4m3fn' }], [{ name: 'y', dims: [2], dtype: 'float8e4m3fn' }]);
    expect(msg).toMatch(/^E_UNSUPPORTED: Add on float8e4m3fn input 'x'.*op 'Add/);
  });

  it('casts into 4/2-bit integers and into float8e8m0', async () => {
    expect(await refusal([onnxNode('Cast', ['x'], ['y'], { to: dtypeInfo('int4').onnx })], [{ name: 'x', dims: [2] }], [{ name: 'y', dims: [2], dtype: 'int4' }])).toMatch(/E_UNSUPPORTED: Cast to int4/);
    expect(await refusal([onnxNode('Cast', ['x'], ['y'], { to: dtypeInfo('float8e8m0').onnx })], [{ name: 'x', dims: [2] }], [{ name: 'y', dims: [2], dtype: 'float8e8m0' }], 24)).toMatch(/E_UNSUPPORTED: Cast to float8e8m0/);
  });
});

describe('sequences', () => {
  function seqModel(op: string): ReturnType<typeof decodeOnnx> {
    const seqType = (name: string) => {
      const elem = tensorValueInfo(name, [2], 1).type!;
      return create(ValueInfoProtoSchema, { name, type: create(TypeProtoSchema, { value: { case: 'sequenceType', value: create(TypeProto_SequenceSchema, { elemType: elem }) } }) });
    };
    const proto = create(ModelProtoSchema, {
      irVersion: 8n,
      opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 17n })],
      graph: create(GraphProtoSchema, { name: 'g', node: [onnxNode(op, ['x'], ['y'])], input: [seqType('x')], output: [seqType('y')] }),
    });
    return decodeOnnx(toBinary(ModelProtoSchema, proto), { path: 'seq.onnx' });
  }

  it('an Identity on a sequence passes the stacked tensor through', async () => {
    const res = await onnxToTf(seqModel('Identity'), { constants: true });
    expect(res.signature.inputs['x']!.shape).toEqual([-1, 2]);
    expect(res.report.ioForms['x']).toMatch(/sequence<float32> stacked on a new axis 0/);
    const items = [tensorOf('a', 'float32', [2], [1, 2]), tensorOf('b', 'float32', [2], [3, 4]), tensorOf('c', 'float32', [2], [5, 6])];
    const got = await runTf(res, [stackSequence('x', items)]);
    expect(got.get('y')!.shape).toEqual([3, 2]);
    expect(nums(got.get('y')!)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('other ops on a sequence are refused by name', async () => {
    await expect(onnxToTf(seqModel('Relu'), { constants: true })).rejects.toThrow(/E_UNSUPPORTED: Relu on sequence 'x'/);
  });

  it('SequenceProto files decode; unequal or non-tensor sequences are refused', () => {
    const t = (v: number[], shape: number[]) => toBinary(TensorProtoSchema, tensorToProto(tensorOf('', 'float32', shape, v)));
    const field = (no: number, body: Uint8Array) => Uint8Array.from([(no << 3) | 2, body.length, ...body]);
    const seq = Uint8Array.from([0x10, 1, ...field(3, t([1, 2], [2])), ...field(3, t([3, 4], [2]))]);
    const items = decodeSequenceProto(seq, 's.pb');
    expect(items.map((x) => x.shape)).toEqual([[2], [2]]);
    expect(stackSequence('s', items).shape).toEqual([2, 2]);
    const ragged = decodeSequenceProto(Uint8Array.from([0x10, 1, ...field(3, t([1, 2], [2])), ...field(3, t([3], [1]))]));
    expect(() => stackSequence('s', ragged)).toThrow(/E_UNSUPPORTED: sequence elements differ/);
    expect(() => stackSequence('s', [])).toThrow(/E_UNSUPPORTED: an empty sequence/);
    expect(() => decodeSequenceProto(Uint8Array.from([0x10, 4, ...field(6, Uint8Array.from([]))]), 'm.pb')).toThrow(/E_UNSUPPORTED: sequence of non-tensor values/);
    expect(() => decodeSequenceProto(Uint8Array.from([0x1a, 9, 1]), 't.pb')).toThrow(/E_MALFORMED: not a valid SequenceProto/);
  });
});

describe('carrier packing', () => {
  it('round-trips every sub-byte dtype through its carrier, odd lengths included', () => {
    for (const d of ['int4', 'uint4', 'int2', 'uint2', 'float4e2m1'] as DType[]) {
      const bits = dtypeInfo(d).bits;
      const n = 7;
      const packed = new Uint8Array(Math.ceil((n * bits) / 8));
      for (let i = 0; i < packed.length; i++) packed[i] = (i * 97 + 13) & 0xff;
      // Padding bits past the last element are zero in ONNX's layout.
      const used = n * bits;
      if (used % 8) packed[packed.length - 1]! &= (1 << (used % 8)) - 1;
      const t: Tensor = { name: 't', dtype: d, shape: [n], data: packed };
      const c = toCarrier(t);
      expect(c.dtype).toBe(carrierOf(d));
      expect(c.data.byteLength).toBe(n);
      expect([...fromCarrier(c, d).data]).toEqual([...packed]);
    }
  });

  it('refuses a tensor whose bytes do not match its shape', () => {
    expect(() => toCarrier({ name: 'w', dtype: 'int4', shape: [5], data: new Uint8Array(2) })).toThrow(/E_TENSOR_SIZE: int4\[5\] needs 3 bytes/);
  });
});

