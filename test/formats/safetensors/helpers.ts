/** Corpus locations and small utilities shared by the safetensors tests. */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { isModelsmithError, type ModelsmithError } from '../../../src/core/errors.js';
import { MemorySource } from '../../../src/io/source.js';

export const CORPUS = resolve(import.meta.dirname, '../../../../shared/corpus');
export const ST_DIR = resolve(CORPUS, 'safetensors');
export const GENERATED = resolve(ST_DIR, 'generated');
export const VECTORS = resolve(GENERATED, 'vectors');
export const SILERO = resolve(ST_DIR, 'silero-vad/silero_vad_16k.safetensors');

export interface ManifestTensor {
  dtype: string;
  shape: number[];
  nbytes: number;
  sha256: string;
  data_offsets: [number, number];
}
export interface ManifestFile {
  size: number;
  sha256: string;
  header_len: number;
  metadata: Record<string, string> | null;
  tensors: Record<string, ManifestTensor>;
  official_verdict: string;
}
export interface Manifest {
  files: Record<string, ManifestFile>;
  vectors: Record<string, { size: number; sha256: string; official_verdict: string }>;
}

export const manifest: Manifest = JSON.parse(readFileSync(resolve(GENERATED, 'manifest.json'), 'utf8'));
export const realTensors: Record<string, { size: number; sha256: string; tensors: Record<string, { dtype: string; shape: number[]; sha256: string }> }> =
  JSON.parse(readFileSync(resolve(CORPUS, 'REAL_TENSORS.json'), 'utf8'));

export function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

export function memFile(path: string): MemorySource {
  return new MemorySource(new Uint8Array(readFileSync(path)), path);
}

/** Runs `fn` and returns the ModelsmithError it throws; fails the test on success or another error type. */
export async function catchMs(fn: () => Promise<unknown>): Promise<ModelsmithError> {
  try {
    await fn();
  } catch (e) {
    if (isModelsmithError(e)) return e;
    throw new Error(`expected a ModelsmithError, got ${String(e)}`, { cause: e });
  }
  throw new Error('expected a ModelsmithError, but the call succeeded');
}

/** A file from a header object (or raw header text) and a data buffer, with the 8-byte prefix. */
export function stFile(header: string | object, data: Uint8Array = new Uint8Array(0), pad = true): Uint8Array {
  let text = typeof header === 'string' ? header : JSON.stringify(header);
  if (pad) while (Buffer.byteLength(text) % 8) text += ' ';
  const h = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}
