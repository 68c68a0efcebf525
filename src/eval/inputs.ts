/**
 * Inputs for `modelsmith eval`: what a model declares (graph inputs that are not initializers),
 * seeded random tensors built from those declarations, and tensors read from ONNX TensorProto
 * `.pb` files (a `test_data_set_N` folder: input_0.pb, input_1.pb, …) or numpy `.npy` files.
 *
 * Random data: float inputs ~ N(0, 1) (Box–Muller over a seeded mulberry32 stream), integer inputs
 * uniform in [0, 4) (small, so index-like inputs stay valid), uint8 in [0, 256), bool 0/1. Dynamic
 * dims come from `--shape name=d1,d2,…` or default to 1; every defaulted dim is listed.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import type { ModelProto, ValueInfoProto } from 'onnx-buf';
import { byteLength, dtypeFromOnnx, dtypeInfo, type DType } from '../core/dtype.js';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import { numel, type Tensor } from '../core/tensor.js';
import { mulberry32 } from '../core/random.js';

export { mulberry32 };
import { decodeTensorProto, tensorFromProtoSync } from '../formats/onnx/tensor.js';
import { f32BitsToF16Bits } from '../kernels/reference/cast.js';

/** A declared graph input: dims are numbers (fixed), strings (symbolic) or undefined (unknown). */
export interface InputSpec {
  name: string;
  dtype: DType;
  /** undefined when the input declares no shape at all (any rank). */
  dims?: (number | string | undefined)[];
}

/** Graph inputs that are not initializers. Non-tensor inputs (sequences, maps…) are refused. */
export function declaredInputs(proto: ModelProto, path?: string): InputSpec[] {
  const g = proto.graph;
  if (!g) throw new ModelsmithError(ErrorCodes.MALFORMED, 'model has no graph', path !== undefined ? { path } : {});
  const inits = new Set(g.initializer.map((t) => t.name));
  return g.input.filter((v) => !inits.has(v.name)).map((v) => specOf(v, path));
}

function specOf(v: ValueInfoProto, path?: string): InputSpec {
  const ctx = { tensor: v.name, ...(path !== undefined ? { path } : {}) };
  if (v.type?.value.case !== 'tensorType') {
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `input is ${v.type?.value.case ?? 'untyped'}, eval feeds plain tensors only`, ctx);
  }
  const tt = v.type.value.value;
  const info = dtypeFromOnnx(tt.elemType);
  if (!info) throw new ModelsmithError(ErrorCodes.DTYPE, `input has unknown elem_type ${tt.elemType}`, ctx);
  const spec: InputSpec = { name: v.name, dtype: info.name };
  if (tt.shape) {
    spec.dims = tt.shape.dim.map((d) =>
      d.value.case === 'dimValue' && d.value.value >= 0n ? Number(d.value.value) : d.value.case === 'dimParam' && d.value.value ? d.value.value : undefined,
    );
  }
  return spec;
}

/** Parses `--shape name=d1,d2,…` values (E_USAGE for bad syntax, repeated or unknown names). */
export function parseShapeArgs(args: readonly string[], specs: readonly InputSpec[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const a of args) {
    const eq = a.lastIndexOf('=');
    if (eq <= 0) throw new ModelsmithError(ErrorCodes.USAGE, `--shape wants name=d1,d2,..., got '${a}'`);
    const name = a.slice(0, eq);
    const body = a.slice(eq + 1);
    const dims = body === '' ? [] : body.split(/[,x]/).map((s) => Number(s.trim()));
    if (dims.some((d) => !Number.isSafeInteger(d) || d < 0)) throw new ModelsmithError(ErrorCodes.USAGE, `--shape ${name}: dims must be non-negative integers, got '${body}'`);
    if (!specs.some((s) => s.name === name)) {
      throw new ModelsmithError(ErrorCodes.USAGE, `--shape names unknown input '${name}' (inputs: ${specs.map((s) => s.name).join(', ') || 'none'})`);
    }
    if (out.has(name)) throw new ModelsmithError(ErrorCodes.USAGE, `--shape given twice for '${name}'`);
    out.set(name, dims);
  }
  return out;
}

/** The concrete shape for a random input, and the dims that were defaulted to 1 ("input[axis] (param)"). */
export function resolveShape(spec: InputSpec, given?: number[]): { shape: number[]; defaulted: string[] } {
  if (given) {
    if (spec.dims && spec.dims.length !== given.length) {
      throw new ModelsmithError(ErrorCodes.USAGE, `--shape ${spec.name} has rank ${given.length}, the model declares rank ${spec.dims.length} [${fmtDims(spec.dims)}]`);
    }
    spec.dims?.forEach((d, i) => {
      if (typeof d === 'number' && d !== given[i]) {
        throw new ModelsmithError(ErrorCodes.USAGE, `--shape ${spec.name}: dim ${i} is fixed to ${d} by the model, got ${given[i]}`);
      }
    });
    numel(given, { tensor: spec.name });
    return { shape: [...given], defaulted: [] };
  }
  if (!spec.dims) return { shape: [], defaulted: [`${spec.name} (no declared shape: used a scalar)`] };
  const defaulted: string[] = [];
  const shape = spec.dims.map((d, i) => {
    if (typeof d === 'number') return d;
    defaulted.push(`${spec.name}[${i}]${typeof d === 'string' ? ` (${d})` : ''}`);
    return 1;
  });
  return { shape, defaulted };
}

export function fmtDims(dims: readonly (number | string | undefined)[]): string {
  return dims.map((d) => (d === undefined ? '?' : String(d))).join(',');
}


function normal(r: () => number): () => number {
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    const u = 1 - r(); // (0, 1]
    const v = r();
    const m = Math.sqrt(-2 * Math.log(u));
    spare = m * Math.sin(2 * Math.PI * v);
    return m * Math.cos(2 * Math.PI * v);
  };
}

/** One random tensor of `dtype` and `shape`, values drawn from `r`. */
export function randomTensor(name: string, dtype: DType, shape: number[], r: () => number): Tensor {
  const n = numel(shape, { tensor: name });
  const nb = byteLength(dtype, n);
  if (nb > 1 << 30) throw new ModelsmithError(ErrorCodes.LIMIT, `random input of ${nb} bytes is too large (give a smaller --shape)`, { tensor: name });
  const g = normal(r);
  const int = (lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo));
  let data: Uint8Array;
  const bytes = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  switch (dtype) {
    case 'float32': data = bytes(Float32Array.from({ length: n }, g)); break;
    case 'float64': data = bytes(Float64Array.from({ length: n }, g)); break;
    case 'float16': {
      const f = new Float32Array(1);
      const u = new Uint32Array(f.buffer);
      data = bytes(Uint16Array.from({ length: n }, () => {
        f[0] = g();
        return f32BitsToF16Bits(u[0]!);
      }));
      break;
    }
    case 'int8': data = bytes(Int8Array.from({ length: n }, () => int(0, 4))); break;
    case 'uint8': data = Uint8Array.from({ length: n }, () => int(0, 256)); break;
    case 'int16': data = bytes(Int16Array.from({ length: n }, () => int(0, 4))); break;
    case 'uint16': data = bytes(Uint16Array.from({ length: n }, () => int(0, 4))); break;
    case 'int32': data = bytes(Int32Array.from({ length: n }, () => int(0, 4))); break;
    case 'uint32': data = bytes(Uint32Array.from({ length: n }, () => int(0, 4))); break;
    case 'int64': data = bytes(BigInt64Array.from({ length: n }, () => BigInt(int(0, 4)))); break;
    case 'uint64': data = bytes(BigUint64Array.from({ length: n }, () => BigInt(int(0, 4)))); break;
    case 'bool': data = Uint8Array.from({ length: n }, () => (r() < 0.5 ? 1 : 0)); break;
    default:
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `cannot make random ${dtype} inputs (give data with --inputs)`, { tensor: name });
  }
  return { name, dtype, shape, data };
}

export interface RandomInputOptions {
  samples: number;
  seed: number;
  shapes?: Map<string, number[]>;
}

/** `samples` sets of random inputs (sample k uses seed + k, so adding samples keeps the first ones). */
export function randomInputs(specs: readonly InputSpec[], opts: RandomInputOptions): { samples: Tensor[][]; defaulted: string[] } {
  const resolved = specs.map((s) => ({ spec: s, ...resolveShape(s, opts.shapes?.get(s.name)) }));
  const samples: Tensor[][] = [];
  for (let k = 0; k < opts.samples; k++) {
    const r = mulberry32((opts.seed + k * 0x9e3779b1) >>> 0);
    samples.push(resolved.map((x) => randomTensor(x.spec.name, x.spec.dtype, x.shape, r)));
  }
  return { samples, defaulted: resolved.flatMap((x) => x.defaulted) };
}

// ------------------------------------------------------------------------------------------------
// .npy
// ------------------------------------------------------------------------------------------------

const NPY_DTYPES: Record<string, DType> = {
  f4: 'float32', f8: 'float64', f2: 'float16', i1: 'int8', i2: 'int16', i4: 'int32', i8: 'int64',
  u1: 'uint8', u2: 'uint16', u4: 'uint32', u8: 'uint64', b1: 'bool',
};

const MAX_NPY_HEADER = 1 << 20;

/**
 * Reads a numpy .npy file (format versions 1, 2, 3; little-endian or byte-order-free dtypes
 * f4 f8 f2 i1 i2 i4 i8 u1 u2 u4 u8 b1; C order only). The header is parsed as the restricted
 * Python-literal dict numpy writes, never evaluated. The payload size must equal dtype × shape.
 */
export function readNpy(bytes: Uint8Array, path = '<memory>', name = basename(path, extname(path))): Tensor {
  const bad = (msg: string, offset?: number): never => {
    throw new ModelsmithError(ErrorCodes.MALFORMED, `not a valid .npy file: ${msg}`, { path, format: 'npy', ...(offset !== undefined ? { offset } : {}) });
  };
  const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
  if (bytes.byteLength < 10) throw new ModelsmithError(ErrorCodes.TRUNCATED, `.npy file is ${bytes.byteLength} bytes, shorter than its preamble`, { path, format: 'npy' });
  for (let i = 0; i < 6; i++) if (bytes[i] !== MAGIC[i]) bad('magic bytes are not \\x93NUMPY', i);
  const major = bytes[6]!;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let hlen: number;
  let hstart: number;
  if (major === 1) {
    hlen = dv.getUint16(8, true);
    hstart = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.byteLength < 12) throw new ModelsmithError(ErrorCodes.TRUNCATED, '.npy preamble is cut short', { path, format: 'npy' });
    hlen = dv.getUint32(8, true);
    hstart = 12;
  } else {
    return bad(`format version ${major}.${bytes[7]} is not 1, 2 or 3`, 6);
  }
  if (hlen > MAX_NPY_HEADER) throw new ModelsmithError(ErrorCodes.LIMIT, `.npy header of ${hlen} bytes exceeds ${MAX_NPY_HEADER}`, { path, format: 'npy', offset: 8 });
  if (hstart + hlen > bytes.byteLength) throw new ModelsmithError(ErrorCodes.TRUNCATED, `.npy header needs ${hlen} bytes, the file ends first`, { path, format: 'npy', offset: hstart });
  let header: string;
  try {
    header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1', { fatal: true }).decode(bytes.subarray(hstart, hstart + hlen));
  } catch {
    return bad('header is not valid text', hstart);
  }
  const h = parseNpyHeader(header, bad, hstart);
  const descr = h.descr;
  const order = descr[0];
  const code = descr.slice(1);
  const dtype = NPY_DTYPES[code];
  if (!dtype || !['<', '|', '='].includes(order ?? '')) {
    if (order === '>' && NPY_DTYPES[code]) {
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `.npy dtype '${descr}' is big-endian; save it little-endian (arr.astype('<${code}'))`, { path, format: 'npy' });
    }
    throw new ModelsmithError(ErrorCodes.DTYPE, `.npy dtype '${descr}' is not one of ${Object.keys(NPY_DTYPES).join(' ')} (little-endian)`, { path, format: 'npy' });
  }
  if (order === '|' && dtypeInfo(dtype).bits > 8) bad(`dtype '${descr}' needs a byte order`, hstart);
  if (h.fortran) {
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, '.npy data is in Fortran order; save a C-order array (np.ascontiguousarray)', { path, format: 'npy' });
  }
  const shape = h.shape;
  const want = byteLength(dtype, numel(shape, { tensor: name }));
  const dataStart = hstart + hlen;
  const have = bytes.byteLength - dataStart;
  if (have !== want) {
    throw new ModelsmithError(
      have < want ? ErrorCodes.TRUNCATED : ErrorCodes.TENSOR_SIZE,
      `.npy ${descr}[${shape.join(',')}] needs ${want} data bytes, the file has ${have}`,
      { path, format: 'npy', offset: dataStart },
    );
  }
  return { name, dtype, shape, data: bytes.slice(dataStart) };
}

interface NpyHeader { descr: string; fortran: boolean; shape: number[] }

/** Parses `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` — exactly those keys. */
function parseNpyHeader(text: string, bad: (msg: string, offset?: number) => never, base: number): NpyHeader {
  let i = 0;
  const ws = (): void => {
    while (i < text.length && /[ \t\n\r]/.test(text[i]!)) i++;
  };
  const expect = (ch: string): void => {
    ws();
    if (text[i] !== ch) bad(`header: expected '${ch}' at character ${i}`, base + i);
    i++;
  };
  const str = (): string => {
    ws();
    const q = text[i];
    if (q !== "'" && q !== '"') bad(`header: expected a quoted string at character ${i}`, base + i);
    const end = text.indexOf(q!, i + 1);
    if (end < 0 || end - i > 64) bad('header: unterminated string', base + i);
    const s = text.slice(i + 1, end);
    if (s.includes('\\')) bad('header: escapes are not allowed', base + i);
    i = end + 1;
    return s;
  };
  const out: Partial<NpyHeader> = {};
  expect('{');
  for (;;) {
    ws();
    if (text[i] === '}') {
      i++;
      break;
    }
    const key = str();
    expect(':');
    ws();
    if (key === 'descr') {
      if (text[i] === '[') bad('header: structured dtypes are not supported', base + i);
      out.descr = str();
    } else if (key === 'fortran_order') {
      if (text.startsWith('True', i)) out.fortran = true;
      else if (text.startsWith('False', i)) out.fortran = false;
      else bad('header: fortran_order must be True or False', base + i);
      i += out.fortran ? 4 : 5;
    } else if (key === 'shape') {
      expect('(');
      const shape: number[] = [];
      for (;;) {
        ws();
        if (text[i] === ')') {
          i++;
          break;
        }
        const m = /^\d{1,16}L?/.exec(text.slice(i));
        if (!m) bad(`header: shape entry at character ${i} is not a non-negative integer`, base + i);
        const d = Number(m![0].replace('L', ''));
        if (!Number.isSafeInteger(d)) bad('header: shape entry too large', base + i);
        shape.push(d);
        i += m![0].length;
        ws();
        if (text[i] === ',') i++;
        else if (text[i] !== ')') bad(`header: expected ',' or ')' in shape at character ${i}`, base + i);
        if (shape.length > 64) bad('header: more than 64 dims', base + i);
      }
      out.shape = shape;
    } else {
      bad(`header: unexpected key '${key}'`, base + i);
    }
    ws();
    if (text[i] === ',') i++;
    else if (text[i] !== '}') bad(`header: expected ',' or '}' at character ${i}`, base + i);
  }
  if (text.slice(i).trim() !== '') bad('header: text after the closing brace', base + i);
  if (out.descr === undefined || out.fortran === undefined || out.shape === undefined) bad('header must have descr, fortran_order and shape');
  return out as NpyHeader;
}

// ------------------------------------------------------------------------------------------------
// input files
// ------------------------------------------------------------------------------------------------

const MAX_INPUT_FILE = 2 ** 31 - 1;

async function readTensorFile(file: string): Promise<Tensor> {
  const st = await stat(file).catch((e: unknown) => {
    throw new ModelsmithError(ErrorCodes.IO, `cannot open input: ${(e as Error).message}`, { path: file, cause: e });
  });
  if (st.size > MAX_INPUT_FILE) throw new ModelsmithError(ErrorCodes.LIMIT, `input file of ${st.size} bytes is larger than 2 GiB`, { path: file });
  const bytes = new Uint8Array(await readFile(file));
  const ext = extname(file).toLowerCase();
  if (ext === '.npy') return readNpy(bytes, file);
  if (ext === '.pb') {
    const t = tensorFromProtoSync(decodeTensorProto(bytes, file), { path: file });
    return t;
  }
  throw new ModelsmithError(ErrorCodes.USAGE, `input files must be .pb (ONNX TensorProto) or .npy, got '${basename(file)}'`, { path: file });
}

const trailingNumber = (n: string): number => {
  const m = /(\d+)\.[^.]+$/.exec(n);
  return m ? Number(m[1]) : Number.MAX_SAFE_INTEGER;
};

function sortInputFiles(names: string[]): string[] {
  return [...names].sort((a, b) => trailingNumber(a) - trailingNumber(b) || (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Turns `--inputs` arguments into samples. A folder holding `test_data_set_*` folders gives one
 * sample per data set; any other folder is one sample made of its input*.pb / *.npy files; files
 * given directly together make one sample. Output files (output_*.pb) are ignored.
 */
export async function inputSamplePaths(args: readonly string[]): Promise<{ label: string; files: string[] }[]> {
  const samples: { label: string; files: string[] }[] = [];
  const loose: string[] = [];
  const isInput = (n: string): boolean => /\.(pb|npy)$/i.test(n) && !/^output_\d+\.pb$/i.test(n);
  for (const a of args) {
    const st = await stat(a).catch((e: unknown) => {
      throw new ModelsmithError(ErrorCodes.IO, `cannot open --inputs path: ${(e as Error).message}`, { path: a, cause: e });
    });
    if (!st.isDirectory()) {
      loose.push(a);
      continue;
    }
    const names = (await readdir(a)).sort();
    const sets = names.filter((n) => /^test_data_set_\d+$/.test(n)).sort((x, y) => Number(x.slice(14)) - Number(y.slice(14)));
    if (sets.length) {
      for (const s of sets) {
        const dir = join(a, s);
        const files = sortInputFiles((await readdir(dir)).filter(isInput)).map((n) => join(dir, n));
        if (!files.length) throw new ModelsmithError(ErrorCodes.USAGE, 'data set holds no input_*.pb or .npy files', { path: dir });
        samples.push({ label: dir, files });
      }
    } else {
      const files = sortInputFiles(names.filter(isInput)).map((n) => join(a, n));
      if (!files.length) throw new ModelsmithError(ErrorCodes.USAGE, 'folder holds no .pb or .npy input files (nor test_data_set_* folders)', { path: a });
      samples.push({ label: a, files });
    }
  }
  if (loose.length) samples.push({ label: loose.join(' '), files: loose });
  return samples;
}

/**
 * Reads one sample's files and matches them to the declared inputs: a tensor whose name (the
 * TensorProto name, or the .npy file name without extension) is an input name goes there; the
 * others fill the remaining inputs in file order. Every declared input must be given exactly once;
 * dtypes must match and fixed dims must agree.
 */
export async function loadSample(files: readonly string[], specs: readonly InputSpec[]): Promise<Tensor[]> {
  const tensors: { file: string; t: Tensor }[] = [];
  for (const f of files) tensors.push({ file: f, t: await readTensorFile(f) });
  const byName = new Map<string, { file: string; t: Tensor }>();
  const rest: { file: string; t: Tensor }[] = [];
  for (const x of tensors) {
    if (specs.some((s) => s.name === x.t.name) && !byName.has(x.t.name)) byName.set(x.t.name, x);
    else rest.push(x);
  }
  const out: Tensor[] = [];
  for (const s of specs) {
    const x = byName.get(s.name) ?? rest.shift();
    if (!x) {
      throw new ModelsmithError(ErrorCodes.USAGE, `missing input '${s.name}': ${files.length} file(s) given for ${specs.length} input(s) (${specs.map((v) => v.name).join(', ')})`, { tensor: s.name });
    }
    out.push(checkInput({ ...x.t, name: s.name }, s, x.file));
  }
  if (rest.length) {
    throw new ModelsmithError(ErrorCodes.USAGE, `${rest.length} input file(s) match no model input: ${rest.map((x) => basename(x.file)).join(', ')}`, { path: rest[0]!.file });
  }
  return out;
}

/** A data tensor against the declaration: same dtype, same rank, fixed dims equal. */
export function checkInput(t: Tensor, s: InputSpec, file?: string): Tensor {
  const ctx = { tensor: s.name, ...(file !== undefined ? { path: file } : {}) };
  if (t.dtype !== s.dtype) throw new ModelsmithError(ErrorCodes.DTYPE, `input data is ${t.dtype}, the model declares ${s.dtype}`, ctx);
  if (s.dims) {
    const ok = s.dims.length === t.shape.length && s.dims.every((d, i) => typeof d !== 'number' || d === t.shape[i]);
    if (!ok) throw new ModelsmithError(ErrorCodes.USAGE, `shape mismatch: input data is [${t.shape.join(',')}], the model declares [${fmtDims(s.dims)}]`, ctx);
  }
  return t;
}
