/**
 * Shared test utilities for kernel tests: a seeded RNG, float32 inputs salted with special values,
 * the standard length set and a synchronous bridge to the system Python (numpy cross-checks).
 */
import { execFileSync } from 'node:child_process';

/**
 * Seeded PRNG returning uniform floats in [0, 1). A 32-bit xorshift step followed by a
 * multiply-xorshift finaliser: cheap, deterministic across runtimes, good enough for test data.
 */
export function rng(seed: number): () => number {
  let s = (seed >>> 0) || 0x9e3779b9;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    let z = Math.imul(s ^ (s >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return ((z ^ (z >>> 16)) >>> 0) / 4294967296;
  };
}

/** Bit patterns of the values every float kernel must handle. */
export const SPECIAL_BITS: readonly number[] = [
  0x7fc00000, // NaN (quiet)
  0xffc00000, // -NaN
  0x7fa00001, // NaN with a payload (signalling pattern)
  0x7f800000, // +Inf
  0xff800000, // -Inf
  0x00000000, // +0
  0x80000000, // -0
  0x00000001, // smallest subnormal
  0x80000001, // -smallest subnormal
  0x007fffff, // largest subnormal
  0x00800000, // FLT_MIN
  0x7f7fffff, // FLT_MAX
  0xff7fffff, // -FLT_MAX
];

/** Values sitting exactly on rounding ties for scale 1 (and any power-of-two scale, scaled). */
export const TIE_VALUES: readonly number[] = [
  0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 3.5, -3.5, 6.5, -7.5, 7.5, -8.5, 14.5, 15.5,
  126.5, 127.5, -127.5, -128.5, 128.5, 254.5, 255.5, -0.49999997, 0.50000006, 8388607.5, -8388607.5,
];

/**
 * `n` random float32 values spread over many magnitudes (uniform small values, values of random
 * exponent, integers and ties). With `withSpecials`, the special values and ties are placed first
 * (when n allows) and then sprinkled at random positions (~3% of elements).
 */
export function randomF32(n: number, seed: number, withSpecials = false): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  const bits = new Uint32Array(out.buffer);
  const specials: number[] = [];
  for (const b of SPECIAL_BITS) specials.push(b);
  for (const t of TIE_VALUES) specials.push(f32bits(t));
  for (let i = 0; i < n; i++) {
    const kind = r();
    if (kind < 0.5) out[i] = (r() * 2 - 1) * 4;
    else if (kind < 0.8) out[i] = (r() * 2 - 1) * 300;
    else if (kind < 0.9) out[i] = (r() < 0.5 ? -1 : 1) * Math.pow(2, r() * 60 - 30) * (1 + r());
    else out[i] = Math.round((r() * 2 - 1) * 300) + (r() < 0.5 ? 0.5 : 0);
  }
  if (withSpecials) {
    for (let i = 0; i < specials.length && i < n; i++) bits[i] = specials[i]!;
    for (let i = specials.length; i < n; i++) {
      if (r() < 0.03) bits[i] = specials[Math.floor(r() * specials.length)]!;
    }
  }
  return out;
}

function f32bits(x: number): number {
  const f = new Float32Array([x]);
  return new Uint32Array(f.buffer)[0]!;
}

/** Standard length set: empty, tiny, around SIMD widths, around 4 KiB, and large. */
export const LENGTHS: number[] = [0, 1, 3, 4, 5, 17, 4095, 4097, 65537, 300001];

export const FLAVORS = ['simd', 'scalar'] as const;

/**
 * Run `/usr/bin/python3` synchronously. `script` is a path to a .py file, or inline source when it
 * contains a newline. `input` is written to stdin; stdout is returned raw. Throws with stderr on failure.
 */
export function runPython(script: string, args: string[], input?: Uint8Array): Uint8Array {
  const argv = script.includes('\n') ? ['-c', script, ...args] : [script, ...args];
  const out = execFileSync('/usr/bin/python3', argv, {
    input: input ?? new Uint8Array(0),
    maxBuffer: 1 << 30,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

const scratchF = new Float32Array(1);
const scratchU = new Uint32Array(scratchF.buffer);
/** float32 bit pattern with every NaN mapped to one value (wasm does not fix NaN payloads). */
export function f32Bits(x: number): number {
  if (x !== x) return 0x7fc00000;
  scratchF[0] = x;
  return scratchU[0]!;
}
