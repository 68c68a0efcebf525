/** Shared fixtures for the SavedModel / tensor-bundle tests: corpus paths and in-memory sources. */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { ErrorCodes, ModelsmithError } from '../../../src/core/errors.js';
import { MemorySource, type ByteSource, type SiblingResolver } from '../../../src/io/source.js';
import type { ShardResolver } from '../../../src/formats/savedmodel/bundle/read.js';
import { shardFileName } from '../../../src/formats/savedmodel/bundle/read.js';
import { snappyDecompress } from '../../../src/formats/savedmodel/bundle/snappy.js';
import { parseBlock } from '../../../src/formats/savedmodel/bundle/sstable-read.js';

export const CORPUS = resolve(import.meta.dirname, '../../../../shared/corpus/savedmodel');

/** Every folder under the corpus that holds a saved_model.pb, relative to CORPUS. */
export function savedModelDirs(): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name === 'saved_model.pb') out.push(relative(CORPUS, d));
    }
  };
  walk(CORPUS);
  return out.sort();
}

export function fileSource(path: string): MemorySource {
  return new MemorySource(new Uint8Array(readFileSync(path)), path);
}

/** A SiblingResolver over a corpus folder, with optional byte overrides (for corruption tests). */
export function dirResolver(dir: string, overrides: Record<string, Uint8Array> = {}): SiblingResolver {
  return async (rel: string): Promise<ByteSource> => {
    const name = join(dir, rel);
    const o = overrides[rel];
    if (o) return new MemorySource(o, name);
    try {
      return new MemorySource(new Uint8Array(readFileSync(name)), name);
    } catch (e) {
      throw new ModelsmithError(ErrorCodes.EXTERNAL_DATA, `file '${rel}' not found`, { path: name, cause: e });
    }
  };
}

export function shardsOf(dir: string, prefix = 'variables/variables', data?: Uint8Array): ShardResolver {
  return async (i, n) => {
    const p = join(dir, shardFileName(prefix, i, n));
    return data ? new MemorySource(data, p) : fileSource(p);
  };
}

function varints(b: Uint8Array, pos: number, n: number): number[] {
  const out: number[] = [];
  for (let k = 0; k < n; k++) {
    let v = 0;
    let mul = 1;
    for (;;) {
      const x = b[pos++]!;
      v += (x & 0x7f) * mul;
      mul *= 128;
      if (x < 0x80) break;
    }
    out.push(v);
  }
  return out;
}

/**
 * Every block of a well-formed table as stored: [offset, size, compression type], data blocks first,
 * then metaindex and index. Test-side decoding, independent of the reader under test.
 */
export function tableBlocks(index: Uint8Array): Array<[number, number, number]> {
  const footer = index.subarray(index.length - 48);
  const [mo, ms, io, is] = varints(footer, 0, 4) as [number, number, number, number];
  const handles = parseBlock(blockContents(index, io, is), { base: io }, 'index').map((e) => varints(e.value, 0, 2) as [number, number]);
  return [...handles, [mo, ms], [io, is]].map(([o, s]) => [o, s, index[o + s]!] as [number, number, number]);
}

/** A block's contents after decompression. */
export function blockContents(index: Uint8Array, offset: number, size: number): Uint8Array {
  const stored = index.subarray(offset, offset + size);
  return index[offset + size] === 1 ? snappyDecompress(stored, { base: offset }) : stored;
}
