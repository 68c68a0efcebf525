/**
 * Hostile and malformed headers: each crate error name with its stable code, our deliberate choices
 * (duplicate keys, superset dtypes) and ≥ 2,000 seeded mutations of the corpus that must end in
 * success or a ModelsmithError, never another exception.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isModelsmithError } from '../../../src/core/errors.js';
import { MemorySource } from '../../../src/io/source.js';
import { readSafetensors } from '../../../src/formats/safetensors/read.js';
import { catchMs, GENERATED, SILERO, stFile, VECTORS } from './helpers.js';

const read = (b: Uint8Array) => readSafetensors(new MemorySource(b, 'hostile.safetensors'));
const t = (dtype: string, shape: unknown[], offsets: unknown[]) => ({ dtype, shape, data_offsets: offsets });

async function expectErr(b: Uint8Array, code: string, crate: string | undefined, extra: { tensor?: string; offset?: number } = {}) {
  const e = await catchMs(() => read(b));
  expect(e.code).toBe(code);
  if (crate) expect(e.message).toMatch(new RegExp(`^${code}: ${crate}: `));
  expect(e.message).toContain('hostile.safetensors');
  expect(e.format).toBe('safetensors');
  if (extra.tensor !== undefined) expect(e.tensor).toBe(extra.tensor);
  if (extra.offset !== undefined) expect(e.offset).toBe(extra.offset);
  return e;
}

function withPrefix(n: bigint, rest: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(8 + rest.length);
  new DataView(out.buffer).setBigUint64(0, n, true);
  out.set(rest, 8);
  return out;
}

describe('header length', () => {
  it('2^63 and 2^64-1 → HeaderTooLarge (E_LIMIT), without allocating', async () => {
    await expectErr(withPrefix(1n << 63n, new Uint8Array(16)), 'E_LIMIT', 'HeaderTooLarge', { offset: 0 });
    await expectErr(withPrefix((1n << 64n) - 1n), 'E_LIMIT', 'HeaderTooLarge');
    await expectErr(withPrefix(100_000_001n), 'E_LIMIT', 'HeaderTooLarge');
  });
  it('exactly the cap but past the file end → InvalidHeaderLength (E_TRUNCATED)', async () => {
    await expectErr(withPrefix(100_000_000n, new TextEncoder().encode('{}')), 'E_TRUNCATED', 'InvalidHeaderLength');
  });
  it('fewer than 8 bytes → HeaderTooSmall', async () => {
    for (const n of [0, 1, 7]) await expectErr(new Uint8Array(n), 'E_TRUNCATED', 'HeaderTooSmall');
  });
});

describe('UTF-8 and JSON', () => {
  it.each([
    ['0xff', [0x7b, 0xff, 0x7d], 1],
    ['overlong NUL', [0x7b, 0x22, 0xc0, 0x80, 0x22], 2],
    ['UTF-16 surrogate', [0x7b, 0x22, 0xed, 0xa0, 0x80], 2],
    ['cut-off sequence', [0x7b, 0x20, 0xe2, 0x82], 2],
    ['past U+10FFFF', [0xf4, 0x90, 0x80, 0x80], 0],
  ])('non-UTF-8 (%s) → InvalidHeader with the byte offset', async (_n, bytes, at) => {
    await expectErr(withPrefix(BigInt(bytes.length), new Uint8Array(bytes)), 'E_MALFORMED', 'InvalidHeader', { offset: 8 + at });
  });

  it.each([
    ['trailing comma', '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},}'],
    ['leading zero', '{"a":{"dtype":"U8","shape":[01],"data_offsets":[0,1]}}'],
    ['comment', '{/*x*/}'],
    ['NaN', '{"__metadata__":{"a":NaN}}'],
    ['single quotes', "{'a':1}"],
    ['trailing garbage', '{}x'],
    ['NUL padding', '{}\u0000\u0000'],
    ['raw newline in string', '{"a\nb":1}'],
    ['lone surrogate escape', '{"\\ud800":{"dtype":"U8","shape":[],"data_offsets":[0,1]}}'],
    ['lone trailing surrogate', '{"\\udc00x":1}'],
    ['bad escape', '{"\\x41":1}'],
    ['unterminated', '{"a":{"dtype":"U8"'],
    ['not an object', '[]'],
    ['a string', '"{}"'],
    ['empty', ''],
  ])('%s → InvalidHeaderDeserialization (E_MALFORMED)', async (_n, text) => {
    await expectErr(stFile(text, new Uint8Array(1), false), 'E_MALFORMED', 'InvalidHeaderDeserialization');
  });

  it('duplicate keys are refused (decision: the crate would keep one silently)', async () => {
    const dupTensor = '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}';
    const e = await expectErr(stFile(dupTensor, new Uint8Array(1)), 'E_MALFORMED', 'InvalidHeaderDeserialization');
    expect(e.message).toContain('duplicate key "a"');
    expect(e.offset).toBe(8 + dupTensor.lastIndexOf('"a"'));
    await expectErr(stFile('{"__metadata__":{"k":"1","k":"2"}}'), 'E_MALFORMED', 'InvalidHeaderDeserialization');
    await expectErr(stFile('{"__metadata__":{},"__metadata__":{}}'), 'E_MALFORMED', 'InvalidHeaderDeserialization');
    await expectErr(stFile('{"a":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}}', new Uint8Array(1)), 'E_MALFORMED', 'InvalidHeaderDeserialization');
  });

  it('nesting: 127 levels in an ignored field are fine, 200 hit the 128 limit', async () => {
    const deep = (d: number) => `{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":${'['.repeat(d)}${']'.repeat(d)}}}`;
    const ok = await read(stFile(deep(125), new Uint8Array(1)));
    expect(ok.diagnostics.some((d) => d.code === 'SAFETENSORS_UNKNOWN_FIELD')).toBe(true);
    const e = await expectErr(stFile(deep(200), new Uint8Array(1)), 'E_MALFORMED', 'InvalidHeaderDeserialization');
    expect(e.message).toContain('recursion limit');
    await expectErr(stFile('['.repeat(100_000)), 'E_MALFORMED', 'InvalidHeaderDeserialization');
  });

  it('leading and trailing JSON whitespace are accepted (as v0.5.3 does); the info diagnostic says so', async () => {
    const set = await read(stFile(' \t\r\n{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}} \n', new Uint8Array([7, 9]), false));
    expect(Array.from(await set.tensors[0]!.load())).toEqual([7, 9]);
    expect(set.diagnostics.map((d) => d.code)).toContain('SAFETENSORS_LEADING_WHITESPACE');
  });

  it('escapes and unicode in names decode exactly', async () => {
    const text = '{"a\\"b\\\\c\\/\\u00e9\\ud83d\\ude00\\n":{"dtype":"U8","shape":[],"data_offsets":[0,1]}}';
    const set = await read(stFile(text, new Uint8Array([1])));
    expect(set.tensors[0]!.name).toBe('a"b\\c/é😀\n');
  });
});

describe('tensor entries', () => {
  it.each([
    ['missing dtype', { a: { shape: [1], data_offsets: [0, 1] } }],
    ['missing shape', { a: { dtype: 'U8', data_offsets: [0, 1] } }],
    ['missing data_offsets', { a: { dtype: 'U8', shape: [1] } }],
    ['entry not an object', { a: 5 }],
    ['entry as an array', { a: ['U8', [1], [0, 1]] }],
    ['dtype not a string', { a: t(3 as never, [1], [0, 1]) }],
    ['shape not an array', { a: t('U8', 1 as never, [0, 1]) }],
    ['float dimension', '{"a":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}}'],
    ['negative zero', '{"a":{"dtype":"U8","shape":[-0],"data_offsets":[0,1]}}'],
    ['negative dimension', { a: t('U8', [-1], [0, 1]) }],
    ['exponent', { a: t('U8', [1e21], [0, 1]) }],
    ['string dimension', { a: t('U8', ['1'], [0, 1]) }],
    ['three offsets', { a: t('U8', [1], [0, 1, 1]) }],
    ['one offset', { a: t('U8', [1], [0]) }],
    ['metadata not strings', { __metadata__: { a: 1 } }],
    ['metadata an array', { __metadata__: ['a'] }],
  ])('%s → InvalidHeaderDeserialization', async (_n, header) => {
    await expectErr(stFile(header, new Uint8Array(1)), 'E_MALFORMED', 'InvalidHeaderDeserialization');
  });

  it('an offset past u64 is refused while parsing; 2^64-1 itself is parsed and then fails the layout', async () => {
    await expectErr(stFile('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,18446744073709551616]}}'), 'E_MALFORMED', 'InvalidHeaderDeserialization', { tensor: 'a' });
    await expectErr(stFile('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,18446744073709551615]}}'), 'E_TENSOR_SIZE', 'TensorInvalidInfo', { tensor: 'a' });
  });

  it('unknown dtype → E_DTYPE (crate: InvalidHeaderDeserialization)', async () => {
    const e = await expectErr(stFile({ w: t('F12', [1], [0, 1]) }, new Uint8Array(1)), 'E_DTYPE', 'InvalidHeaderDeserialization', { tensor: 'w' });
    expect(e.message).toContain('"F12"');
  });

  it('newer dtypes from the shared table are read (F8_E8M0, C64, F4 packed)', async () => {
    const set = await read(stFile({ c: t('C64', [1], [0, 8]), e: t('F8_E8M0', [2], [8, 10]), f: t('F4', [4], [10, 12]) }, new Uint8Array(12)));
    expect(set.tensors.map((x) => [x.dtype, x.byteLength])).toEqual([['complex64', 8], ['float8e8m0', 2], ['float4e2m1', 2]]);
  });

  it('F4 with an odd element count → MisalignedSlice (E_TENSOR_SIZE)', async () => {
    await expectErr(stFile({ f: t('F4', [3], [0, 2]) }, new Uint8Array(2)), 'E_TENSOR_SIZE', 'MisalignedSlice', { tensor: 'f' });
  });

  it('__metadata__: null is no metadata; "__proto__" stays a plain key', async () => {
    expect((await read(stFile({ __metadata__: null }))).metadata).toBeUndefined();
    const set = await read(stFile('{"__metadata__":{"__proto__":"x","format":"pt"}}'));
    expect(Object.keys(set.metadata!)).toEqual(['__proto__', 'format']);
    expect(set.metadata!['__proto__']).toBe('x');
    expect(Object.getPrototypeOf(set.metadata)).toBe(Object.prototype);
  });
});

describe('data layout', () => {
  const d16 = new Uint8Array(16);
  it('overlapping offsets → InvalidOffset (E_OUT_OF_RANGE), naming the tensor', async () => {
    const e = await expectErr(stFile({ a: t('U8', [8], [0, 8]), b: t('U8', [8], [4, 12]) }, d16.subarray(0, 12)), 'E_OUT_OF_RANGE', 'InvalidOffset', { tensor: 'b' });
    expect(e.message).toContain('overlaps');
  });
  it('two tensors on the same bytes → InvalidOffset', async () => {
    await expectErr(stFile({ a: t('U8', [8], [0, 8]), b: t('U8', [8], [0, 8]) }, d16.subarray(0, 8)), 'E_OUT_OF_RANGE', 'InvalidOffset');
  });
  it('a gap → InvalidOffset', async () => {
    const e = await expectErr(stFile({ a: t('U8', [4], [0, 4]), b: t('U8', [4], [8, 12]) }, d16.subarray(0, 12)), 'E_OUT_OF_RANGE', 'InvalidOffset', { tensor: 'b' });
    expect(e.message).toContain('gap');
  });
  it('a gap at the start → InvalidOffset', async () => {
    await expectErr(stFile({ a: t('U8', [4], [4, 8]) }, d16.subarray(0, 8)), 'E_OUT_OF_RANGE', 'InvalidOffset', { tensor: 'a' });
  });
  it('end before begin → InvalidOffset', async () => {
    await expectErr(stFile({ a: t('U8', [0], [0, 0]), b: t('U8', [4], [0, 4]), c: t('U8', [0], [4, 2]) }, d16.subarray(0, 4)), 'E_OUT_OF_RANGE', 'InvalidOffset', { tensor: 'c' });
  });
  it('offsets past the end of the file → MetadataIncompleteBuffer (E_TRUNCATED)', async () => {
    await expectErr(stFile({ a: t('F32', [4], [0, 16]) }, d16.subarray(0, 12)), 'E_TRUNCATED', 'MetadataIncompleteBuffer');
    await expectErr(stFile({ a: t('U8', [1 << 30], [0, 1 << 30]) }, d16), 'E_TRUNCATED', 'MetadataIncompleteBuffer');
  });
  it('trailing bytes after the last tensor → MetadataIncompleteBuffer (E_MALFORMED)', async () => {
    await expectErr(stFile({ a: t('F32', [3], [0, 12]) }, d16), 'E_MALFORMED', 'MetadataIncompleteBuffer');
    await expectErr(stFile({}, d16), 'E_MALFORMED', 'MetadataIncompleteBuffer');
  });
  it('size disagreeing with dtype × shape → TensorInvalidInfo (E_TENSOR_SIZE)', async () => {
    await expectErr(stFile({ a: t('F32', [2, 2], [0, 12]) }, d16.subarray(0, 12)), 'E_TENSOR_SIZE', 'TensorInvalidInfo', { tensor: 'a' });
  });
  it('shape product overflow → ValidationOverflow, element count and byte size', async () => {
    await expectErr(stFile({ a: t('U8', [4294967296, 4294967296], [0, 16]) }, d16), 'E_OUT_OF_RANGE', 'ValidationOverflow', { tensor: 'a' });
    await expectErr(stFile('{"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,16]}}', d16), 'E_OUT_OF_RANGE', 'ValidationOverflow');
    await expectErr(stFile('{"a":{"dtype":"F4","shape":[9223372036854775807],"data_offsets":[0,16]}}', d16), 'E_OUT_OF_RANGE', 'ValidationOverflow');
  });
  it('a product that only overflows 2^53 is computed exactly, not rounded', async () => {
    // 3 × 3002399751580331 = 9007199254740993 = 2^53 + 1 (not a double) ≠ 16 → TensorInvalidInfo, not a wrong verdict.
    await expectErr(stFile('{"a":{"dtype":"U8","shape":[3,3002399751580331],"data_offsets":[0,16]}}', d16), 'E_TENSOR_SIZE', 'TensorInvalidInfo');
  });
  it('an empty tensor may have huge dims; above 2^53 we refuse (E_OUT_OF_RANGE) instead of rounding', async () => {
    const ok = await read(stFile('{"a":{"dtype":"U8","shape":[0,9007199254740991],"data_offsets":[0,0]}}'));
    expect(ok.tensors[0]!.shape).toEqual([0, 9007199254740991]);
    await expectErr(stFile('{"a":{"dtype":"U8","shape":[0,18446744073709551615],"data_offsets":[0,0]}}'), 'E_OUT_OF_RANGE', undefined, { tensor: 'a' });
  });
  it('zero-sized tensors may share an offset with the next tensor, in any header order', async () => {
    const set = await read(stFile({ b: t('U8', [2], [0, 2]), z: t('F32', [0, 3], [2, 2]), a: t('U8', [2], [2, 4]) }, new Uint8Array([1, 2, 3, 4])));
    expect(set.tensors.map((x) => x.name)).toEqual(['b', 'z', 'a']);
    expect(Array.from(await set.tensors[2]!.load())).toEqual([3, 4]);
    expect((await set.tensors[1]!.load()).byteLength).toBe(0);
  });
});

/** Seeded xorshift32: reproducible mutations. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}

describe('seeded mutations of the corpus', () => {
  const files = [
    ...readdirSync(GENERATED).filter((f) => f.endsWith('.safetensors')).map((f) => resolve(GENERATED, f)),
    ...readdirSync(VECTORS).map((f) => resolve(VECTORS, f)),
  ].map((p) => new Uint8Array(readFileSync(p)));
  const silero = new Uint8Array(readFileSync(SILERO));
  const interesting = '{}[]",:0123456789-.eE \\u'.split('').map((c) => c.charCodeAt(0)).concat([0, 0xff, 0xc3, 0xed, 0x80]);

  function mutate(src: Uint8Array, r: () => number): Uint8Array {
    const b = src.slice();
    const n = b.length >= 8 ? new DataView(b.buffer).getBigUint64(0, true) : 0n;
    const headerEnd = b.length >= 8 ? Math.min(b.length, 8 + Number(n > 1n << 40n ? 0n : n)) : b.length;
    const pick = (hi: number) => Math.floor(r() * Math.max(1, hi));
    const kind = Math.floor(r() * 7);
    switch (kind) {
      case 0: { // flip bytes, mostly inside the header
        const k = 1 + pick(4);
        for (let i = 0; i < k; i++) b[pick(r() < 0.8 ? headerEnd : b.length)] = pick(256);
        return b;
      }
      case 1: // truncate
        return b.subarray(0, pick(b.length));
      case 2: { // JSON-ish byte at a header position
        b[8 + pick(headerEnd - 8)] = interesting[pick(interesting.length)]!;
        return b;
      }
      case 3: { // insert bytes in the header without fixing the length
        const at = Math.min(b.length, 8 + pick(headerEnd - 8));
        const ins = new Uint8Array(1 + pick(8)).map(() => interesting[pick(interesting.length)]!);
        const out = new Uint8Array(b.length + ins.length);
        out.set(b.subarray(0, at));
        out.set(ins, at);
        out.set(b.subarray(at), at + ins.length);
        return out;
      }
      case 4: { // rewrite the length prefix
        const choices = [0n, 1n, 7n, 8n, n - 1n, n + 1n, n + 8n, 1n << 63n, 100_000_000n, BigInt(pick(b.length + 16))];
        if (b.length >= 8) new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, choices[pick(choices.length)]!), true);
        return b;
      }
      case 5: { // replace a digit run (an offset or dim) with a big or odd number
        const text = new TextDecoder('latin1').decode(b.subarray(8, headerEnd));
        const runs = [...text.matchAll(/[0-9]+/g)];
        if (!runs.length) return b;
        const m = runs[pick(runs.length)]!;
        const nums = ['0', '1', '18446744073709551615', '18446744073709551616', '9007199254740993', '4294967296', '-1', '1.5', '1e3', String(pick(5000))];
        const rep = new TextEncoder().encode(nums[pick(nums.length)]!);
        const at = 8 + m.index!;
        const out = new Uint8Array(b.length - m[0].length + rep.length);
        out.set(b.subarray(0, at));
        out.set(rep, at);
        out.set(b.subarray(at + m[0].length), at + rep.length);
        const delta = rep.length - m[0].length;
        if (r() < 0.7 && out.length >= 8) new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, n + BigInt(delta)), true);
        return out;
      }
      default: { // append or drop data bytes
        if (r() < 0.5) return b.subarray(0, Math.max(0, b.length - 1 - pick(8)));
        const out = new Uint8Array(b.length + 1 + pick(8));
        out.set(b);
        return out;
      }
    }
  }

  it('2,400 mutations: success (every tensor loads) or ModelsmithError, nothing else', async () => {
    const r = rng(0x5afe);
    let ok = 0;
    let refused = 0;
    const codes = new Set<string>();
    for (let i = 0; i < 2400; i++) {
      const base = i % 40 === 0 ? silero : files[i % files.length]!;
      const b = mutate(base, r);
      try {
        const set = await read(b);
        for (const x of set.tensors) expect((await x.load()).byteLength).toBe(x.byteLength);
        ok++;
      } catch (e) {
        if (!isModelsmithError(e)) throw new Error(`mutation ${i} escaped with ${String(e)}`, { cause: e });
        codes.add(e.code);
        refused++;
      }
    }
    expect(ok + refused).toBe(2400);
    // The mutations must actually reach both outcomes and several distinct checks.
    expect(ok).toBeGreaterThan(50);
    expect(refused).toBeGreaterThan(1000);
    expect(codes.size).toBeGreaterThanOrEqual(5);
  });
});
