/**
 * Pre-decode structural scan of untrusted protobuf bytes against a schema, run before `fromBinary`.
 * Like the ONNX scanner (formats/onnx/wire.ts) it bounds nesting depth and the estimated heap the
 * decoded message would take, and reports truncation and bad wire types with byte offsets; unlike it,
 * it also descends into map values, which TF graphs are full of (NodeDef.attr, FunctionDef.ret,
 * SignatureDef.inputs …) and which a hostile file could otherwise use to nest or inflate freely.
 */
import { ScalarType, type DescField, type DescMessage } from '@bufbuild/protobuf';
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';

const WT_VARINT = 0;
const WT_FIXED64 = 1;
const WT_LEN = 2;
const WT_START_GROUP = 3;
const WT_END_GROUP = 4;
const WT_FIXED32 = 5;

export interface ScanLimits {
  /** Message nesting depth; protobuf's own default recursion limit is 100. */
  maxDepth: number;
  /** Cap on the estimated JS heap of the decoded message, in bytes. */
  maxHeapEstimate: number;
}

export const DEFAULT_LIMITS: ScanLimits = { maxDepth: 100, maxHeapEstimate: 1536 * 2 ** 20 };

interface Rule {
  name: string;
  wire: number;
  /** A length-delimited record may also hold packed scalars (repeated numeric fields). */
  packable: boolean;
  message?: DescMessage;
  /** Map field: its records are entry messages with key = 1, value = 2. */
  map?: DescField & { fieldKind: 'map' };
  /** Heap estimate per element. */
  cost: number;
}

function wireOf(t: ScalarType): number {
  switch (t) {
    case ScalarType.DOUBLE: case ScalarType.FIXED64: case ScalarType.SFIXED64: return WT_FIXED64;
    case ScalarType.FLOAT: case ScalarType.FIXED32: case ScalarType.SFIXED32: return WT_FIXED32;
    case ScalarType.STRING: case ScalarType.BYTES: return WT_LEN;
    default: return WT_VARINT;
  }
}

function costOf(t: ScalarType): number {
  switch (t) {
    case ScalarType.INT64: case ScalarType.UINT64: case ScalarType.SINT64: case ScalarType.FIXED64: case ScalarType.SFIXED64: return 40; // bigint
    case ScalarType.STRING: return 40;
    case ScalarType.BYTES: return 80; // a Uint8Array view
    default: return 8;
  }
}

function scalarRule(name: string, t: ScalarType, repeated: boolean): Rule {
  const wire = wireOf(t);
  return { name, wire, packable: repeated && wire !== WT_LEN, cost: costOf(t) };
}

const MESSAGE_COST = 160;
const tables = new WeakMap<object, Map<number, Rule>>();

function tableFor(desc: DescMessage): Map<number, Rule> {
  let t = tables.get(desc);
  if (t) return t;
  t = new Map();
  for (const f of desc.fields) {
    const name = `${desc.name}.${f.name}`;
    let r: Rule;
    if (f.fieldKind === 'message' || (f.fieldKind === 'list' && f.listKind === 'message')) r = { name, wire: WT_LEN, packable: false, message: f.message!, cost: MESSAGE_COST };
    else if (f.fieldKind === 'map') r = { name, wire: WT_LEN, packable: false, map: f, cost: MESSAGE_COST };
    else if (f.fieldKind === 'enum' || (f.fieldKind === 'list' && f.listKind === 'enum')) r = scalarRule(name, ScalarType.INT32, f.fieldKind === 'list');
    else r = scalarRule(name, f.scalar as ScalarType, f.fieldKind === 'list');
    t.set(f.number, r);
  }
  tables.set(desc, t);
  return t;
}

function entryTable(map: DescField & { fieldKind: 'map' }): Map<number, Rule> {
  let t = tables.get(map);
  if (t) return t;
  const name = `${map.parent.name}.${map.name}`;
  const value: Rule =
    map.mapKind === 'message' ? { name: `${name}[value]`, wire: WT_LEN, packable: false, message: map.message, cost: MESSAGE_COST }
    : scalarRule(`${name}[value]`, map.mapKind === 'enum' ? ScalarType.INT32 : map.scalar, false);
  t = new Map([[1, scalarRule(`${name}[key]`, map.mapKey, false)], [2, value]]);
  tables.set(map, t);
  return t;
}

/**
 * Walk `bytes` as an encoded `desc` without materialising it. Throws ModelsmithError E_TRUNCATED,
 * E_MALFORMED (bad tag, wire type, varint, overrun of the enclosing message) or E_LIMIT.
 */
export function scanProto(bytes: Uint8Array, desc: DescMessage, ctx: { path?: string; format: string }, limits: ScanLimits = DEFAULT_LIMITS): { heapEstimate: number } {
  const total = bytes.length;
  const fail = (code: typeof ErrorCodes.TRUNCATED | typeof ErrorCodes.MALFORMED | typeof ErrorCodes.LIMIT, msg: string, offset: number): never => {
    throw new ModelsmithError(code, msg, { format: ctx.format, ...(ctx.path !== undefined ? { path: ctx.path } : {}), offset });
  };
  const overrun = (what: string, at: number, end: number): never =>
    end >= total ? fail(ErrorCodes.TRUNCATED, `${what} runs past the end of the data`, at) : fail(ErrorCodes.MALFORMED, `${what} overruns its enclosing message`, at);
  let heap = 0;
  const addHeap = (n: number, at: number): void => {
    heap += n;
    if (heap > limits.maxHeapEstimate) fail(ErrorCodes.LIMIT, `decoding would need more than ${Math.round(limits.maxHeapEstimate / 2 ** 20)} MiB of memory`, at);
  };
  let pos = 0;
  const varint = (end: number, maxBytes: number, what: string): number => {
    const start = pos;
    let value = 0;
    let mul = 1;
    for (let i = 0; ; i++) {
      if (pos >= end) return overrun(what, start, end);
      if (i >= maxBytes) return fail(ErrorCodes.MALFORMED, `${what}: varint longer than ${maxBytes} bytes`, start);
      const b = bytes[pos++]!;
      if (i < 7) value += (b & 0x7f) * mul;
      mul *= 128;
      if (b < 0x80) return value;
    }
  };
  const skipFixed = (n: number, end: number, what: string, at: number): void => {
    if (pos + n > end) overrun(what, at, end);
    pos += n;
  };

  interface Frame { table: Map<number, Rule> | undefined; end: number; group: number }
  const stack: Frame[] = [{ table: tableFor(desc), end: total, group: -1 }];
  addHeap(MESSAGE_COST, 0);
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    if (pos >= frame.end) {
      if (frame.group >= 0) overrun(`group ${frame.group}`, pos, frame.end);
      stack.pop();
      continue;
    }
    const at = pos;
    const tag = varint(frame.end, 5, 'field tag');
    const fieldNo = Math.floor(tag / 8);
    const wt = tag % 8;
    if (fieldNo === 0) fail(ErrorCodes.MALFORMED, 'invalid field number 0', at);
    if (wt === WT_END_GROUP) {
      if (frame.group !== fieldNo) fail(ErrorCodes.MALFORMED, 'unexpected end-group tag', at);
      stack.pop();
      continue;
    }
    const rule = frame.table?.get(fieldNo);
    const name = rule?.name ?? `field ${fieldNo}`;
    const push = (table: Map<number, Rule> | undefined, end: number, group: number): void => {
      if (stack.length >= limits.maxDepth) fail(ErrorCodes.LIMIT, `message nesting deeper than ${limits.maxDepth} (at ${name})`, at);
      stack.push({ table, end, group });
    };
    if (!rule) {
      // Unknown fields are skipped (and kept by the decoder), whatever their wire type.
      addHeap(96, at);
      switch (wt) {
        case WT_VARINT: varint(frame.end, 10, name); break;
        case WT_FIXED64: skipFixed(8, frame.end, name, at); break;
        case WT_FIXED32: skipFixed(4, frame.end, name, at); break;
        case WT_LEN: {
          const len = varint(frame.end, 5, `length of ${name}`);
          skipFixed(len, frame.end, `${name} (${len} bytes)`, at);
          break;
        }
        case WT_START_GROUP: push(undefined, frame.end, fieldNo); break;
        default: fail(ErrorCodes.MALFORMED, `invalid wire type ${wt} for ${name}`, at);
      }
      continue;
    }
    if (rule.message || rule.map) {
      if (wt !== WT_LEN) fail(ErrorCodes.MALFORMED, `${name} has wire type ${wt}, expected 2`, at);
      const len = varint(frame.end, 5, `length of ${name}`);
      if (pos + len > frame.end) overrun(`${name} (${len} bytes)`, at, frame.end);
      addHeap(rule.cost, at);
      push(rule.message ? tableFor(rule.message) : entryTable(rule.map!), pos + len, -1);
      continue;
    }
    if (wt === WT_LEN && (rule.wire === WT_LEN || rule.packable)) {
      const len = varint(frame.end, 5, `length of ${name}`);
      const start = pos;
      skipFixed(len, frame.end, `${name} (${len} bytes)`, at);
      if (rule.wire === WT_LEN) addHeap(rule.cost + 2 * len, at);
      else if (rule.wire === WT_FIXED32 || rule.wire === WT_FIXED64) {
        const w = rule.wire === WT_FIXED32 ? 4 : 8;
        if (len % w !== 0) fail(ErrorCodes.MALFORMED, `packed ${name}: ${len} bytes is not a multiple of ${w}`, at);
        addHeap((len / w) * rule.cost, at);
      } else {
        let count = 0;
        let run = 0;
        for (let i = start; i < pos; i++) {
          if (bytes[i]! < 0x80) {
            count++;
            run = 0;
          } else if (++run >= 10) fail(ErrorCodes.MALFORMED, `packed ${name}: varint longer than 10 bytes`, i);
        }
        if (len > 0 && bytes[pos - 1]! >= 0x80) fail(ErrorCodes.MALFORMED, `packed ${name}: last varint is unterminated`, pos - 1);
        addHeap(count * rule.cost, at);
      }
      continue;
    }
    if (wt !== rule.wire) fail(ErrorCodes.MALFORMED, `${name} has wire type ${wt}, expected ${rule.wire}`, at);
    if (wt === WT_VARINT) varint(frame.end, 10, name);
    else skipFixed(wt === WT_FIXED64 ? 8 : 4, frame.end, name, at);
    addHeap(rule.cost, at);
  }
  return { heapEstimate: heap };
}
