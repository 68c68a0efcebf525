import { describe, expect, it } from 'vitest';
import { DTYPES, byteLength, dtypeFromKey, dtypeFromOnnx, dtypeInfo } from '../../src/core/dtype.js';
import { ModelsmithError } from '../../src/core/errors.js';
import { makeTensor, numel, typedView } from '../../src/core/tensor.js';
import { detectFormat } from '../../src/formats/registry.js';

describe('dtype table', () => {
  it('covers every ONNX element type 1..26 exactly once', () => {
    const codes = DTYPES.map((d) => d.onnx).sort((a, b) => a - b);
    expect(codes).toEqual(Array.from({ length: 26 }, (_, i) => i + 1));
    expect(dtypeFromOnnx(0)).toBeUndefined();
    expect(dtypeFromOnnx(99)).toBeUndefined();
  });

  it('maps the other formats\' codes without collisions', () => {
    for (const key of ['torch', 'safetensors', 'tf', 'torchStorage'] as const) {
      const seen = DTYPES.map((d) => d[key]).filter((v) => v !== undefined);
      expect(new Set(seen).size, key).toBe(seen.length);
    }
    expect(dtypeFromKey('safetensors', 'BF16')?.name).toBe('bfloat16');
    expect(dtypeFromKey('tf', 19)?.name).toBe('float16');
    expect(dtypeFromKey('torchStorage', 'LongStorage')?.name).toBe('int64');
  });

  it('sizes sub-byte types packed, rounded up to whole bytes', () => {
    expect(byteLength('int4', 3)).toBe(2);
    expect(byteLength('uint2', 5)).toBe(2);
    expect(byteLength('float4e2m1', 4)).toBe(2);
    expect(byteLength('complex128', 2)).toBe(32);
    expect(byteLength('string', 2)).toBe(-1);
    expect(dtypeInfo('bfloat16').bits).toBe(16);
  });
});

describe('Tensor', () => {
  it('numel refuses negative, fractional and overflowing dims with E_OUT_OF_RANGE', () => {
    expect(numel([])).toBe(1);
    expect(numel([2, 0, 5])).toBe(0);
    for (const bad of [[-1], [1.5], [2 ** 30, 2 ** 30]]) {
      expect(() => numel(bad)).toThrowError(ModelsmithError);
      try {
        numel(bad);
      } catch (e) {
        expect((e as ModelsmithError).code).toBe('E_OUT_OF_RANGE');
      }
    }
  });

  it('makeTensor checks the payload size (E_TENSOR_SIZE names the tensor)', () => {
    expect(makeTensor('w', 'float32', [2, 2], new Uint8Array(16)).shape).toEqual([2, 2]);
    expect(() => makeTensor('w', 'float32', [2, 2], new Uint8Array(15))).toThrowError(/E_TENSOR_SIZE.*tensor 'w'/);
  });

  it('typedView copies only when the bytes are unaligned', () => {
    const buf = new Uint8Array(9);
    new DataView(buf.buffer).setFloat32(1, 1.5, true);
    new DataView(buf.buffer).setFloat32(5, -2, true);
    const unaligned = typedView({ name: 'x', dtype: 'float32', shape: [2], data: buf.subarray(1) });
    expect(Array.from(unaligned as Float32Array)).toEqual([1.5, -2]);
    const aligned = new Uint8Array(8);
    const v = typedView({ name: 'y', dtype: 'float32', shape: [2], data: aligned }) as Float32Array;
    v[0] = 3;
    expect(aligned[3]).toBe(0x40); // same memory: writes show through
    expect(() => typedView({ name: 'z', dtype: 'int4', shape: [2], data: new Uint8Array(1) })).toThrowError(/E_DTYPE/);
  });
});

describe('format detection', () => {
  const bytes = (...b: number[]) => new Uint8Array([...b, ...new Array(16).fill(0)]);
  it('recognises each format by magic bytes or name', () => {
    expect(detectFormat(bytes(0x50, 0x4b, 3, 4), 'm.pt')?.name).toBe('pytorch-zip');
    expect(detectFormat(bytes(0x80, 2), 'm.pth')?.name).toBe('pytorch-legacy');
    expect(detectFormat(new Uint8Array([40, 0, 0, 0, 0, 0, 0, 0, 0x7b]), 'x.safetensors')?.name).toBe('safetensors');
    expect(detectFormat(bytes(0x08, 0x07), 'model.bin')?.name).toBe('onnx');
    expect(detectFormat(bytes(), 'deploy.prototxt')?.name).toBe('caffe-prototxt');
    expect(detectFormat(bytes(), 'dir', true)?.name).toBe('savedmodel');
    expect(detectFormat(new TextEncoder().encode('hello world'), 'notes.txt')).toBeUndefined();
  });
});

describe('typedView on Node Buffers', () => {
  it('copies an unaligned Buffer view to the right values (Buffer.slice is a view, not a copy)', () => {
    const f = Float32Array.of(1.5, -2.25, 3.125);
    const file = Buffer.alloc(3 + 12);
    Buffer.from(f.buffer).copy(file, 3);
    const t = { name: 'w', dtype: 'float32' as const, shape: [3], data: file.subarray(3) };
    expect(Array.from(typedView(t) as Float32Array)).toEqual([1.5, -2.25, 3.125]);
  });
});
