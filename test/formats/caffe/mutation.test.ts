/**
 * Hostile-input robustness: seeded random mutations of the corpus Caffe files, text and binary, go
 * through the whole pipeline a user would run (parse/decode → summary → weights → conversion with the
 * paired file). Every outcome must be success or a ModelsmithError with a stable code — never another
 * exception (RangeError, TypeError…), and every input must finish quickly (no hang, no huge
 * allocation).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { caffeToOnnx } from '../../../src/convert/caffe-onnx/index.js';
import { ErrorCodes, ModelsmithError } from '../../../src/core/errors.js';
import { caffeWeights, decodeCaffemodel, parseCaffePrototxt, summarizeCaffe, type NetParameter } from '../../../src/formats/caffe/index.js';
import { CORPUS_CAFFE, PAIRS, listCaffeFiles, loadCaffemodel, loadPrototxt } from './helpers.js';

const CODES = new Set<string>(Object.values(ErrorCodes));

function rng(seed: number): () => number {
  let s = (seed >>> 0) || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return (s >>> 0) / 4294967296;
  };
}

function mutateBytes(src: Uint8Array, r: () => number): Uint8Array {
  const out = Uint8Array.from(src);
  const at = () => Math.floor(r() * out.length);
  const kind = Math.floor(r() * 7);
  switch (kind) {
    case 0: // flip bits in a few bytes
      for (let i = 0, n = 1 + Math.floor(r() * 4); i < n; i++) out[at()] ^= 1 << Math.floor(r() * 8);
      return out;
    case 1: // random bytes
      for (let i = 0, n = 1 + Math.floor(r() * 8); i < n; i++) out[at()] = Math.floor(r() * 256);
      return out;
    case 2: // truncate
      return out.subarray(0, at());
    case 3: { // varint-ish runs of 0xff (huge lengths / counts)
      const p = at();
      for (let i = 0; i < 5 && p + i < out.length; i++) out[p + i] = i === 4 ? 0x0f : 0xff;
      return out;
    }
    case 4: { // insert random bytes
      const p = at();
      const ins = Uint8Array.from({ length: 1 + Math.floor(r() * 6) }, () => Math.floor(r() * 256));
      const res = new Uint8Array(out.length + ins.length);
      res.set(out.subarray(0, p));
      res.set(ins, p);
      res.set(out.subarray(p), p + ins.length);
      return res;
    }
    case 5: { // delete a span
      const p = at();
      const n = 1 + Math.floor(r() * 16);
      const res = new Uint8Array(Math.max(0, out.length - n));
      res.set(out.subarray(0, p));
      res.set(out.subarray(Math.min(out.length, p + n)).subarray(0, res.length - p), p);
      return res;
    }
    default: { // duplicate a span (repeated records)
      const p = at();
      const span = out.subarray(p, Math.min(out.length, p + 1 + Math.floor(r() * 64)));
      const res = new Uint8Array(out.length + span.length);
      res.set(out.subarray(0, p + span.length));
      res.set(span, p + span.length);
      res.set(out.subarray(p + span.length), p + 2 * span.length);
      return res;
    }
  }
}

const TEXT_PIECES = ['{', '}', '[', ']', '<', '>', ':', ',', ';', '"', "'", '#', '\\', '-', '0x', '.', 'e', '\n', ' ', '0', '-1', '99999999999', '1e40', 'nan', 'inf', 'layer {', 'dim: 0', 'dim: -1', 'top: "x"', 'bottom: "data"', 'num_output: 0', 'kernel_size: 0', 'stride: 0', 'group: 3', 'axis: -7', 'pad: 9', 'type: "Scale"', 'type: "Reshape"', '\\x', '\\u12', 'pool: 7', 'phase: 3', 'operation: 9', 'type: 999', 'norm_region: 1'];

function mutateText(src: string, r: () => number): string {
  const at = () => Math.floor(r() * (src.length + 1));
  const pick = () => TEXT_PIECES[Math.floor(r() * TEXT_PIECES.length)]!;
  const kind = Math.floor(r() * 6);
  switch (kind) {
    case 0: { const p = at(); return src.slice(0, p) + pick() + src.slice(p); }
    case 1: { const p = at(); return src.slice(0, p) + src.slice(p + 1 + Math.floor(r() * 8)); }
    case 2: return src.slice(0, at());
    case 3: { // replace a number
      const nums = [...src.matchAll(/-?\d+(\.\d+)?/g)];
      if (nums.length === 0) return src + pick();
      const m = nums[Math.floor(r() * nums.length)]!;
      const repl = ['0', '-1', '1', '65536', '4294967296', '-2147483649', '3.5', '1e9'][Math.floor(r() * 8)]!;
      return src.slice(0, m.index) + repl + src.slice(m.index! + m[0].length);
    }
    case 4: { // duplicate or drop a line
      const lines = src.split('\n');
      const i = Math.floor(r() * lines.length);
      if (r() < 0.5) lines.splice(i, 0, lines[i]!);
      else lines.splice(i, 1);
      return lines.join('\n');
    }
    default: { // swap two words
      const words = src.split(/(\s+)/);
      const i = Math.floor(r() * words.length);
      const j = Math.floor(r() * words.length);
      [words[i], words[j]] = [words[j]!, words[i]!];
      return words.join('');
    }
  }
}

interface Tally { ok: number; errors: Map<string, number>; total: number; slowest: number }

/** Run `f`; a ModelsmithError with a known code counts as a handled error, anything else fails. */
async function outcome(tally: Tally, label: string, f: () => Promise<void> | void): Promise<void> {
  const t0 = performance.now();
  try {
    await f();
    tally.ok++;
  } catch (e) {
    if (!(e instanceof ModelsmithError) || !CODES.has(e.code)) {
      throw new Error(`${label}: escaped ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`, { cause: e });
    }
    tally.errors.set(e.code, (tally.errors.get(e.code) ?? 0) + 1);
  } finally {
    tally.total++;
    tally.slowest = Math.max(tally.slowest, performance.now() - t0);
  }
}

async function exercise(net: NetParameter, deploy: NetParameter | undefined, weights: NetParameter | undefined): Promise<void> {
  summarizeCaffe(net);
  const w = caffeWeights(net);
  for (const t of w.tensors.slice(0, 4)) expect((await t.load()).byteLength).toBe(t.byteLength);
  if (deploy) caffeToOnnx(deploy, weights);
}

const newTally = (): Tally => ({ ok: 0, errors: new Map(), total: 0, slowest: 0 });

describe('seeded mutations of corpus Caffe files', () => {
  it('1,000 binary caffemodel mutations end in success or a ModelsmithError', async () => {
    const plan: [string, number][] = [['mtcnn-jfda/det1.caffemodel', 760], ['mtcnn-jfda/det4.caffemodel', 200], ['ultra-light-face/slim-320.caffemodel', 25], ['lenet-v1-2014/lenet_iter_10000', 15]];
    const tally = newTally();
    for (const [file, count] of plan) {
      const bytes = readFileSync(join(CORPUS_CAFFE, file));
      const pair = PAIRS.find((p) => p.weights === file)!;
      const deploy = loadPrototxt(pair.prototxt);
      const r = rng(file.length * 7919 + count);
      for (let i = 0; i < count; i++) {
        const m = mutateBytes(bytes, r);
        await outcome(tally, `${file} #${i}`, async () => {
          const net = decodeCaffemodel(m, { path: file });
          await exercise(net, deploy, net);
        });
      }
    }
    expect(tally.total).toBe(1000);
    // The mutations must reach both outcomes: the decoder's refusals and successful decodes.
    expect(tally.ok).toBeGreaterThan(50);
    for (const code of [ErrorCodes.MALFORMED, ErrorCodes.TRUNCATED]) expect(tally.errors.get(code), code).toBeGreaterThan(0);
    expect(tally.slowest).toBeLessThan(5000);
  });

  it('1,000 prototxt mutations end in success or a ModelsmithError', async () => {
    const files = listCaffeFiles((n) => n.endsWith('.prototxt') && !n.includes('solver'));
    const pairWeights = new Map(PAIRS.map((p) => [join(CORPUS_CAFFE, p.prototxt), loadCaffemodel(p.weights)]));
    const tally = newTally();
    const r = rng(20261128);
    for (let i = 0; i < 1000; i++) {
      // Bias towards the deploy files of the pairs, whose mutations reach the converter with real weights.
      const file = r() < 0.5 ? [...pairWeights.keys()][i % pairWeights.size]! : files[Math.floor(r() * files.length)]!;
      const text = mutateText(readFileSync(file, 'utf8'), r);
      await outcome(tally, `${file} #${i}`, async () => {
        const net = parseCaffePrototxt(text, { path: file });
        await exercise(net, net, pairWeights.get(file));
      });
    }
    expect(tally.total).toBe(1000);
    expect(tally.ok).toBeGreaterThan(50);
    // Parser errors, refusals of the converter and shape checks are all reached.
    for (const code of [ErrorCodes.MALFORMED, ErrorCodes.UNSUPPORTED, ErrorCodes.OUT_OF_RANGE]) expect(tally.errors.get(code), code).toBeGreaterThan(0);
    expect(tally.slowest).toBeLessThan(5000);
  });
});
