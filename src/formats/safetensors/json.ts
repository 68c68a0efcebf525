/**
 * A strict JSON parser for untrusted safetensors headers and shard indexes.
 *
 * Why not JSON.parse: it rounds integers past 2^53 (the reference validates shapes and offsets in
 * u64, and a shape like [2, 9223372036854775807] must be *detected* as overflowing, not silently
 * rounded), it keeps the last of duplicate keys without saying so, and it reports no byte offsets.
 * The grammar accepted is RFC 8259, the same as serde_json (no comments, no trailing commas, no
 * leading zeros, no raw control characters in strings, no lone surrogates in \u escapes), with
 * serde_json's nesting limit of 128.
 *
 * The input must already be valid UTF-8 (the caller checks that first, because the reference
 * reports non-UTF-8 headers with a different error than bad JSON).
 */

/** A number kept as its source text; integers are converted to BigInt only by the caller that needs one. */
export class JsonNumber {
  constructor(readonly text: string) {}
  /** True for a non-negative integer literal (no sign, fraction or exponent): what serde accepts as usize. */
  get isUnsignedInteger(): boolean {
    return /^[0-9]+$/.test(this.text);
  }
}

export interface JsonEntry {
  value: JsonValue;
  /** Byte offset of the key's opening quote in the parsed bytes. */
  offset: number;
}

/** An object keeps key order (insertion order of the Map) and each key's offset for messages. */
export class JsonObject {
  readonly entries = new Map<string, JsonEntry>();
}

export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | JsonObject;

export class JsonSyntaxError extends Error {
  constructor(message: string, readonly offset: number) {
    super(message);
    this.name = 'JsonSyntaxError';
  }
}

/** serde_json's default recursion limit. */
export const MAX_JSON_DEPTH = 128;

const decoder = new TextDecoder('utf-8');

/** Short ASCII runs (most tensor names and keys) are cheaper to build by hand than through TextDecoder. */
function decodeRun(b: Uint8Array, start: number, end: number): string {
  if (end - start > 64) return decoder.decode(b.subarray(start, end));
  let s = '';
  for (let i = start; i < end; i++) {
    const c = b[i]!;
    if (c >= 0x80) return decoder.decode(b.subarray(start, end));
    s += String.fromCharCode(c);
  }
  return s;
}

export function parseJson(bytes: Uint8Array): JsonValue {
  const p = new Parser(bytes);
  p.skipWs();
  const v = p.value(0);
  p.skipWs();
  if (p.pos !== bytes.length) p.fail('trailing characters after the JSON value');
  return v;
}

class Parser {
  pos = 0;
  constructor(private readonly b: Uint8Array) {}

  fail(message: string, at: number = this.pos): never {
    throw new JsonSyntaxError(message, at);
  }

  skipWs(): void {
    const b = this.b;
    let p = this.pos;
    while (p < b.length) {
      const c = b[p]!;
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      p++;
    }
    this.pos = p;
  }

  value(depth: number): JsonValue {
    if (this.pos >= this.b.length) this.fail('unexpected end of JSON');
    const c = this.b[this.pos]!;
    switch (c) {
      case 0x7b: return this.object(depth + 1);
      case 0x5b: return this.array(depth + 1);
      case 0x22: return this.string();
      case 0x74: return this.literal('true', true);
      case 0x66: return this.literal('false', false);
      case 0x6e: return this.literal('null', null);
      default:
        if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
        return this.fail(`expected a JSON value, found byte 0x${c.toString(16).padStart(2, '0')}`);
    }
  }

  private literal<T>(word: string, v: T): T {
    for (let i = 0; i < word.length; i++) {
      if (this.b[this.pos + i] !== word.charCodeAt(i)) this.fail(`expected '${word}'`);
    }
    this.pos += word.length;
    return v;
  }

  private object(depth: number): JsonObject {
    if (depth > MAX_JSON_DEPTH) this.fail('recursion limit exceeded');
    const obj = new JsonObject();
    this.pos++; // '{'
    this.skipWs();
    if (this.b[this.pos] === 0x7d) {
      this.pos++;
      return obj;
    }
    for (;;) {
      this.skipWs();
      if (this.b[this.pos] !== 0x22) this.fail(this.pos >= this.b.length ? 'unexpected end of JSON' : 'expected a string key');
      const keyAt = this.pos;
      const key = this.string();
      // Duplicate keys are refused outright: the reference's HashMap would keep one silently, and two
      // readers keeping different ones is how polyglot files smuggle tensors past a checker.
      if (obj.entries.has(key)) this.fail(`duplicate key ${JSON.stringify(key)}`, keyAt);
      this.skipWs();
      if (this.b[this.pos] !== 0x3a) this.fail("expected ':'");
      this.pos++;
      this.skipWs();
      const value = this.value(depth);
      obj.entries.set(key, { value, offset: keyAt });
      this.skipWs();
      const c = this.b[this.pos];
      if (c === 0x2c) {
        this.pos++;
        continue;
      }
      if (c === 0x7d) {
        this.pos++;
        return obj;
      }
      this.fail(c === undefined ? 'unexpected end of JSON' : "expected ',' or '}'");
    }
  }

  private array(depth: number): JsonValue[] {
    if (depth > MAX_JSON_DEPTH) this.fail('recursion limit exceeded');
    const out: JsonValue[] = [];
    this.pos++; // '['
    this.skipWs();
    if (this.b[this.pos] === 0x5d) {
      this.pos++;
      return out;
    }
    for (;;) {
      this.skipWs();
      out.push(this.value(depth));
      this.skipWs();
      const c = this.b[this.pos];
      if (c === 0x2c) {
        this.pos++;
        continue;
      }
      if (c === 0x5d) {
        this.pos++;
        return out;
      }
      this.fail(c === undefined ? 'unexpected end of JSON' : "expected ',' or ']'");
    }
  }

  private number(): JsonNumber {
    const b = this.b;
    const start = this.pos;
    let p = start;
    if (b[p] === 0x2d) p++;
    if (b[p] === 0x30) {
      p++;
    } else if (b[p] !== undefined && b[p]! >= 0x31 && b[p]! <= 0x39) {
      while (p < b.length && b[p]! >= 0x30 && b[p]! <= 0x39) p++;
    } else {
      this.fail('invalid number', p);
    }
    if (b[p] === 0x2e) {
      p++;
      const d = p;
      while (p < b.length && b[p]! >= 0x30 && b[p]! <= 0x39) p++;
      if (p === d) this.fail('invalid number: no digit after the decimal point', p);
    }
    if (b[p] === 0x65 || b[p] === 0x45) {
      p++;
      if (b[p] === 0x2b || b[p] === 0x2d) p++;
      const d = p;
      while (p < b.length && b[p]! >= 0x30 && b[p]! <= 0x39) p++;
      if (p === d) this.fail('invalid number: no digit in the exponent', p);
    }
    this.pos = p;
    // ASCII only, so a char-per-byte conversion is exact.
    let text = '';
    for (let i = start; i < p; i++) text += String.fromCharCode(b[i]!);
    return new JsonNumber(text);
  }

  private string(): string {
    const b = this.b;
    this.pos++; // opening quote
    let runStart = this.pos;
    let parts: string[] | undefined;
    for (;;) {
      let p = this.pos;
      // Fast scan to the next quote, backslash or control character.
      while (p < b.length) {
        const c = b[p]!;
        if (c === 0x22 || c === 0x5c || c < 0x20) break;
        p++;
      }
      this.pos = p;
      if (p >= b.length) this.fail('unterminated string');
      const c = b[p]!;
      if (c < 0x20) this.fail('control character in string');
      if (c === 0x22) {
        const tail = decodeRun(b, runStart, p);
        this.pos = p + 1;
        return parts ? parts.join('') + tail : tail;
      }
      // Backslash escape.
      (parts ??= []).push(decodeRun(b, runStart, p));
      parts.push(this.escape());
      runStart = this.pos;
    }
  }

  /** Decodes one escape starting at the backslash; leaves `pos` after it. */
  private escape(): string {
    const b = this.b;
    const at = this.pos;
    const e = b[at + 1];
    this.pos = at + 2;
    switch (e) {
      case 0x22: return '"';
      case 0x5c: return '\\';
      case 0x2f: return '/';
      case 0x62: return '\b';
      case 0x66: return '\f';
      case 0x6e: return '\n';
      case 0x72: return '\r';
      case 0x74: return '\t';
      case 0x75: {
        const hi = this.hex4(at + 2);
        this.pos = at + 6;
        if (hi >= 0xdc00 && hi <= 0xdfff) this.fail('lone trailing surrogate in \\u escape', at);
        if (hi < 0xd800 || hi > 0xdbff) return String.fromCharCode(hi);
        if (b[at + 6] !== 0x5c || b[at + 7] !== 0x75) this.fail('lone leading surrogate in \\u escape', at);
        const lo = this.hex4(at + 8);
        if (lo < 0xdc00 || lo > 0xdfff) this.fail('lone leading surrogate in \\u escape', at);
        this.pos = at + 12;
        return String.fromCharCode(hi, lo);
      }
      default:
        return this.fail('invalid escape', at);
    }
  }

  private hex4(at: number): number {
    let v = 0;
    for (let i = 0; i < 4; i++) {
      const c = this.b[at + i];
      let d: number;
      if (c === undefined) return this.fail('unexpected end of \\u escape', at + i);
      if (c >= 0x30 && c <= 0x39) d = c - 0x30;
      else if (c >= 0x61 && c <= 0x66) d = c - 0x57;
      else if (c >= 0x41 && c <= 0x46) d = c - 0x37;
      else return this.fail('invalid hex digit in \\u escape', at + i);
      v = v * 16 + d;
    }
    return v;
  }
}
