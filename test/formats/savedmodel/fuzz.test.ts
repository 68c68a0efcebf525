/**
 * Seeded mutation fuzzing of real TF files: every mutated SavedModel, bundle index, data shard and
 * GraphDef must end in a result or a ModelsmithError — never another exception, never a hang.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isModelsmithError, ModelsmithError } from '../../../src/core/errors.js';
import { MemorySource, type SiblingResolver } from '../../../src/io/source.js';
import { graphConstants, readGraphDef, readSavedModel, summarizeGraphDef, summarizeSavedModel } from '../../../src/formats/savedmodel/index.js';
import { create } from '@bufbuild/protobuf';
import { GraphDefSchema } from '../../../src/formats/savedmodel/gen/tensorflow/graph_pb.js';
import { crc32c, maskCrc } from '../../../src/formats/savedmodel/bundle/crc32c.js';
import { rng } from '../../kernels/helpers.js';
import { CORPUS, savedModelDirs, tableBlocks } from './helpers.js';

function filesOf(dir: string): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out.set(relative(dir, p), new Uint8Array(readFileSync(p)));
    }
  };
  walk(dir);
  return out;
}

function resolver(files: Map<string, Uint8Array>, override: [string, Uint8Array]): SiblingResolver {
  return async (rel) => {
    const b = rel === override[0] ? override[1] : files.get(rel);
    if (!b) throw new ModelsmithError('E_EXTERNAL_DATA', `missing ${rel}`);
    return new MemorySource(b, rel);
  };
}

type Rand = () => number;

function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
const int = (r: Rand, n: number) => Math.floor(r() * n);

/** One random structural mutation, biased towards what breaks parsers: lengths, varints, truncation. */
function mutate(src: Uint8Array, r: Rand): { bytes: Uint8Array; what: string } {
  const b = src.slice();
  const at = int(r, b.length);
  switch (int(r, 8)) {
    case 0: {
      const n = 1 + int(r, 4);
      for (let i = 0; i < n; i++) b[int(r, b.length)]! ^= 1 << int(r, 8);
      return { bytes: b, what: `flip ${n} bits` };
    }
    case 1:
      b[at] = [0x00, 0xff, 0x7f, 0x80][int(r, 4)]!;
      return { bytes: b, what: `set byte ${at}` };
    case 2:
      return { bytes: b.subarray(0, at), what: `truncate at ${at}` };
    case 3: {
      const ins = Uint8Array.from({ length: 1 + int(r, 8) }, () => int(r, 256));
      return { bytes: cat(b.subarray(0, at), ins, b.subarray(at)), what: `insert ${ins.length} at ${at}` };
    }
    case 4: {
      const n = 1 + int(r, 16);
      return { bytes: cat(b.subarray(0, at), b.subarray(at + n)), what: `delete ${n} at ${at}` };
    }
    case 5: {
      // A maximal varint: turns lengths/counts into huge values.
      b.set([0xff, 0xff, 0xff, 0xff, 0x0f].slice(0, b.length - at), at);
      return { bytes: b, what: `big varint at ${at}` };
    }
    case 6: {
      const n = 1 + int(r, 64);
      const from = int(r, b.length);
      const chunk = b.slice(from, from + n);
      return { bytes: cat(b.subarray(0, at), chunk, b.subarray(at)), what: `duplicate ${chunk.length} at ${at}` };
    }
    default:
      b[at] = (b[at]! + (r() < 0.5 ? 1 : -1)) & 0xff;
      return { bytes: b, what: `nudge byte ${at}` };
  }
}

/** Corrupt bytes inside one block and re-seal its CRC, so the Snappy and block parsers see the damage. */
function mutateSealed(index: Uint8Array, r: Rand): { bytes: Uint8Array; what: string } {
  const blocks = tableBlocks(index);
  const [off, size] = blocks[int(r, blocks.length)]!;
  const b = index.slice();
  const n = 1 + int(r, 3);
  for (let k = 0; k < n && size > 0; k++) {
    const at = off + int(r, size);
    b[at] = r() < 0.5 ? b[at]! ^ (1 << int(r, 8)) : int(r, 256);
  }
  const crc = maskCrc(crc32c(b.subarray(off, off + size + 1)));
  new DataView(b.buffer).setUint32(off + size + 1, crc, true);
  return { bytes: b, what: `sealed ${n} changes in block at ${off}` };
}

async function exercise(files: Map<string, Uint8Array>, target: string, bytes: Uint8Array): Promise<void> {
  const f = await readSavedModel(resolver(files, [target, bytes]));
  await summarizeSavedModel(f);
  graphConstants(f.metaGraphs[f.metaGraphIndex]!.metaGraph.graphDef ?? create(GraphDefSchema));
  for (const t of f.variables.tensors) await t.load().catch((e: unknown) => { if (!isModelsmithError(e)) throw e; });
}

describe('mutation fuzzing', () => {
  const models = savedModelDirs().map((d) => ({ d, files: filesOf(join(CORPUS, d)) }));

  it('survives 2,400 mutated SavedModel, bundle and GraphDef files', async () => {
    const r = rng(20261128);
    const failures: string[] = [];
    const outcomes = { ok: 0, error: 0 };
    let slowest = 0;
    const plan: Array<[string, number, boolean]> = [
      ['saved_model.pb', 1100, false],
      ['variables/variables.index', 400, false],
      ['variables/variables.index', 400, true],
      ['variables/variables.data-00000-of-00001', 300, false],
    ];
    for (const [target, count, sealed] of plan) {
      for (let i = 0; i < count; i++) {
        // Small models more often: same code paths, less time.
        const m = models[r() < 0.7 ? int(r, 9) : int(r, models.length)]!;
        const orig = m.files.get(target)!;
        const { bytes, what } = sealed ? mutateSealed(orig, r) : mutate(orig, r);
        const t0 = performance.now();
        try {
          await exercise(m.files, target, bytes);
          outcomes.ok++;
        } catch (e) {
          if (isModelsmithError(e)) outcomes.error++;
          else failures.push(`${m.d}/${target} ${what}: ${(e as Error)?.stack ?? String(e)}`);
        }
        slowest = Math.max(slowest, performance.now() - t0);
      }
    }
    for (const g of ['tf-rust-addition.pb', 'tf-rust-regression.pb']) {
      const orig = new Uint8Array(readFileSync(join(CORPUS, 'graphdef-frozen', g)));
      for (let i = 0; i < 100; i++) {
        const { bytes, what } = mutate(orig, r);
        try {
          const gd = await readGraphDef(new MemorySource(bytes, g));
          summarizeGraphDef(gd);
          for (const t of graphConstants(gd.graph).tensors) await t.load();
          outcomes.ok++;
        } catch (e) {
          if (isModelsmithError(e)) outcomes.error++;
          else failures.push(`${g} ${what}: ${(e as Error)?.stack ?? String(e)}`);
        }
      }
    }
    expect(failures.slice(0, 5)).toEqual([]);
    expect(outcomes.ok + outcomes.error).toBe(2400);
    // Both outcomes occur: the mutations are neither all harmless nor all fatal.
    expect(outcomes.ok).toBeGreaterThan(100);
    expect(outcomes.error).toBeGreaterThan(500);
    expect(slowest).toBeLessThan(2000);
  });
});
