import { beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { type Kernels, initKernels } from '../../src/kernels/loader.js';
import {
  castBf16ToF32, castF16ToF32, castF32ToBf16, castF32ToF16, castF64ToF32, castI32ToI64, castI64ToI32,
} from '../../src/kernels/cast.js';
import {
  bf16ToF32Ref, f16ToF32Ref, f32ToBf16Ref, f32ToF16Ref, f64ToF32Ref, i32ToI64Ref, i64ToI32Ref,
} from '../../src/kernels/reference/cast.js';
import { ModelsmithError } from '../../src/core/errors.js';
import { FLAVORS, LENGTHS, randomF32, rng, runPython } from './helpers.js';

const GEN = fileURLToPath(new URL('./gen/cast_expected.py', import.meta.url));

type Arr = Uint16Array | Int32Array | Float32Array | Float64Array | BigInt64Array;
type Opts = { kernels?: Kernels; windowBytes?: number };

/** Every implementation a cast must agree on: the TS twin, both builds, both builds windowed. */
const IMPLS = ['reference', ...FLAVORS, ...FLAVORS.map((f) => `${f}-windowed` as const)] as const;
type Impl = (typeof IMPLS)[number];

const K: Partial<Record<'simd' | 'scalar', Kernels>> = {};
beforeAll(async () => {
  for (const f of FLAVORS) K[f] = await initKernels({ flavor: f });
});

function opts(impl: Exclude<Impl, 'reference'>): Opts {
  const [flavor, windowed] = impl.split('-') as ['simd' | 'scalar', string | undefined];
  // 1000 bytes: windows of a few dozen to ~100 elements, not a multiple of the vector width.
  return windowed ? { kernels: K[flavor]!, windowBytes: 1000 } : { kernels: K[flavor]! };
}

function u8(a: Arr): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Compare raw bits; report the first few differing element indices. */
function expectSameBits(actual: Arr, expected: Arr, what: string): void {
  expect(actual.length, what).toBe(expected.length);
  const a = u8(actual);
  const e = u8(expected);
  const es = actual.BYTES_PER_ELEMENT;
  const bad: number[] = [];
  for (let i = 0; i < a.length && bad.length < 5; i++) {
    if (a[i] !== e[i]) { bad.push(Math.floor(i / es)); i = (Math.floor(i / es) + 1) * es - 1; }
  }
  expect(bad, what).toEqual([]);
}

function randomU16(n: number, seed: number): Uint16Array {
  const r = rng(seed);
  return Uint16Array.from({ length: n }, () => Math.floor(r() * 65536));
}

function randomBits32(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const u = Uint32Array.from({ length: n }, () => Math.floor(r() * 2 ** 32));
  return new Float32Array(u.buffer);
}

function randomF64(n: number, seed: number): Float64Array {
  // float32 values (exact), float32 midpoints and near-midpoints, wide-range doubles and raw bit
  // patterns (NaNs with payloads, values beyond the float32 range, float32-subnormal range).
  const r = rng(seed);
  const f = randomF32(n, seed + 1, true);
  const out = new Float64Array(n);
  const w = new Uint32Array(out.buffer);
  for (let i = 0; i < n; i++) {
    const kind = r();
    const x = f[i]!;
    if (kind < 0.3) out[i] = x;
    else if (kind < 0.5) out[i] = x * (1 + 2 ** -24); // exact midpoint for normal powers of two, else nearby
    else if (kind < 0.7) out[i] = (r() - 0.5) * 2 ** Math.floor(r() * 300 - 150);
    else { w[2 * i] = Math.floor(r() * 2 ** 32); w[2 * i + 1] = Math.floor(r() * 2 ** 32); }
  }
  return out;
}

function randomI64(n: number, seed: number): BigInt64Array {
  const r = rng(seed);
  const edge = [0n, 1n, -1n, 2147483647n, -2147483648n];
  return BigInt64Array.from({ length: n }, (_, i) =>
    i < edge.length ? edge[i]! : BigInt(Math.floor(r() * 2 ** 32) - 2 ** 31));
}

function randomI32(n: number, seed: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * 2 ** 32) | 0);
}

interface CastCase<I extends Arr, O extends Arr> {
  name: string;
  input: (n: number, seed: number) => I;
  ref: (x: I) => O;
  wasm: (x: I, o: Opts) => O;
}

function castCase<I extends Arr, O extends Arr>(c: CastCase<I, O>): CastCase<Arr, Arr> {
  return c as unknown as CastCase<Arr, Arr>;
}

const CASES: CastCase<Arr, Arr>[] = [
  castCase({ name: 'f32->f16', input: (n, s) => randomF32(n, s, true), ref: (x: Float32Array) => f32ToF16Ref(x), wasm: (x: Float32Array, o) => castF32ToF16(x, o) }),
  castCase({ name: 'f32->f16 (bit patterns)', input: randomBits32, ref: (x: Float32Array) => f32ToF16Ref(x), wasm: (x: Float32Array, o) => castF32ToF16(x, o) }),
  castCase({ name: 'f32->f16 clamped', input: randomBits32, ref: (x: Float32Array) => f32ToF16Ref(x, true), wasm: (x: Float32Array, o) => castF32ToF16(x, { ...o, clampFinite: true }) }),
  castCase({ name: 'f16->f32', input: randomU16, ref: f16ToF32Ref, wasm: castF16ToF32 }),
  castCase({ name: 'f32->bf16', input: (n, s) => randomF32(n, s, true), ref: f32ToBf16Ref, wasm: castF32ToBf16 }),
  castCase({ name: 'f32->bf16 (bit patterns)', input: randomBits32, ref: f32ToBf16Ref, wasm: castF32ToBf16 }),
  castCase({ name: 'bf16->f32', input: randomU16, ref: bf16ToF32Ref, wasm: castBf16ToF32 }),
  castCase({ name: 'f64->f32', input: randomF64, ref: f64ToF32Ref, wasm: castF64ToF32 }),
  castCase({ name: 'i64->i32', input: randomI64, ref: i64ToI32Ref, wasm: castI64ToI32 }),
  castCase({ name: 'i32->i64', input: randomI32, ref: i32ToI64Ref, wasm: castI32ToI64 }),
];

describe('cast conformance: reference, SIMD, scalar (plain and windowed) bit-identical', () => {
  for (const c of CASES) {
    it(c.name, () => {
      for (const n of LENGTHS) {
        const x = c.input(n, 1000 + n);
        const expected = c.ref(x);
        expect(expected.length).toBe(n);
        for (const impl of IMPLS) {
          if (impl === 'reference') continue;
          expectSameBits(c.wasm(x, opts(impl)), expected, `${c.name} n=${n} ${impl}`);
        }
      }
    });
  }

  it('inputs are not modified and subarray offsets are honoured', () => {
    const base = randomF32(1000, 7, true);
    const view = base.subarray(3, 900);
    const before = new Uint8Array(u8(base));
    for (const impl of IMPLS) {
      if (impl === 'reference') continue;
      expectSameBits(castF32ToF16(view, opts(impl)), f32ToF16Ref(view), impl);
    }
    expect(u8(base)).toEqual(before);
  });
});

// ---- numpy / torch -------------------------------------------------------------------------

const isNaN32 = (b: number): boolean => (b & 0x7fffffff) > 0x7f800000;
const isNaN16 = (h: number): boolean => (h & 0x7fff) > 0x7c00;
const bits32 = (f: Float32Array): Uint32Array => new Uint32Array(f.buffer, f.byteOffset, f.length);

/** float16 value of bits h as a JS number (finite h only). */
function f16Value(h: number): number {
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  const v = e === 0 ? m * 2 ** -24 : (1024 + m) * 2 ** (e - 25);
  return h & 0x8000 ? -v : v;
}

/**
 * ≥ 1M float32 inputs aimed at float16 / bfloat16 rounding: uniform bit patterns (all NaN kinds,
 * subnormals), realistic values with specials, exact float16 midpoints and their float32
 * neighbours (ties), the float16 subnormal range and the overflow edge around 65504..65520.
 */
function roundingInputs(): Float32Array {
  const Q = 1 << 18;
  const r = rng(4242);
  const out = new Float32Array(5 * Q);
  const u = bits32(out);
  out.set(randomF32(Q, 99, true), 0);
  out.set(randomBits32(Q, 98), Q);
  for (let i = 0; i < Q; i++) {
    const h = Math.floor(r() * 0x7bff); // a finite float16 below the maximum
    const mid = (f16Value(h) + f16Value(h + 1)) / 2; // exact in float32
    const sign = r() < 0.5 ? -1 : 1;
    out[2 * Q + i] = sign * mid;
    const d = Math.floor(r() * 3) - 1; // the midpoint or one float32 ulp either side
    u[2 * Q + i] = (u[2 * Q + i]! + d) >>> 0;
    // bfloat16 midpoints: low 16 bits 0x8000 (exact tie), or neighbours.
    u[3 * Q + i] = ((Math.floor(r() * 2 ** 16) << 16) | (0x8000 + d)) >>> 0;
  }
  for (let i = 0; i < Q; i++) {
    const edge = r() < 0.5
      ? 0x33000000 - 0x10000 + Math.floor(r() * (0x38800000 - 0x33000000 + 0x20000)) // float16 subnormal range
      : 0x477fe000 - 0x4000 + Math.floor(r() * 0x10000); // around 65504 / 65520
    u[4 * Q + i] = (r() < 0.5 ? edge | 0x80000000 : edge) >>> 0;
  }
  return out;
}

function pythonCast(mode: string, input: Arr): Uint8Array {
  const out = runPython(GEN, [mode], u8(input));
  return out.slice(); // own, aligned copy
}

describe('float16 matches numpy astype bit for bit', () => {
  it('f16->f32: all 65536 float16 bit patterns', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const np = new Uint32Array(pythonCast('f16-f32', all).buffer);
    // numpy widens NaN payloads unchanged, signalling NaNs included; ours always sets the quiet
    // bit (same sign, same payload). For quiet NaNs and all non-NaNs that is exactly numpy's bits.
    const expected = new Float32Array(np.map((b) => (isNaN32(b) ? (b | 0x400000) >>> 0 : b)).buffer);
    expectSameBits(f16ToF32Ref(all), expected, 'reference');
    for (const f of FLAVORS) expectSameBits(castF16ToF32(all, { kernels: K[f]! }), expected, f);
  });

  it('f32->f16: ≥ 1M values incl. specials, subnormals, ties, overflow (and the clamped variant)', () => {
    const x = roundingInputs();
    expect(x.length).toBeGreaterThanOrEqual(1_000_000);
    const np = new Uint16Array(pythonCast('f32-f16', x).buffer);
    const xb = bits32(x);
    const check = (ours: Uint16Array, clamp: boolean, what: string): void => {
      const bad: string[] = [];
      for (let i = 0; i < x.length && bad.length < 5; i++) {
        const b = xb[i]!;
        let want = np[i]!;
        if (clamp && (want & 0x7fff) === 0x7c00 && (b & 0x7fffffff) < 0x7f800000) want = (want & 0x8000) | 0x7bff;
        let ok = ours[i] === want;
        if (isNaN32(b) && (b & 0x400000) === 0) {
          // Signalling NaN input: numpy keeps it signalling (0x7c00 + top payload bits, or 0x7c01
          // when those are zero); ours is the quiet NaN. Compare NaN-ness and sign only.
          ok = isNaN16(ours[i]!) && isNaN16(want) && (ours[i]! & 0x8000) === (want & 0x8000) && (ours[i]! & 0x200) !== 0;
        }
        if (!ok) bad.push(`#${i} in ${b.toString(16)} ours ${ours[i]!.toString(16)} numpy ${want.toString(16)}`);
      }
      expect(bad, what).toEqual([]);
    };
    check(f32ToF16Ref(x), false, 'reference');
    check(f32ToF16Ref(x, true), true, 'reference clamped');
    for (const f of FLAVORS) {
      check(castF32ToF16(x, { kernels: K[f]! }), false, f);
      check(castF32ToF16(x, { kernels: K[f]!, clampFinite: true }), true, `${f} clamped`);
    }
  });

  it('f64->f32 matches numpy astype(np.float32)', () => {
    const x = randomF64(200_000, 5);
    const np = new Float32Array(pythonCast('f64-f32', x).buffer);
    expectSameBits(f64ToF32Ref(x), np, 'reference');
    for (const f of FLAVORS) expectSameBits(castF64ToF32(x, { kernels: K[f]! }), np, f);
  });
});

describe('bfloat16 matches torch .to() bit for bit', () => {
  it('f32->bf16: ≥ 1M values incl. specials and ties', () => {
    const x = roundingInputs();
    const th = new Uint16Array(pythonCast('f32-bf16', x).buffer);
    const xb = bits32(x);
    const check = (ours: Uint16Array, what: string): void => {
      const bad: string[] = [];
      for (let i = 0; i < x.length && bad.length < 5; i++) {
        // torch writes a fixed pattern for every NaN (0x7fc0 scalar, 0xffff vectorised), so for
        // NaN inputs only NaN-ness is compared; ours keeps sign and top payload bits, quieted.
        const ok = isNaN32(xb[i]!)
          ? (ours[i]! & 0x7fff) > 0x7f80 && (th[i]! & 0x7fff) > 0x7f80
          : ours[i] === th[i];
        if (!ok) bad.push(`#${i} in ${xb[i]!.toString(16)} ours ${ours[i]!.toString(16)} torch ${th[i]!.toString(16)}`);
      }
      expect(bad, what).toEqual([]);
    };
    check(f32ToBf16Ref(x), 'reference');
    for (const f of FLAVORS) check(castF32ToBf16(x, { kernels: K[f]! }), f);
  });

  it('bf16->f32: all 65536 bfloat16 bit patterns', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const th = new Uint32Array(pythonCast('bf16-f32', all).buffer);
    // torch widens NaN payloads unchanged; ours sets the quiet bit (see the float16 case).
    const expected = new Float32Array(th.map((b) => (isNaN32(b) ? (b | 0x400000) >>> 0 : b)).buffer);
    expectSameBits(bf16ToF32Ref(all), expected, 'reference');
    for (const f of FLAVORS) expectSameBits(castBf16ToF32(all, { kernels: K[f]! }), expected, f);
  });
});

describe('int64 -> int32 range check', () => {
  const cases: [string, bigint][] = [['2^31', 2n ** 31n], ['-2^31 - 1', -(2n ** 31n) - 1n], ['2^63 - 1', 2n ** 63n - 1n], ['-2^63', -(2n ** 63n)], ['2^32', 2n ** 32n]];
  for (const [label, v] of cases) {
    it(`value ${label} throws E_RANGE_CHECK naming the first bad index, in every implementation`, () => {
      const n = 5000;
      const x = randomI64(n, 3);
      const at = 4321; // beyond the first windows when windowed
      x[at] = v;
      x[at + 7] = v; // a later bad element must not be the one reported
      const run: [string, () => unknown][] = [['reference', () => i64ToI32Ref(x)]];
      for (const impl of IMPLS) if (impl !== 'reference') run.push([impl, () => castI64ToI32(x, opts(impl))]);
      for (const [name, fn] of run) {
        let err: unknown;
        try { fn(); } catch (e) { err = e; }
        expect(err, name).toBeInstanceOf(ModelsmithError);
        expect((err as ModelsmithError).code, name).toBe('E_RANGE_CHECK');
        expect((err as ModelsmithError).message, name).toContain(`element ${at} `);
      }
    });
  }

  it('accepts exactly the int32 range', () => {
    const x = BigInt64Array.from([-(2n ** 31n), 2n ** 31n - 1n, 0n, -1n]);
    for (const f of FLAVORS) expect(Array.from(castI64ToI32(x, { kernels: K[f]! }))).toEqual([-(2 ** 31), 2 ** 31 - 1, 0, -1]);
  });
});

describe('cast spot checks', () => {
  it('float16 edge values', () => {
    const x = Float32Array.from([65504, 65519.996, 65520, -65520, 1e6, Infinity, -Infinity, 2 ** -24, 2 ** -25, 3 * 2 ** -25, -0, 0.1, 5 * 2 ** -25]);
    const want = [0x7bff, 0x7bff, 0x7c00, 0xfc00, 0x7c00, 0x7c00, 0xfc00, 0x0001, 0x0000, 0x0002, 0x8000, 0x2e66, 0x0002];
    const clamped = [0x7bff, 0x7bff, 0x7bff, 0xfbff, 0x7bff, 0x7c00, 0xfc00, 0x0001, 0x0000, 0x0002, 0x8000, 0x2e66, 0x0002];
    for (const f of FLAVORS) {
      expect(Array.from(castF32ToF16(x, { kernels: K[f]! }))).toEqual(want);
      expect(Array.from(castF32ToF16(x, { kernels: K[f]!, clampFinite: true }))).toEqual(clamped);
    }
    expect(Array.from(f32ToF16Ref(x))).toEqual(want);
    expect(Array.from(f32ToF16Ref(x, true))).toEqual(clamped);
  });

  it('NaN stays NaN, quiet, with its sign', () => {
    const x = new Float32Array(new Uint32Array([0x7f800001, 0xff800001, 0x7fc00000, 0xffffffff]).buffer);
    for (const f of FLAVORS) {
      expect(Array.from(castF32ToF16(x, { kernels: K[f]! }))).toEqual([0x7e00, 0xfe00, 0x7e00, 0xffff]);
      expect(Array.from(castF32ToBf16(x, { kernels: K[f]! }))).toEqual([0x7fc0, 0xffc0, 0x7fc0, 0xffff]);
    }
  });
});
