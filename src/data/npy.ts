/**
 * numpy `.npy` headers for data sets. Only the header is parsed here (the payload is streamed by the
 * data set readers), so a multi-GB array costs one small read to open. The header is the restricted
 * Python-literal dict numpy writes; it is parsed, never evaluated.
 *
 * This is a separate parser from src/eval/inputs.ts on purpose: that module reads files with node:fs,
 * and src/data must stay runtime-neutral.
 */
import { ErrorCodes, ModelsmithError } from '../core/errors.js';
import { dtypeInfo, type DType } from '../core/dtype.js';
import { numel } from '../core/tensor.js';

/** numpy type codes (without byte order) → our dtype names. */
const NPY_CODES: Record<string, DType> = {
  f2: 'float16', f4: 'float32', f8: 'float64',
  i1: 'int8', i2: 'int16', i4: 'int32', i8: 'int64',
  u1: 'uint8', u2: 'uint16', u4: 'uint32', u8: 'uint64', b1: 'bool',
};

/** Headers above this are not something numpy writes for a plain array (it pads to 64 bytes). */
export const MAX_NPY_HEADER = 64 * 1024;

export interface NpyHeader {
  dtype: DType;
  shape: number[];
  /** Offset of the first payload byte, from the start of the .npy bytes. */
  dataOffset: number;
  /** Payload bytes announced by dtype × shape. */
  dataBytes: number;
}

const FORMAT = 'npy';

/** Bytes to read first: enough for the preamble of every version. */
export const NPY_PREAMBLE = 12;

/**
 * The header length announced by the preamble (`head` holds at least the first 10 bytes, 12 for
 * versions 2 and 3). Returns where the header text starts and how long it is.
 */
export function npyHeaderExtent(head: Uint8Array, path: string, base = 0): { start: number; length: number } {
  const at = (offset: number): { path: string; format: string; offset: number } => ({ path, format: FORMAT, offset: base + offset });
  if (head.byteLength < 10) throw new ModelsmithError(ErrorCodes.TRUNCATED, `.npy data of ${head.byteLength} bytes is shorter than its preamble`, at(0));
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  for (let i = 0; i < 6; i++) {
    if (head[i] !== magic[i]) throw new ModelsmithError(ErrorCodes.MALFORMED, 'not a .npy file (magic is not \\x93NUMPY)', at(i));
  }
  const major = head[6]!;
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  let start: number;
  let length: number;
  if (major === 1) {
    start = 10;
    length = dv.getUint16(8, true);
  } else if (major === 2 || major === 3) {
    if (head.byteLength < 12) throw new ModelsmithError(ErrorCodes.TRUNCATED, '.npy version 2/3 preamble needs 12 bytes', at(head.byteLength));
    start = 12;
    length = dv.getUint32(8, true);
  } else {
    throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `.npy format version ${major}.${head[7]} (only 1, 2 and 3 exist)`, at(6));
  }
  if (length > MAX_NPY_HEADER) throw new ModelsmithError(ErrorCodes.LIMIT, `.npy header of ${length} bytes (cap ${MAX_NPY_HEADER})`, at(8));
  return { start, length };
}

/**
 * Parses the header text (`text` = the bytes after the preamble). `total` is the byte size of the
 * whole .npy data, checked against dtype × shape: short is E_TRUNCATED, long is E_MALFORMED.
 */
export function parseNpyHeader(textBytes: Uint8Array, start: number, total: number, path: string, base = 0): NpyHeader {
  const fail = (code: (typeof ErrorCodes)[keyof typeof ErrorCodes], msg: string, offset: number): never => {
    throw new ModelsmithError(code, msg, { path, format: FORMAT, offset: base + offset });
  };
  // latin1 decodes any byte; version 3 allows utf-8 but only ASCII can appear in a valid header.
  let text = '';
  for (const b of textBytes) text += String.fromCharCode(b);
  let i = 0;
  const ws = (): void => {
    while (i < text.length && ' \t\r\n'.includes(text[i]!)) i++;
  };
  const expect = (ch: string): void => {
    ws();
    if (text[i] !== ch) fail(ErrorCodes.MALFORMED, `.npy header: expected '${ch}' at character ${i}`, start + i);
    i++;
  };
  const str = (): string => {
    ws();
    const q = text[i];
    if (q !== "'" && q !== '"') fail(ErrorCodes.MALFORMED, `.npy header: expected a string at character ${i}`, start + i);
    const end = text.indexOf(q!, i + 1);
    if (end < 0 || end - i > 64) fail(ErrorCodes.MALFORMED, '.npy header: unterminated string', start + i);
    const s = text.slice(i + 1, end);
    i = end + 1;
    return s;
  };
  let descr: string | undefined;
  let fortran: boolean | undefined;
  let shape: number[] | undefined;
  expect('{');
  for (let keys = 0; ; keys++) {
    ws();
    if (text[i] === '}') { i++; break; }
    if (keys >= 3) fail(ErrorCodes.MALFORMED, '.npy header has more than descr, fortran_order and shape', start + i);
    const keyAt = i;
    const key = str();
    expect(':');
    ws();
    if (key === 'descr') {
      if (text[i] === '[') fail(ErrorCodes.UNSUPPORTED, '.npy structured (record) dtypes are not supported', start + i);
      descr = str();
    } else if (key === 'fortran_order') {
      if (text.startsWith('True', i)) { fortran = true; i += 4; }
      else if (text.startsWith('False', i)) { fortran = false; i += 5; }
      else fail(ErrorCodes.MALFORMED, '.npy header: fortran_order must be True or False', start + i);
    } else if (key === 'shape') {
      expect('(');
      shape = [];
      for (;;) {
        ws();
        if (text[i] === ')') { i++; break; }
        const m = /^\d{1,16}/.exec(text.slice(i, i + 17));
        if (!m) fail(ErrorCodes.MALFORMED, `.npy header: shape entry at character ${i} is not a non-negative integer`, start + i);
        shape.push(Number(m![0]));
        i += m![0].length;
        if (shape.length > 32) fail(ErrorCodes.LIMIT, '.npy header: more than 32 dims', start + i);
        ws();
        if (text[i] === ',') i++;
        else if (text[i] !== ')') fail(ErrorCodes.MALFORMED, `.npy header: expected ',' or ')' at character ${i}`, start + i);
      }
    } else {
      fail(ErrorCodes.MALFORMED, `.npy header: unexpected key '${key}'`, start + keyAt);
    }
    ws();
    if (text[i] === ',') i++;
    else if (text[i] !== '}') fail(ErrorCodes.MALFORMED, `.npy header: expected ',' or '}' at character ${i}`, start + i);
  }
  if (text.slice(i).trim() !== '') fail(ErrorCodes.MALFORMED, '.npy header: text after the closing brace', start + i);
  if (descr === undefined || fortran === undefined || shape === undefined) {
    return fail(ErrorCodes.MALFORMED, '.npy header must give descr, fortran_order and shape', start);
  }
  const order = descr[0]!;
  const dtype = NPY_CODES[descr.slice(1)];
  if (!dtype || !'<|='.includes(order) || descr.length !== 3) {
    if (order === '>' && dtype && dtypeInfo(dtype).bits > 8) {
      fail(ErrorCodes.UNSUPPORTED, `.npy dtype '${descr}' is big-endian; save it little-endian (arr.astype('<${descr.slice(1)}'))`, start);
    }
    fail(ErrorCodes.DTYPE, `.npy dtype '${descr}' is not one of ${Object.keys(NPY_CODES).join(' ')}`, start);
  }
  if (fortran) fail(ErrorCodes.UNSUPPORTED, '.npy array is in Fortran order; save a C-order array (np.ascontiguousarray)', start);
  const dataOffset = start + textBytes.byteLength;
  const have = total - dataOffset;
  // Compared before multiplying out in full: a hostile shape must not reach numel's overflow path unchecked.
  let n = shape!.includes(0) ? 0 : 1;
  for (const d of n === 0 ? [] : shape!) {
    n *= d;
    if (n * (dtypeInfo(dtype!).bits / 8) > have && d !== 0) break;
  }
  const want = n * (dtypeInfo(dtype!).bits / 8);
  if (want !== have || !Number.isSafeInteger(want)) {
    fail(want > have ? ErrorCodes.TRUNCATED : ErrorCodes.MALFORMED,
      `.npy ${descr}[${shape!.join(',')}] needs ${Number.isSafeInteger(want) && n === numelSafe(shape!) ? want : 'more'} payload bytes, the data has ${have}`, dataOffset);
  }
  return { dtype: dtype!, shape: shape!, dataOffset, dataBytes: want };
}

function numelSafe(shape: number[]): number {
  try {
    return numel(shape);
  } catch {
    return -1;
  }
}
