/** Corpus paths and loaders shared by the Caffe tests (codec, conversion, interop, mutations). */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { decodeCaffemodel, parseCaffePrototxt, type NetParameter } from '../../../src/formats/caffe/index.js';

export const CORPUS_CAFFE = resolve(import.meta.dirname, '../../../../shared/corpus/caffe');
export const CORPUS_ROOT = resolve(CORPUS_CAFFE, '..');

export function listCaffeFiles(pred: (name: string) => boolean): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (pred(name)) out.push(p);
    }
  };
  walk(CORPUS_CAFFE);
  return out;
}

export const rel = (p: string): string => relative(CORPUS_CAFFE, p);

/** The deploy + weights pairs of the corpus that convert (det2 is the mismatched one). */
export const PAIRS = [
  { name: 'lenet-v1', prototxt: 'lenet-v1-2014/lenet.prototxt', weights: 'lenet-v1-2014/lenet_iter_10000' },
  { name: 'slim-320', prototxt: 'ultra-light-face/slim-320.prototxt', weights: 'ultra-light-face/slim-320.caffemodel' },
  { name: 'mtcnn-det1', prototxt: 'mtcnn-jfda/det1.prototxt', weights: 'mtcnn-jfda/det1.caffemodel' },
  { name: 'mtcnn-det4', prototxt: 'mtcnn-jfda/det4.prototxt', weights: 'mtcnn-jfda/det4.caffemodel' },
] as const;

export function loadPrototxt(relPath: string): NetParameter {
  const p = join(CORPUS_CAFFE, relPath);
  return parseCaffePrototxt(readFileSync(p, 'utf8'), { path: relPath });
}

export function loadCaffemodel(relPath: string): NetParameter {
  return decodeCaffemodel(readFileSync(join(CORPUS_CAFFE, relPath)), { path: relPath });
}

/** Seeded uniform floats in [lo, hi). */
export function seededFloats(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = (seed >>> 0) || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    out[i] = lo + ((s >>> 0) / 4294967296) * (hi - lo);
  }
  return out;
}
