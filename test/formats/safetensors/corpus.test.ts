/**
 * Every corpus safetensors file: read with per-tensor SHA-256 against the generator's manifest (and
 * REAL_TENSORS.json for silero-vad), the official crate's verdict reproduced for every vector, and
 * our writer reproducing the crate's bytes.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isModelsmithError } from '../../../src/core/errors.js';
import { MemorySink, MemorySource } from '../../../src/io/source.js';
import { readSafetensors } from '../../../src/formats/safetensors/read.js';
import { writeSafetensors } from '../../../src/formats/safetensors/write.js';
import { GENERATED, manifest, memFile, realTensors, sha256, SILERO, VECTORS } from './helpers.js';

const generatedFiles = Object.keys(manifest.files).sort();

describe('generated corpus files', () => {
  it('the manifest lists every generated file', () => {
    const onDisk = readdirSync(GENERATED).filter((f) => f.endsWith('.safetensors')).sort();
    expect(onDisk).toEqual(generatedFiles);
    expect(generatedFiles.length).toBe(6);
  });

  for (const file of generatedFiles) {
    it(`${file}: tensors, offsets, SHA-256 and metadata match the manifest`, async () => {
      const m = manifest.files[file]!;
      const src = memFile(resolve(GENERATED, file));
      expect(src.size).toBe(m.size);
      expect(sha256(src.bytes)).toBe(m.sha256);
      const set = await readSafetensors(src);
      expect(set.format).toBe('safetensors');
      expect(set.tensors.map((t) => t.name).sort()).toEqual(Object.keys(m.tensors).sort());
      const ok = /^OK: (\d+) tensors/.exec(m.official_verdict);
      expect(Number(ok![1])).toBe(set.tensors.length);
      for (const t of set.tensors) {
        const want = m.tensors[t.name]!;
        expect(t.extra?.['safetensorsDtype']).toBe(want.dtype);
        expect(t.shape).toEqual(want.shape);
        expect(t.byteLength).toBe(want.nbytes);
        expect(t.extra?.['fileOffset']).toBe(8 + m.header_len + want.data_offsets[0]);
        const data = await t.load();
        expect(data.byteLength).toBe(want.nbytes);
        expect(sha256(data), t.name).toBe(want.sha256);
      }
      if (m.metadata === null) expect(set.metadata).toBeUndefined();
      else expect(set.metadata).toEqual(m.metadata);
    });
  }

  it('maps all 15 v0.5.3 dtypes through the shared table, fp8 included', async () => {
    const set = await readSafetensors(memFile(resolve(GENERATED, 'dtypes.safetensors')));
    const byName = new Map(set.tensors.map((t) => [t.name, t.dtype]));
    expect(byName.get('f8_e4m3_all_codes')).toBe('float8e4m3fn');
    expect(byName.get('f8_e5m2_all_codes')).toBe('float8e5m2');
    expect(byName.get('bf16')).toBe('bfloat16');
    expect(byName.get('bool')).toBe('bool');
    expect(byName.get('u64')).toBe('uint64');
    expect(new Set(set.tensors.map((t) => t.extra?.['safetensorsDtype'])).size).toBe(15);
    // all 256 codes, in order
    const codes = await set.tensors.find((t) => t.name === 'f8_e5m2_all_codes')!.load();
    expect(Array.from(codes)).toEqual(Array.from({ length: 256 }, (_, i) => i));
  });
});

describe('silero-vad (a real published file)', () => {
  it('matches REAL_TENSORS.json tensor for tensor', async () => {
    const want = realTensors['safetensors/silero-vad/silero_vad_16k.safetensors']!;
    const src = memFile(SILERO);
    expect(src.size).toBe(want.size);
    const set = await readSafetensors(src);
    expect(set.tensors.length).toBe(15);
    expect(set.tensors.map((t) => t.name).sort()).toEqual(Object.keys(want.tensors).sort());
    expect(set.metadata).toBeUndefined();
    for (const t of set.tensors) {
      const w = want.tensors[t.name]!;
      expect(t.dtype).toBe('float32');
      expect(t.shape).toEqual(w.shape);
      expect(sha256(await t.load()), t.name).toBe(w.sha256);
    }
  });

  it('reads only the header when opening (lazy tensors)', async () => {
    const src = memFile(SILERO);
    const reads: Array<[number, number]> = [];
    const spy = { size: src.size, name: src.name, read: async (o: number, l: number) => (reads.push([o, l]), src.read(o, l)), readInto: src.readInto.bind(src) };
    const set = await readSafetensors(spy);
    const headerEnd = 8 + Number(new DataView(src.bytes.buffer).getBigUint64(0, true));
    expect(reads.every(([o, l]) => o + l <= headerEnd)).toBe(true);
    reads.length = 0;
    const t = set.tensors[3]!;
    await t.load();
    expect(reads).toEqual([[t.extra!['fileOffset'], t.byteLength]]);
  });
});

describe('crate verdicts on the test vectors', () => {
  const vectors = Object.entries(manifest.vectors);
  it('covers every vector file', () => {
    expect(readdirSync(VECTORS).sort()).toEqual(vectors.map(([f]) => f).sort());
    expect(vectors.length).toBe(16);
  });
  for (const [file, v] of vectors) {
    it(`${file}: ${v.official_verdict.split('\t')[0]}`, async () => {
      const src = memFile(resolve(VECTORS, file));
      expect(sha256(src.bytes)).toBe(v.sha256);
      const ok = /^OK: (\d+) tensors\t(.*)$/.exec(v.official_verdict);
      if (ok) {
        const set = await readSafetensors(src);
        expect(set.tensors.length).toBe(Number(ok[1]));
        const names = JSON.parse(ok[2]!) as string[];
        for (const n of names) expect(set.tensors.some((t) => t.name === n)).toBe(true);
        for (const t of set.tensors) expect((await t.load()).byteLength).toBe(t.byteLength);
      } else {
        const crateName = /^ERR: (\w+)$/.exec(v.official_verdict)![1]!;
        let err: unknown;
        try {
          await readSafetensors(src);
        } catch (e) {
          err = e;
        }
        expect(isModelsmithError(err)).toBe(true);
        // "InvalidHeader" is a prefix of other names: match the whole word after the code.
        expect((err as Error).message).toMatch(new RegExp(`^E_[A-Z_]+: ${crateName}: `));
        expect((err as Error).message).toContain(src.name);
      }
    });
  }
});

describe('writer reproduces the official crate', () => {
  for (const file of [...generatedFiles, 'vectors/whitespace_padded_header_0.safetensors', 'vectors/zero_sized_tensor.safetensors']) {
    it(`${file}: read → write`, async () => {
      const bytes = new Uint8Array(readFileSync(resolve(GENERATED, file)));
      const set = await readSafetensors(memFile(resolve(GENERATED, file)));
      const sink = new MemorySink();
      const { bytes: n } = await writeSafetensors(set, sink);
      const out = sink.bytes();
      expect(n).toBe(out.byteLength);
      if (file.startsWith('vectors/')) {
        // Hand-written by the crate's tests (unpadded / whitespace): compare parsed content only.
        const again = await readSafetensors(new MemorySource(out));
        expect(again.tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual(set.tensors.map((t) => [t.name, t.dtype, t.shape]));
        expect(out.byteLength % 8).toBe(0);
        return;
      }
      // Metadata key order is the order we read, so even metadata.safetensors (HashMap order) matches.
      expect(sha256(out)).toBe(sha256(bytes));
    });
  }

  it('without metadata, from tensors given in a scrambled order, still writes the crate bytes', async () => {
    for (const file of ['dtypes.safetensors', 'names_and_mixed_dtypes.safetensors', 'scalar_and_empty.safetensors']) {
      const bytes = new Uint8Array(readFileSync(resolve(GENERATED, file)));
      const set = await readSafetensors(memFile(resolve(GENERATED, file)));
      expect(set.metadata).toBeUndefined();
      const scrambled = [...set.tensors].reverse();
      const sink = new MemorySink();
      await writeSafetensors({ tensors: scrambled }, sink);
      expect(sha256(sink.bytes()), file).toBe(sha256(bytes));
    }
  });
});
