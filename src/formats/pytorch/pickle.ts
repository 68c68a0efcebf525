/**
 * A pickle virtual machine that never executes anything. It decodes opcodes of protocols 0–5 into
 * the values of pyobjects.ts; every operation that would import or call Python code (GLOBAL,
 * REDUCE, NEWOBJ, BUILD, INST, OBJ, persistent ids) is handed to an `Interpreter`, which only
 * recognises an allow-list and otherwise builds inert placeholders.
 *
 * Untrusted input: every length is checked against a cap and the bytes left, the stack, memo and
 * mark stack are capped, and each opcode consumes at least one byte, so run time is linear in the
 * pickle size.
 */
import { ErrorCodes, ModelsmithError, type ErrorCode } from '../../core/errors.js';
import { PyBytes, PyDict, PyObject, PySet, PyTuple } from './pyobjects.js';

export interface PickleLimits {
  /** Longest str/bytes payload. */
  maxString: number;
  /** Values pushed in total (stack entries, container items): bounds memory. */
  maxItems: number;
  /** Memo entries. */
  maxMemo: number;
  /** Nested MARKs open at once. */
  maxMarks: number;
  /** Opcodes executed. */
  maxOps: number;
  /** Bytes of a LONG1/LONG4 integer. */
  maxLongBytes: number;
}

export const DEFAULT_PICKLE_LIMITS: PickleLimits = {
  maxString: 256 * 1024 * 1024,
  maxItems: 20_000_000,
  maxMemo: 4_000_000,
  maxMarks: 100_000,
  maxOps: 200_000_000,
  maxLongBytes: 4096,
};

/** What the VM asks of its host for the opcodes that would run Python code. */
export interface Interpreter {
  global(module: string, name: string, offset: number): unknown;
  call(callable: unknown, args: unknown[], offset: number): unknown;
  newobj(cls: unknown, args: unknown[], offset: number): unknown;
  build(obj: unknown, state: unknown, offset: number): void;
  persistentLoad(pid: unknown, offset: number): unknown;
}

export interface PickleOptions {
  interpreter: Interpreter;
  /** File name for messages. */
  path?: string;
  /** File offset of `bytes[0]`, so errors point into the file. */
  baseOffset?: number;
  /** Where to start in `bytes`. */
  start?: number;
  /**
   * `bytes` is only a prefix of the stream: running out throws `PickleNeedMore` instead of
   * E_TRUNCATED so the caller can retry with more bytes.
   */
  isPrefix?: boolean;
  limits?: Partial<PickleLimits>;
}

export interface PickleResult {
  value: unknown;
  /** Index in `bytes` just after STOP. */
  end: number;
  /** Highest PROTO seen (0 when absent). */
  protocol: number;
}

/** Thrown only when `isPrefix` is set and the prefix ended mid-stream. */
export class PickleNeedMore extends Error {
  constructor() {
    super('pickle prefix exhausted');
  }
}

const FORMAT = 'pytorch';
const textDecoder = new TextDecoder('utf-8');

export function unpickle(bytes: Uint8Array, opts: PickleOptions): PickleResult {
  return new Vm(bytes, opts).run();
}

class Vm {
  private pos: number;
  private readonly end: number;
  private readonly base: number;
  private readonly lim: PickleLimits;
  private readonly interp: Interpreter;
  private stack: unknown[] = [];
  private readonly marks: unknown[][] = [];
  private readonly memo = new Map<number, unknown>();
  private items = 0;
  private opStart = 0;
  private protocol = 0;

  constructor(private readonly b: Uint8Array, private readonly opts: PickleOptions) {
    this.pos = opts.start ?? 0;
    this.end = b.byteLength;
    this.base = opts.baseOffset ?? 0;
    this.lim = { ...DEFAULT_PICKLE_LIMITS, ...opts.limits };
    this.interp = opts.interpreter;
  }

  fail(code: ErrorCode, msg: string): never {
    throw new ModelsmithError(code, `pickle: ${msg}`, { format: FORMAT, path: this.opts.path, offset: this.base + this.opStart });
  }

  private need(n: number): void {
    if (n > this.end - this.pos) {
      if (this.opts.isPrefix) throw new PickleNeedMore();
      this.fail(ErrorCodes.TRUNCATED, `opcode needs ${n} more bytes but the pickle ends`);
    }
  }

  private u8(): number {
    this.need(1);
    return this.b[this.pos++]!;
  }
  private u16(): number {
    this.need(2);
    const v = this.b[this.pos]! | (this.b[this.pos + 1]! << 8);
    this.pos += 2;
    return v;
  }
  private u32(): number {
    this.need(4);
    const p = this.pos;
    const v = (this.b[p]! | (this.b[p + 1]! << 8) | (this.b[p + 2]! << 16)) + this.b[p + 3]! * 0x1000000;
    this.pos += 4;
    return v;
  }
  private i32(): number {
    const v = this.u32();
    return v >= 0x80000000 ? v - 0x100000000 : v;
  }
  private u64(): number {
    const lo = this.u32();
    const hi = this.u32();
    // Anything ≥ 2^53 is far past every cap; report it as such rather than losing precision.
    return hi >= 0x200000 ? Number.MAX_SAFE_INTEGER : hi * 0x100000000 + lo;
  }
  private take(n: number, what: string): Uint8Array {
    if (n > this.lim.maxString) this.fail(ErrorCodes.LIMIT, `${what} of ${n} bytes exceeds the ${this.lim.maxString}-byte cap`);
    this.need(n);
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  private line(): string {
    // Text opcodes (protocol 0) end at '\n'; cap the search so a newline-free blob is not scanned twice.
    const max = Math.min(this.end, this.pos + 1024 * 1024);
    let i = this.pos;
    while (i < max && this.b[i] !== 0x0a) i++;
    if (i >= max) {
      if (max === this.end) this.need(max - this.pos + 1);
      this.fail(ErrorCodes.LIMIT, 'text opcode argument longer than 1 MiB');
    }
    const s = latin1(this.b.subarray(this.pos, i));
    this.pos = i + 1;
    return s;
  }

  private push(v: unknown): void {
    if (++this.items > this.lim.maxItems) this.fail(ErrorCodes.LIMIT, `more than ${this.lim.maxItems} values`);
    this.stack.push(v);
  }
  private pop(): unknown {
    if (this.stack.length === 0) this.fail(ErrorCodes.MALFORMED, 'stack underflow');
    return this.stack.pop();
  }
  private top(): unknown {
    if (this.stack.length === 0) this.fail(ErrorCodes.MALFORMED, 'stack underflow');
    return this.stack[this.stack.length - 1];
  }
  private popMark(): unknown[] {
    const items = this.stack;
    const prev = this.marks.pop();
    if (prev === undefined) this.fail(ErrorCodes.MALFORMED, 'no MARK on the stack');
    this.stack = prev;
    return items;
  }
  private memoPut(idx: number, v: unknown): void {
    if (!this.memo.has(idx) && this.memo.size >= this.lim.maxMemo) this.fail(ErrorCodes.LIMIT, `memo exceeds ${this.lim.maxMemo} entries`);
    this.memo.set(idx, v);
  }
  private memoGet(idx: number): unknown {
    if (!this.memo.has(idx)) this.fail(ErrorCodes.MALFORMED, `memo entry ${idx} was never stored`);
    return this.memo.get(idx);
  }
  private countItems(n: number): void {
    this.items += n;
    if (this.items > this.lim.maxItems) this.fail(ErrorCodes.LIMIT, `more than ${this.lim.maxItems} values`);
  }

  run(): PickleResult {
    let ops = 0;
    for (;;) {
      if (++ops > this.lim.maxOps) this.fail(ErrorCodes.LIMIT, `more than ${this.lim.maxOps} opcodes`);
      this.opStart = this.pos;
      const op = this.u8();
      switch (op) {
        case 0x80: { // PROTO
          const p = this.u8();
          if (p > 5) this.fail(ErrorCodes.UNSUPPORTED, `pickle protocol ${p} (only 0-5 exist)`);
          this.protocol = Math.max(this.protocol, p);
          break;
        }
        case 0x95: { // FRAME: framing is only a read-ahead hint; the opcodes inside are ordinary
          const n = this.u64();
          if (n > this.end - this.pos && !this.opts.isPrefix) this.fail(ErrorCodes.TRUNCATED, `frame of ${n} bytes runs past the end`);
          break;
        }
        case 0x2e: { // STOP
          if (this.marks.length) this.fail(ErrorCodes.MALFORMED, 'STOP inside an unclosed MARK');
          const value = this.pop();
          return { value, end: this.pos, protocol: this.protocol };
        }
        case 0x28: // MARK
          if (this.marks.length >= this.lim.maxMarks) this.fail(ErrorCodes.LIMIT, `more than ${this.lim.maxMarks} nested MARKs`);
          this.marks.push(this.stack);
          this.stack = [];
          break;
        case 0x30: this.pop(); break; // POP
        case 0x31: this.popMark(); break; // POP_MARK
        case 0x32: this.push(this.top()); break; // DUP
        case 0x4e: this.push(null); break; // NONE
        case 0x88: this.push(true); break;
        case 0x89: this.push(false); break;
        case 0x4a: this.push(this.i32()); break; // BININT
        case 0x4b: this.push(this.u8()); break; // BININT1
        case 0x4d: this.push(this.u16()); break; // BININT2
        case 0x8a: this.push(this.long(this.u8())); break; // LONG1
        case 0x8b: { // LONG4
          const n = this.i32();
          if (n < 0) this.fail(ErrorCodes.MALFORMED, 'negative LONG4 length');
          this.push(this.long(n));
          break;
        }
        case 0x49: this.push(parseIntText(this.line(), this)); break; // INT
        case 0x4c: this.push(parseIntText(this.line().replace(/L$/, ''), this)); break; // LONG
        case 0x46: { // FLOAT
          const s = this.line();
          const v = Number(s);
          if (Number.isNaN(v) && !/nan/i.test(s)) this.fail(ErrorCodes.MALFORMED, `bad FLOAT '${s.slice(0, 40)}'`);
          this.push(v);
          break;
        }
        case 0x47: { // BINFLOAT: big-endian double
          const raw = this.take(8, 'BINFLOAT');
          this.push(new DataView(raw.buffer, raw.byteOffset, 8).getFloat64(0, false));
          break;
        }
        case 0x53: this.push(decodeQuoted(this.line(), this)); break; // STRING
        case 0x54: { // BINSTRING (python 2 str: bytes read as latin-1, as Python 3 does by default for torch)
          const n = this.i32();
          if (n < 0) this.fail(ErrorCodes.MALFORMED, 'negative BINSTRING length');
          this.push(latin1(this.take(n, 'BINSTRING')));
          break;
        }
        case 0x55: this.push(latin1(this.take(this.u8(), 'SHORT_BINSTRING'))); break;
        case 0x42: this.push(new PyBytes(this.take(this.u32(), 'BINBYTES').slice())); break;
        case 0x43: this.push(new PyBytes(this.take(this.u8(), 'SHORT_BINBYTES').slice())); break;
        case 0x8e: this.push(new PyBytes(this.take(this.u64(), 'BINBYTES8').slice())); break;
        case 0x96: this.push(new PyBytes(this.take(this.u64(), 'BYTEARRAY8').slice())); break;
        case 0x56: this.push(decodeRawUnicodeEscape(this.line())); break; // UNICODE
        case 0x58: this.push(utf8(this.take(this.u32(), 'BINUNICODE'))); break;
        case 0x8c: this.push(utf8(this.take(this.u8(), 'SHORT_BINUNICODE'))); break;
        case 0x8d: this.push(utf8(this.take(this.u64(), 'BINUNICODE8'))); break;
        case 0x5d: this.push([]); break; // EMPTY_LIST
        case 0x61: { // APPEND
          const v = this.pop();
          this.append(this.top(), [v]);
          break;
        }
        case 0x65: { // APPENDS
          const items = this.popMark();
          this.append(this.top(), items);
          break;
        }
        case 0x6c: this.push(this.popMark()); break; // LIST
        case 0x29: this.push(new PyTuple([])); break; // EMPTY_TUPLE
        case 0x74: this.push(new PyTuple(this.popMark())); break; // TUPLE
        case 0x85: { // TUPLE1
          const a = this.pop();
          this.push(new PyTuple([a]));
          break;
        }
        case 0x86: { // TUPLE2
          const b = this.pop();
          const a = this.pop();
          this.push(new PyTuple([a, b]));
          break;
        }
        case 0x87: { // TUPLE3
          const c = this.pop();
          const b = this.pop();
          const a = this.pop();
          this.push(new PyTuple([a, b, c]));
          break;
        }
        case 0x7d: this.push(new PyDict()); break; // EMPTY_DICT
        case 0x64: { // DICT
          const items = this.popMark();
          const d = new PyDict();
          this.setItems(d, items);
          this.push(d);
          break;
        }
        case 0x73: { // SETITEM
          const v = this.pop();
          const k = this.pop();
          this.setItems(this.top(), [k, v]);
          break;
        }
        case 0x75: { // SETITEMS
          const items = this.popMark();
          this.setItems(this.top(), items);
          break;
        }
        case 0x8f: this.push(new PySet([], false)); break; // EMPTY_SET
        case 0x90: { // ADDITEMS
          const items = this.popMark();
          const s = this.top();
          if (!(s instanceof PySet) || s.frozen) this.fail(ErrorCodes.MALFORMED, 'ADDITEMS on something that is not a set');
          this.countItems(items.length);
          for (const x of items) s.items.push(x);
          break;
        }
        case 0x91: this.push(new PySet(this.popMark(), true)); break; // FROZENSET
        case 0x67: this.push(this.memoGet(parseIndex(this.line(), this))); break; // GET
        case 0x68: this.push(this.memoGet(this.u8())); break; // BINGET
        case 0x6a: this.push(this.memoGet(this.u32())); break; // LONG_BINGET
        case 0x70: this.memoPut(parseIndex(this.line(), this), this.top()); break; // PUT
        case 0x71: this.memoPut(this.u8(), this.top()); break; // BINPUT
        case 0x72: this.memoPut(this.u32(), this.top()); break; // LONG_BINPUT
        case 0x94: this.memoPut(this.memo.size, this.top()); break; // MEMOIZE
        case 0x63: { // GLOBAL
          const module = this.line();
          const name = this.line();
          this.push(this.interp.global(module, name, this.base + this.opStart));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== 'string' || typeof name !== 'string') this.fail(ErrorCodes.MALFORMED, 'STACK_GLOBAL needs two strings');
          this.push(this.interp.global(module, name, this.base + this.opStart));
          break;
        }
        case 0x52: { // REDUCE
          const args = this.pop();
          const fn = this.pop();
          if (!(args instanceof PyTuple)) this.fail(ErrorCodes.MALFORMED, 'REDUCE arguments are not a tuple');
          this.push(this.interp.call(fn, args.items, this.base + this.opStart));
          break;
        }
        case 0x81: { // NEWOBJ
          const args = this.pop();
          const cls = this.pop();
          if (!(args instanceof PyTuple)) this.fail(ErrorCodes.MALFORMED, 'NEWOBJ arguments are not a tuple');
          this.push(this.interp.newobj(cls, args.items, this.base + this.opStart));
          break;
        }
        case 0x92: { // NEWOBJ_EX (kwargs are kept on the placeholder, never applied)
          const kwargs = this.pop();
          const args = this.pop();
          const cls = this.pop();
          if (!(args instanceof PyTuple) || !(kwargs instanceof PyDict)) this.fail(ErrorCodes.MALFORMED, 'NEWOBJ_EX needs a tuple and a dict');
          this.push(this.interp.newobj(cls, kwargs.map.size ? [...args.items, kwargs] : args.items, this.base + this.opStart));
          break;
        }
        case 0x62: { // BUILD
          const state = this.pop();
          this.interp.build(this.top(), state, this.base + this.opStart);
          break;
        }
        case 0x69: { // INST: protocol 0 class instantiation
          const module = this.line();
          const name = this.line();
          const args = this.popMark();
          const cls = this.interp.global(module, name, this.base + this.opStart);
          this.push(this.interp.newobj(cls, args, this.base + this.opStart));
          break;
        }
        case 0x6f: { // OBJ
          const items = this.popMark();
          if (items.length === 0) this.fail(ErrorCodes.MALFORMED, 'OBJ without a class');
          this.push(this.interp.newobj(items[0], items.slice(1), this.base + this.opStart));
          break;
        }
        case 0x50: this.push(this.interp.persistentLoad(this.line(), this.base + this.opStart)); break; // PERSID
        case 0x51: this.push(this.interp.persistentLoad(this.pop(), this.base + this.opStart)); break; // BINPERSID
        case 0x82: case 0x83: case 0x84: // EXT1/2/4: the copyreg extension registry is process state we do not have
          this.fail(ErrorCodes.UNSUPPORTED, 'pickle extension codes (EXT1/2/4)');
          break;
        case 0x97: case 0x98: // NEXT_BUFFER / READONLY_BUFFER
          this.fail(ErrorCodes.UNSUPPORTED, 'out-of-band pickle buffers');
          break;
        default:
          this.fail(ErrorCodes.MALFORMED, `unknown opcode 0x${op.toString(16).padStart(2, '0')}`);
      }
    }
  }

  private long(n: number): number | bigint {
    if (n > this.lim.maxLongBytes) this.fail(ErrorCodes.LIMIT, `integer of ${n} bytes exceeds the ${this.lim.maxLongBytes}-byte cap`);
    const raw = this.take(n, 'LONG');
    if (n === 0) return 0;
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(raw[i]!);
    if (raw[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
    return normInt(v);
  }

  private append(target: unknown, items: unknown[]): void {
    this.countItems(items.length);
    if (Array.isArray(target)) {
      for (const x of items) target.push(x);
    } else if (target instanceof PyObject) {
      const list = (target.listItems ??= []);
      for (const x of items) list.push(x);
    } else {
      this.fail(ErrorCodes.MALFORMED, 'APPEND on something that is not a list');
    }
  }

  private setItems(target: unknown, items: unknown[]): void {
    if (items.length % 2) this.fail(ErrorCodes.MALFORMED, 'SETITEMS with an odd number of values');
    this.countItems(items.length / 2);
    const map = target instanceof PyDict ? target.map : target instanceof PyObject ? (target.dictItems ??= new Map()) : undefined;
    if (!map) this.fail(ErrorCodes.MALFORMED, 'SETITEM on something that is not a dict');
    for (let i = 0; i < items.length; i += 2) map.set(items[i], items[i + 1]);
  }
}

/** Python ints as JS numbers when exact, bigint otherwise. */
export function normInt(v: bigint): number | bigint {
  return v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v;
}

/** UTF-8 decode with a fast path for the short ASCII keys state_dicts are made of (TextDecoder has a high per-call cost). */
function utf8(b: Uint8Array): string {
  if (b.length <= 64) {
    let s = '';
    for (let i = 0; i < b.length; i++) {
      const c = b[i]!;
      if (c >= 0x80) return textDecoder.decode(b);
      s += String.fromCharCode(c);
    }
    return s;
  }
  return textDecoder.decode(b);
}

function latin1(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
  return s;
}

interface Failer {
  fail(code: ErrorCode, msg: string): never;
}

function parseIntText(s: string, vm: Failer): number | bigint | boolean {
  // Protocol 0 spells True/False as INT 01/00.
  if (s === '01') return true;
  if (s === '00') return false;
  if (!/^[+-]?\d{1,4000}$/.test(s)) vm.fail(ErrorCodes.MALFORMED, `bad INT '${s.slice(0, 40)}'`);
  return normInt(BigInt(s));
}

function parseIndex(s: string, vm: Failer): number {
  if (!/^\d{1,10}$/.test(s)) vm.fail(ErrorCodes.MALFORMED, `bad memo index '${s.slice(0, 40)}'`);
  return Number(s);
}

/** STRING argument: a Python repr with single or double quotes and backslash escapes. */
function decodeQuoted(s: string, vm: Failer): string {
  const q = s[0];
  if (s.length < 2 || (q !== "'" && q !== '"') || s[s.length - 1] !== q) vm.fail(ErrorCodes.MALFORMED, 'STRING argument is not quoted');
  const body = s.slice(1, -1);
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== '\\' || i + 1 >= body.length) {
      out += c;
      continue;
    }
    const e = body[++i]!;
    const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', a: '\x07', b: '\b', f: '\f', v: '\v', '0': '\0' };
    if (e === 'x' && /^[0-9a-fA-F]{2}$/.test(body.slice(i + 1, i + 3))) {
      out += String.fromCharCode(parseInt(body.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (simple[e] !== undefined) {
      out += simple[e];
    } else {
      out += '\\' + e;
    }
  }
  return out;
}

function decodeRawUnicodeEscape(s: string): string {
  return s.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, a: string | undefined, b: string | undefined) => {
    const cp = parseInt((a ?? b)!, 16);
    return cp <= 0x10ffff ? String.fromCodePoint(cp) : '\ufffd';
  });
}
