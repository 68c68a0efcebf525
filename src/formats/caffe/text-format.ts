/**
 * Protobuf text format (Caffe .prototxt, TF .pbtxt) parsed against any generated message schema
 * through the @bufbuild/protobuf reflection API.
 *
 * Why our own parser: @bufbuild/protobuf 2.17 has `fromText` (txtpb), but it rejects unknown fields
 * (every Caffe fork adds some: SSD, SegNet, PSPNet…), and its errors carry no line/column. Here
 * unknown fields and `[extension]` blocks are skipped and reported as diagnostics, and every error is
 * an E_MALFORMED that says `line:column`.
 *
 * Untrusted input: nesting is capped (no recursion deeper than `maxDepth`), numbers are range-checked
 * for their field type, and everything allocated is proportional to the text length.
 */
import { ScalarType, type DescEnum, type DescField, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { reflect, type ReflectMessage } from '@bufbuild/protobuf/reflect';
import { ErrorCodes, ModelsmithError, type Diagnostic } from '../../core/errors.js';

export interface TextFormatOptions {
  /** File name for messages. */
  path?: string;
  /** Format name for errors ("caffe", "tf"). */
  format?: string;
  /** Maximum message nesting (protobuf's default recursion limit is 100). */
  maxDepth?: number;
  /**
   * Called for an enum field whose value is a string literal or an unknown identifier; return the
   * number to use, or undefined to fail. Caffe uses it for V1 files that write `type: "Convolution"`.
   */
  enumAlias?: (e: DescEnum, text: string) => number | undefined;
}

export interface TextFormatResult<T> {
  message: T;
  diagnostics: Diagnostic[];
}

type TokKind = 'ident' | 'number' | 'string' | 'punct' | 'eof';
interface Token {
  kind: TokKind;
  /** Source text (for strings: the decoded bytes live in `bytes`). */
  text: string;
  bytes?: Uint8Array;
  line: number;
  col: number;
}

const DEFAULT_MAX_DEPTH = 100;

/** Parse `text` as a `desc` message. Throws ModelsmithError(E_MALFORMED | E_LIMIT) with line:column. */
export function parseTextFormat<Desc extends DescMessage>(desc: Desc, text: string, opts: TextFormatOptions = {}): TextFormatResult<MessageShape<Desc>> {
  const p = new Parser(text, opts);
  const root = reflect(desc);
  p.parseBody(root, 'eof', 1);
  return { message: root.message as MessageShape<Desc>, diagnostics: p.diagnostics() };
}

class Parser {
  private pos = 0;
  private line = 1;
  private lineStart = 0;
  private peeked: Token | undefined;
  private readonly maxDepth: number;
  private readonly unknown = new Map<string, { count: number; first: string }>();
  private readonly repeatedSingular = new Map<string, number>();

  constructor(private readonly src: string, private readonly opts: TextFormatOptions) {
    this.maxDepth = Math.max(1, Math.min(opts.maxDepth ?? DEFAULT_MAX_DEPTH, 1000));
  }

  diagnostics(): Diagnostic[] {
    const out: Diagnostic[] = [];
    for (const [name, u] of this.unknown) {
      out.push({ level: 'info', code: 'textformat.unknown_field', message: `unknown field '${name}' skipped ${u.count} time(s) (first at ${u.first})` });
    }
    for (const [name, n] of this.repeatedSingular) {
      out.push({ level: 'warning', code: 'textformat.repeated_singular', message: `singular field '${name}' given ${n + 1} times; the last value wins` });
    }
    return out;
  }

  // ---------------------------------------------------------------------------------------------
  // Errors
  // ---------------------------------------------------------------------------------------------

  fail(tok: { line: number; col: number }, msg: string, code: typeof ErrorCodes.MALFORMED | typeof ErrorCodes.LIMIT = ErrorCodes.MALFORMED): never {
    const ctx: { format: string; path?: string } = { format: this.opts.format ?? 'protobuf-text' };
    if (this.opts.path !== undefined) ctx.path = this.opts.path;
    throw new ModelsmithError(code, `${tok.line}:${tok.col}: ${msg}`, ctx);
  }

  // ---------------------------------------------------------------------------------------------
  // Lexer
  // ---------------------------------------------------------------------------------------------

  private skipSpace(): void {
    const s = this.src;
    while (this.pos < s.length) {
      const c = s.charCodeAt(this.pos);
      if (c === 10) {
        this.pos++;
        this.line++;
        this.lineStart = this.pos;
      } else if (c === 32 || c === 9 || c === 13 || c === 11 || c === 12) {
        this.pos++;
      } else if (c === 35) {
        // '#' comment to end of line
        while (this.pos < s.length && s.charCodeAt(this.pos) !== 10) this.pos++;
      } else {
        break;
      }
    }
  }

  private lex(): Token {
    this.skipSpace();
    const s = this.src;
    const line = this.line;
    const col = this.pos - this.lineStart + 1;
    if (this.pos >= s.length) return { kind: 'eof', text: '', line, col };
    const c = s[this.pos]!;
    if (/[A-Za-z_]/.test(c)) {
      const start = this.pos;
      while (this.pos < s.length && /[A-Za-z0-9_]/.test(s[this.pos]!)) this.pos++;
      return { kind: 'ident', text: s.slice(start, this.pos), line, col };
    }
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(s[this.pos + 1] ?? ''))) {
      const start = this.pos;
      while (this.pos < s.length) {
        const d = s[this.pos]!;
        if (/[A-Za-z0-9_.]/.test(d)) {
          this.pos++;
        } else if ((d === '+' || d === '-') && /[eE]/.test(s[this.pos - 1]!) && !/^0[xX]/.test(s.slice(start, start + 2))) {
          this.pos++;
        } else {
          break;
        }
      }
      return { kind: 'number', text: s.slice(start, this.pos), line, col };
    }
    if (c === '"' || c === "'") return this.lexString(line, col);
    this.pos++;
    if ('{}<>[]:,;-/.'.includes(c)) return { kind: 'punct', text: c, line, col };
    return this.fail({ line, col }, `unexpected character ${JSON.stringify(c)}`);
  }

  private lexString(line: number, col: number): Token {
    const s = this.src;
    const quote = s[this.pos++]!;
    const out: number[] = [];
    const enc = new TextEncoder();
    const pushCodePoint = (cp: number, at: { line: number; col: number }): void => {
      if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) this.fail(at, `invalid Unicode escape U+${cp.toString(16)}`);
      for (const b of enc.encode(String.fromCodePoint(cp))) out.push(b);
    };
    const start = this.pos;
    for (;;) {
      if (this.pos >= s.length) this.fail({ line, col }, 'unterminated string');
      const ch = s[this.pos]!;
      if (ch === '\n') this.fail({ line, col }, 'unterminated string (newline inside a string literal)');
      if (ch === quote) {
        this.pos++;
        break;
      }
      if (ch !== '\\') {
        const cp = s.codePointAt(this.pos)!;
        this.pos += cp > 0xffff ? 2 : 1;
        if (cp < 0x80) out.push(cp);
        else for (const b of enc.encode(String.fromCodePoint(cp))) out.push(b);
        continue;
      }
      const at = { line, col: this.pos - this.lineStart + 1 };
      const e = s[this.pos + 1];
      if (e === undefined) this.fail(at, 'unterminated escape');
      this.pos += 2;
      switch (e) {
        case 'n': out.push(10); break;
        case 't': out.push(9); break;
        case 'r': out.push(13); break;
        case 'a': out.push(7); break;
        case 'b': out.push(8); break;
        case 'f': out.push(12); break;
        case 'v': out.push(11); break;
        case '?': out.push(63); break;
        case '\\': out.push(92); break;
        case "'": out.push(39); break;
        case '"': out.push(34); break;
        case 'x':
        case 'X': {
          let h = '';
          while (h.length < 2 && /[0-9a-fA-F]/.test(s[this.pos] ?? '')) h += s[this.pos++];
          if (h.length === 0) this.fail(at, '\\x escape without hex digits');
          out.push(parseInt(h, 16));
          break;
        }
        case 'u':
        case 'U': {
          const n = e === 'u' ? 4 : 8;
          const h = s.slice(this.pos, this.pos + n);
          if (h.length !== n || !/^[0-9a-fA-F]+$/.test(h)) this.fail(at, `\\${e} escape needs ${n} hex digits`);
          this.pos += n;
          pushCodePoint(parseInt(h, 16), at);
          break;
        }
        default:
          if (/[0-7]/.test(e)) {
            let o = e;
            while (o.length < 3 && /[0-7]/.test(s[this.pos] ?? '')) o += s[this.pos++];
            const v = parseInt(o, 8);
            if (v > 255) this.fail(at, `octal escape \\${o} is larger than a byte`);
            out.push(v);
          } else {
            this.fail(at, `unknown escape \\${e}`);
          }
      }
    }
    return { kind: 'string', text: s.slice(start, this.pos - 1), bytes: Uint8Array.from(out), line, col };
  }

  private peek(): Token {
    if (!this.peeked) this.peeked = this.lex();
    return this.peeked;
  }

  private next(): Token {
    const t = this.peek();
    this.peeked = undefined;
    return t;
  }

  private tryPunct(p: string): boolean {
    const t = this.peek();
    if (t.kind === 'punct' && t.text === p) {
      this.next();
      return true;
    }
    return false;
  }

  private expectPunct(p: string, what: string): Token {
    const t = this.next();
    if (t.kind !== 'punct' || t.text !== p) this.fail(t, `expected "${p}" ${what}, got ${describe(t)}`);
    return t;
  }

  // ---------------------------------------------------------------------------------------------
  // Parser
  // ---------------------------------------------------------------------------------------------

  /** Fields until `close` ('}' / '>' / end of input). */
  parseBody(msg: ReflectMessage, close: '}' | '>' | 'eof', depth: number): void {
    if (depth > this.maxDepth) this.fail(this.peek(), `message nesting deeper than ${this.maxDepth}`, ErrorCodes.LIMIT);
    const seen = new Set<number>();
    for (;;) {
      const t = this.peek();
      if (close === 'eof' ? t.kind === 'eof' : t.kind === 'punct' && t.text === close) {
        this.next();
        return;
      }
      if (t.kind === 'eof') this.fail(t, `unexpected end of input, expected "${close}"`);
      this.parseField(msg, depth, seen);
      // Optional separator after a field.
      if (!this.tryPunct(',')) this.tryPunct(';');
    }
  }

  private parseField(msg: ReflectMessage, depth: number, seen: Set<number>): void {
    const nameTok = this.next();
    if (nameTok.kind === 'punct' && nameTok.text === '[') {
      // Extension or Any type URL: we have no registry, so skip the whole value.
      let name = '';
      for (;;) {
        const t = this.next();
        if (t.kind === 'eof') this.fail(t, 'unterminated [extension] name');
        if (t.kind === 'punct' && t.text === ']') break;
        name += t.text;
      }
      this.noteUnknown(`[${name}]`, nameTok);
      this.skipValue(depth);
      return;
    }
    if (nameTok.kind !== 'ident') this.fail(nameTok, `expected a field name, got ${describe(nameTok)}`);
    const field = msg.desc.fields.find((f) => f.name === nameTok.text) ?? groupField(msg.desc, nameTok.text);
    if (!field) {
      this.noteUnknown(`${msg.desc.name}.${nameTok.text}`, nameTok);
      this.skipValue(depth);
      return;
    }
    const isMessage = field.fieldKind === 'message' || (field.fieldKind === 'list' && field.listKind === 'message') || field.fieldKind === 'map';
    const hasColon = this.tryPunct(':');
    if (!isMessage && !hasColon) this.fail(this.peek(), `expected ":" after field '${field.name}'`);
    // List syntax `name: [a, b]`.
    if (this.tryPunct('[')) {
      if (field.fieldKind !== 'list' && field.fieldKind !== 'map') this.fail(nameTok, `field '${field.name}' is not repeated but is given a list`);
      if (this.tryPunct(']')) return;
      for (;;) {
        this.parseOneValue(msg, field, depth);
        if (this.tryPunct(']')) return;
        this.expectPunct(',', 'or "]" in a list');
      }
    }
    if (field.fieldKind !== 'list' && field.fieldKind !== 'map') {
      if (seen.has(field.number)) {
        const key = `${msg.desc.name}.${field.name}`;
        this.repeatedSingular.set(key, (this.repeatedSingular.get(key) ?? 0) + 1);
      }
      seen.add(field.number);
    }
    this.parseOneValue(msg, field, depth);
  }

  private parseOneValue(msg: ReflectMessage, field: DescField, depth: number): void {
    const at = this.peek();
    try {
      this.setValue(msg, field, depth);
    } catch (e) {
      if (e instanceof ModelsmithError) throw e;
      // The reflection API validates values (ranges, enums); anything it still refuses is bad input.
      this.fail(at, `invalid value for field '${field.name}': ${(e as Error).message}`);
    }
  }

  private setValue(msg: ReflectMessage, field: DescField, depth: number): void {
    switch (field.fieldKind) {
      case 'message': {
        // A singular message given twice is merged, as protobuf does.
        const sub = msg.isSet(field) ? msg.get(field) : reflect(field.message);
        this.parseMessageValue(sub, depth);
        msg.set(field, sub);
        return;
      }
      case 'list': {
        const list = msg.get(field);
        if (field.listKind === 'message') {
          const sub = reflect(field.message);
          this.parseMessageValue(sub, depth);
          list.add(sub);
        } else if (field.listKind === 'enum') {
          list.add(this.parseEnum(field.enum));
        } else {
          list.add(this.parseScalar(field.scalar, field.name));
        }
        return;
      }
      case 'enum':
        msg.set(field, this.parseEnum(field.enum));
        return;
      case 'scalar':
        msg.set(field, this.parseScalar(field.scalar, field.name));
        return;
      case 'map': {
        const open = this.next();
        if (open.kind !== 'punct' || (open.text !== '{' && open.text !== '<')) this.fail(open, `expected "{" for map entry '${field.name}', got ${describe(open)}`);
        if (depth + 1 > this.maxDepth) this.fail(open, `message nesting deeper than ${this.maxDepth}`, ErrorCodes.LIMIT);
        const close = open.text === '{' ? '}' : '>';
        let key: unknown;
        let value: unknown;
        for (;;) {
          const t = this.next();
          if (t.kind === 'punct' && t.text === close) break;
          if (t.kind !== 'ident' || (t.text !== 'key' && t.text !== 'value')) this.fail(t, `expected "key" or "value" in map entry, got ${describe(t)}`);
          if (t.text === 'key') {
            this.expectPunct(':', 'after "key"');
            key = this.parseScalar(field.mapKey, `${field.name}.key`);
          } else if (field.mapKind === 'message') {
            this.tryPunct(':');
            const sub = reflect(field.message);
            this.parseMessageValue(sub, depth + 1);
            value = sub;
          } else {
            this.expectPunct(':', 'after "value"');
            value = field.mapKind === 'enum' ? this.parseEnum(field.enum) : this.parseScalar(field.scalar, `${field.name}.value`);
          }
          if (!this.tryPunct(',')) this.tryPunct(';');
        }
        const map = msg.get(field);
        map.set(key ?? defaultScalar(field.mapKey), value ?? (field.mapKind === 'message' ? reflect(field.message) : field.mapKind === 'enum' ? 0 : defaultScalar(field.scalar)));
        return;
      }
    }
  }

  private parseMessageValue(sub: ReflectMessage, depth: number): void {
    const open = this.next();
    if (open.kind !== 'punct' || (open.text !== '{' && open.text !== '<')) this.fail(open, `expected "{" or "<" to start ${sub.desc.name}, got ${describe(open)}`);
    this.parseBody(sub, open.text === '{' ? '}' : '>', depth + 1);
  }

  private parseEnum(e: DescEnum): number {
    const t = this.next();
    if (t.kind === 'ident') {
      const v = e.values.find((x) => x.name === t.text);
      if (v) return v.number;
      const alias = this.opts.enumAlias?.(e, t.text);
      if (alias !== undefined) return alias;
      return this.fail(t, `unknown value '${t.text}' for enum ${e.name}`);
    }
    if (t.kind === 'string') {
      const alias = this.opts.enumAlias?.(e, new TextDecoder().decode(t.bytes));
      if (alias !== undefined) return alias;
      return this.fail(t, `enum ${e.name} expects an identifier, got the string "${t.text}"`);
    }
    let neg = false;
    let n = t;
    if (t.kind === 'punct' && t.text === '-') {
      neg = true;
      n = this.next();
    }
    if (n.kind === 'number') {
      const v = parseIntText(n.text);
      if (v === undefined) this.fail(n, `invalid enum number '${n.text}'`);
      const num = neg ? -v : v;
      if (num < -(2n ** 31n) || num >= 2n ** 31n) this.fail(n, `enum number ${num} out of int32 range`);
      // proto2 enums are closed: a number the enum does not define is an error, as in protobuf.
      if (e.open === false && !e.values.some((x) => BigInt(x.number) === num)) this.fail(n, `${num} is not a value of enum ${e.name}`);
      return Number(num);
    }
    return this.fail(t, `expected a value of enum ${e.name}, got ${describe(t)}`);
  }

  private parseScalar(type: ScalarType, fieldName: string): unknown {
    const t = this.next();
    if (type === ScalarType.STRING || type === ScalarType.BYTES) {
      if (t.kind !== 'string') this.fail(t, `field '${fieldName}' expects a string, got ${describe(t)}`);
      const parts: Uint8Array[] = [t.bytes!];
      // Adjacent literals concatenate.
      while (this.peek().kind === 'string') parts.push(this.next().bytes!);
      const bytes = concat(parts);
      if (type === ScalarType.BYTES) return bytes;
      try {
        return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
      } catch {
        return this.fail(t, `field '${fieldName}': string is not valid UTF-8`);
      }
    }
    if (type === ScalarType.BOOL) {
      if (t.kind === 'ident' && ['true', 'True', 't'].includes(t.text)) return true;
      if (t.kind === 'ident' && ['false', 'False', 'f'].includes(t.text)) return false;
      if (t.kind === 'number' && (t.text === '1' || t.text === '0')) return t.text === '1';
      return this.fail(t, `field '${fieldName}' expects a bool, got ${describe(t)}`);
    }
    let neg = false;
    let n = t;
    if (t.kind === 'punct' && t.text === '-') {
      neg = true;
      n = this.next();
    }
    if (type === ScalarType.FLOAT || type === ScalarType.DOUBLE) {
      let v: number | undefined;
      if (n.kind === 'ident') {
        const low = n.text.toLowerCase();
        if (low === 'inf' || low === 'infinity') v = Infinity;
        else if (low === 'nan') v = NaN;
      } else if (n.kind === 'number') {
        v = parseFloatText(n.text);
      }
      if (v === undefined) return this.fail(n, `field '${fieldName}' expects a number, got ${describe(n)}`);
      return neg ? -v : v;
    }
    if (n.kind !== 'number') return this.fail(n, `field '${fieldName}' expects an integer, got ${describe(n)}`);
    const big = parseIntText(n.text);
    if (big === undefined) return this.fail(n, `field '${fieldName}' expects an integer, got '${neg ? '-' : ''}${n.text}'`);
    const v = neg ? -big : big;
    const [lo, hi, is64] = intRange(type);
    if (v < lo || v > hi) this.fail(n, `value ${v} out of range for field '${fieldName}'`);
    return is64 ? v : Number(v);
  }

  /** Skip the value of an unknown field: `: scalar`, `: [list]`, `{ ... }` or `: { ... }`. */
  private skipValue(depth: number): void {
    const colon = this.tryPunct(':');
    const t = this.peek();
    if (t.kind === 'punct' && (t.text === '{' || t.text === '<')) {
      this.skipBlock(depth + 1);
      return;
    }
    if (!colon) this.fail(t, `expected ":" or "{" after a field name, got ${describe(t)}`);
    if (t.kind === 'punct' && t.text === '[') {
      this.next();
      if (this.tryPunct(']')) return;
      for (;;) {
        const v = this.peek();
        if (v.kind === 'punct' && (v.text === '{' || v.text === '<')) this.skipBlock(depth + 1);
        else this.skipScalar();
        if (this.tryPunct(']')) return;
        this.expectPunct(',', 'or "]" in a list');
      }
    }
    this.skipScalar();
  }

  private skipScalar(): void {
    let t = this.next();
    if (t.kind === 'punct' && t.text === '-') t = this.next();
    if (t.kind === 'string') {
      while (this.peek().kind === 'string') this.next();
      return;
    }
    if (t.kind !== 'ident' && t.kind !== 'number') this.fail(t, `expected a value, got ${describe(t)}`);
  }

  /** Skip a balanced block iteratively (an unknown block may be deeply nested). */
  private skipBlock(depth: number): void {
    const stack: string[] = [];
    do {
      const t = this.next();
      if (t.kind === 'eof') this.fail(t, 'unexpected end of input inside a block');
      if (t.kind === 'punct' && (t.text === '{' || t.text === '<')) {
        if (depth + stack.length > this.maxDepth) this.fail(t, `message nesting deeper than ${this.maxDepth}`, ErrorCodes.LIMIT);
        stack.push(t.text === '{' ? '}' : '>');
      } else if (t.kind === 'punct' && (t.text === '}' || t.text === '>')) {
        if (stack.pop() !== t.text) this.fail(t, `unbalanced "${t.text}"`);
      }
    } while (stack.length > 0);
  }

  private noteUnknown(name: string, at: Token): void {
    const u = this.unknown.get(name);
    if (u) u.count++;
    else this.unknown.set(name, { count: 1, first: `${at.line}:${at.col}` });
  }
}

/** proto2 groups are addressed by their type name in text format. */
function groupField(desc: DescMessage, name: string): DescField | undefined {
  return desc.fields.find((f) => f.message !== undefined && f.delimitedEncoding && f.message.name === name);
}

function describe(t: Token): string {
  if (t.kind === 'eof') return 'end of input';
  if (t.kind === 'string') return `string "${t.text.slice(0, 40)}"`;
  return `'${t.text.slice(0, 40)}'`;
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

/** Decimal, hex (0x) or octal (leading 0) integer; undefined when the text is not one. */
export function parseIntText(s: string): bigint | undefined {
  if (/^0[xX][0-9a-fA-F]+$/.test(s)) return BigInt(s);
  if (/^0[0-7]+$/.test(s)) return BigInt('0o' + s.slice(1));
  if (/^(0|[1-9][0-9]*)$/.test(s)) return BigInt(s);
  return undefined;
}

/** Float literal with optional exponent and f/F suffix; integers (decimal/hex/octal) too. */
export function parseFloatText(s: string): number | undefined {
  const body = /[fF]$/.test(s) && !/^0[xX]/.test(s) ? s.slice(0, -1) : s;
  if (/^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/.test(body)) return Number(body);
  const i = parseIntText(s);
  return i === undefined ? undefined : Number(i);
}

function intRange(t: ScalarType): [bigint, bigint, boolean] {
  switch (t) {
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return [-(2n ** 31n), 2n ** 31n - 1n, false];
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return [0n, 2n ** 32n - 1n, false];
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return [0n, 2n ** 64n - 1n, true];
    default:
      return [-(2n ** 63n), 2n ** 63n - 1n, true];
  }
}

function defaultScalar(t: ScalarType): unknown {
  switch (t) {
    case ScalarType.STRING: return '';
    case ScalarType.BYTES: return new Uint8Array(0);
    case ScalarType.BOOL: return false;
    case ScalarType.INT64: case ScalarType.UINT64: case ScalarType.SINT64: case ScalarType.FIXED64: case ScalarType.SFIXED64: return 0n;
    default: return 0;
  }
}
