/**
 * Writer: refusal of what safetensors cannot express, the crate's layout rules (rank, UTF-8 name
 * order, padding, alignment), streaming one tensor at a time, and round trips of every dtype the
 * shared table can put in a safetensors file.
 */
import { describe, expect, it } from 'vitest';
import { DTYPES, type DType } from '../../../src/core/dtype.js';
import { MemorySink, MemorySource } from '../../../src/io/source.js';
import { inMemoryTensor, type LazyTensor } from '../../../src/formats/weights.js';
import { readSafetensors } from '../../../src/formats/safetensors/read.js';
import { planSafetensors, writeSafetensors } from '../../../src/formats/safetensors/write.js';
import { catchMs } from './helpers.js';

const mk = (name: string, dtype: DType, shape: number[], bytes?: number[]): LazyTensor => {
  const n = shape.reduce((a, b) => a * b, 1);
  const size = Math.ceil((n * DTYPES.find((d) => d.name === dtype)!.bits) / 8);
  return inMemoryTensor({ name, dtype, shape, data: new Uint8Array(bytes ?? Array.from({ length: size }, (_, i) => (i * 7 + name.length) & 255)) });
};

async function write(tensors: LazyTensor[], metadata?: Record<string, string>) {
  const sink = new MemorySink();
  await writeSafetensors(metadata ? { tensors, metadata } : { tensors }, sink);
  return sink.bytes();
}

function headerOf(b: Uint8Array): string {
  const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
  return new TextDecoder().decode(b.subarray(8, 8 + n));
}

describe('refusals (before anything is written)', () => {
  it('duplicate names → E_MALFORMED naming the tensor', async () => {
    const sink = new MemorySink();
    const e = await catchMs(() => writeSafetensors({ tensors: [mk('w', 'float32', [2]), mk('w', 'int8', [2])] }, sink));
    expect(e.code).toBe('E_MALFORMED');
    expect(e.tensor).toBe('w');
    expect(e.message).toContain('duplicate');
    expect(sink.position).toBe(0);
  });

  it.each(['complex128', 'uint4', 'int4', 'int2', 'uint2'] as DType[])('%s → E_DTYPE naming the tensor', async (dtype) => {
    const e = await catchMs(() => write([mk('ok', 'float32', [1]), mk('bad', dtype, [4])]));
    expect(e.code).toBe('E_DTYPE');
    expect(e.tensor).toBe('bad');
    expect(e.message).toContain(dtype);
  });

  it('string tensors → E_DTYPE', async () => {
    const e = await catchMs(() => write([{ name: 's', dtype: 'string', shape: [1], byteLength: 0, load: async () => new Uint8Array(0) }]));
    expect(e.code).toBe('E_DTYPE');
  });

  it('declared size disagreeing with dtype × shape → E_TENSOR_SIZE', async () => {
    const e = await catchMs(() => write([{ ...mk('x', 'float32', [2]), byteLength: 7 }]));
    expect(e.code).toBe('E_TENSOR_SIZE');
    expect(e.tensor).toBe('x');
  });

  it('load() returning another length than declared → E_TENSOR_SIZE', async () => {
    const liar: LazyTensor = { name: 'liar', dtype: 'uint8', shape: [4], byteLength: 4, load: async () => new Uint8Array(3) };
    const e = await catchMs(() => write([liar]));
    expect(e.code).toBe('E_TENSOR_SIZE');
    expect(e.tensor).toBe('liar');
  });

  it('F4 with an odd element count → E_TENSOR_SIZE (MisalignedSlice)', async () => {
    const e = await catchMs(() => write([mk('f', 'float4e2m1', [3])]));
    expect(e.code).toBe('E_TENSOR_SIZE');
    expect(e.message).toContain('MisalignedSlice');
  });

  it('names safetensors cannot hold → E_MALFORMED', async () => {
    expect((await catchMs(() => write([mk('__metadata__', 'uint8', [1])]))).code).toBe('E_MALFORMED');
    expect((await catchMs(() => write([mk('bad\ud800', 'uint8', [1])]))).code).toBe('E_MALFORMED');
    expect((await catchMs(() => write([mk('a', 'uint8', [1])], { k: 1 as unknown as string }))).code).toBe('E_MALFORMED');
  });

  it('bad shapes → E_OUT_OF_RANGE', async () => {
    const e = await catchMs(() => write([{ name: 'n', dtype: 'uint8', shape: [-1], byteLength: 0, load: async () => new Uint8Array(0) }]));
    expect(e.code).toBe('E_OUT_OF_RANGE');
    expect(e.tensor).toBe('n');
  });
});

describe('layout', () => {
  it('orders data by crate dtype rank descending, then by name in UTF-8 byte order', async () => {
    // '\uffff' sorts after the emoji in UTF-16 but before it in UTF-8 (EF BF BF < F0 9F 98 80).
    const names = ['b', 'a', '\uffff', '😀', 'é'];
    const tensors = [...names.map((n) => mk(n, 'uint8', [1])), mk('z64', 'float64', [1]), mk('u64', 'uint64', [1]), mk('h', 'bfloat16', [1]), mk('f', 'float16', [1]), mk('e4', 'float8e4m3fn', [1]), mk('e5', 'float8e5m2', [1])];
    const out = await write(tensors);
    const keys = Object.keys(JSON.parse(headerOf(out)));
    expect(keys).toEqual(['u64', 'z64', 'h', 'f', 'e4', 'e5', 'a', 'b', 'é', '\uffff', '😀']);
  });

  it('pads the header with spaces to a multiple of 8 and keeps every tensor naturally aligned', async () => {
    for (let len = 1; len <= 9; len++) {
      const out = await write([mk('x'.repeat(len), 'float64', [3]), mk('y', 'int32', [1]), mk('q', 'uint8', [3]), mk('s', 'int16', [2])]);
      const n = Number(new DataView(out.buffer).getBigUint64(0, true));
      expect(n % 8).toBe(0);
      expect(headerOf(out)).toMatch(/^\{.*\} *$/);
      expect(headerOf(out).trimEnd().length).toBeGreaterThan(n - 8);
      const set = await readSafetensors(new MemorySource(out));
      for (const t of set.tensors) expect((t.extra!['fileOffset'] as number) % Math.max(1, DTYPES.find((d) => d.name === t.dtype)!.bits / 8)).toBe(0);
    }
  });

  it('writes __metadata__ first in insertion order, escaping like serde_json', async () => {
    const out = await write([mk('t"\\\n\u0001', 'uint8', [1])], { b: 'x', a: 'é\u001f', '': '' });
    expect(headerOf(out).trimEnd()).toBe('{"__metadata__":{"b":"x","a":"é\\u001f","":""},"t\\"\\\\\\n\\u0001":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}');
  });

  it('an empty set is `{}` padded to 8, like the crate', async () => {
    const out = await write([]);
    expect(Array.from(out)).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d, 32, 32, 32, 32, 32, 32]);
  });

  it('planSafetensors reports the file size without loading anything', () => {
    let loads = 0;
    const t: LazyTensor = { name: 'big', dtype: 'float32', shape: [1 << 20], byteLength: 4 << 20, load: async () => (loads++, new Uint8Array(4 << 20)) };
    const plan = planSafetensors({ tensors: [t] });
    expect(plan.totalBytes).toBe(plan.head.byteLength + (4 << 20));
    expect(loads).toBe(0);
  });
});

describe('streaming', () => {
  it('writes the header first, then loads and writes one tensor at a time', async () => {
    const events: string[] = [];
    let live = 0;
    let maxLive = 0;
    const tensors: LazyTensor[] = ['c', 'a', 'b'].map((name) => ({
      name, dtype: 'float32', shape: [4], byteLength: 16,
      load: async () => {
        live++;
        maxLive = Math.max(maxLive, live);
        events.push(`load ${name}`);
        return new Uint8Array(16).fill(name.charCodeAt(0));
      },
    }));
    const sink = {
      position: 0,
      write: async (c: Uint8Array) => {
        events.push(`write ${c.byteLength}`);
        sink.position += c.byteLength;
        live = Math.max(0, live - 1);
      },
    };
    const { bytes } = await writeSafetensors({ tensors }, sink);
    expect(events[0]).toMatch(/^write \d+$/);
    expect(events.slice(1)).toEqual(['load a', 'write 16', 'load b', 'write 16', 'load c', 'write 16']);
    expect(maxLive).toBe(1);
    expect(bytes).toBe(sink.position);
  });
});

describe('round trip of every dtype safetensors can hold', () => {
  it('each table dtype with a safetensors code survives write → read bit for bit', async () => {
    const tensors = DTYPES.filter((d) => d.safetensors).map((d) => mk(`t_${d.name}`, d.name, [2, 4]));
    expect(tensors.length).toBeGreaterThanOrEqual(20);
    const out = await write(tensors, { format: 'pt' });
    const set = await readSafetensors(new MemorySource(out));
    expect(set.metadata).toEqual({ format: 'pt' });
    for (const t of tensors) {
      const back = set.tensors.find((x) => x.name === t.name)!;
      expect(back.dtype).toBe(t.dtype);
      expect(back.shape).toEqual(t.shape);
      expect(Array.from(await back.load())).toEqual(Array.from(await t.load()));
    }
  });
});

describe('scale', () => {
  it('20,000 tensors: plan, write and re-read the header (linear; a quadratic step would time out)', async () => {
    const tensors: LazyTensor[] = [];
    for (let i = 0; i < 20_000; i++) tensors.push(inMemoryTensor({ name: `layers.${i}.w`, dtype: i % 3 ? 'float32' : 'float16', shape: [1], data: new Uint8Array(i % 3 ? 4 : 2) }));
    const t0 = performance.now();
    const out = await write(tensors);
    const set = await readSafetensors(new MemorySource(out));
    const ms = performance.now() - t0;
    expect(set.tensors.length).toBe(20_000);
    expect(set.tensors[0]!.name).toBe('layers.1.w'); // F32 first, then name order (byte order: "1" < "10" < "100")
    expect(ms).toBeLessThan(15_000);
  });
});
