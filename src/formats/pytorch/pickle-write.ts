/**
 * Pickle (protocol 2) encoder for torch state_dicts, restricted to what torch.load(weights_only=True)
 * accepts: GLOBAL (never STACK_GLOBAL), BINUNICODE (never SHORT_BINUNICODE), BINPUT/LONG_BINPUT
 * (never MEMOIZE), no FRAME, ints as BININT1/BININT2/BININT/LONG1.
 *
 * Memoization copies CPython's pickler, which memoizes by object identity: the encoder takes an
 * identity key per value, so the same storage key string, the same class and the constant strings
 * ('storage', 'cpu', 'version') are written once and then fetched with BINGET, exactly where
 * torch.save's pickle does it. This is what makes our data.pkl byte-identical to torch's.
 */

const op = {
  PROTO: 0x80, STOP: 0x2e, MARK: 0x28, GLOBAL: 0x63, REDUCE: 0x52, BUILD: 0x62,
  SETITEM: 0x73, SETITEMS: 0x75, TUPLE: 0x74, TUPLE1: 0x85, TUPLE2: 0x86, TUPLE3: 0x87,
  EMPTY_TUPLE: 0x29, EMPTY_DICT: 0x7d, NEWFALSE: 0x89, NEWTRUE: 0x88,
  BININT: 0x4a, BININT1: 0x4b, BININT2: 0x4d, LONG1: 0x8a, BINFLOAT: 0x47,
  BINUNICODE: 0x58, BINPERSID: 0x51, BINGET: 0x68, LONG_BINGET: 0x6a, BINPUT: 0x71, LONG_BINPUT: 0x72,
} as const;

/** CPython's pickler writes dict items in batches of this many SETITEMS (pickle._BATCHSIZE). */
const BATCH = 1000;

const utf8 = new TextEncoder();

/** Low-level protocol-2 opcode emitter with a CPython-style memo. */
export class PickleEncoder {
  private buf = new Uint8Array(1024);
  private len = 0;
  private readonly memo = new Map<unknown, number>();

  bytes(): Uint8Array {
    return this.buf.slice(0, this.len);
  }

  proto(): void {
    this.byte(op.PROTO);
    this.byte(2);
  }

  stop(): void {
    this.byte(op.STOP);
  }

  mark(): void {
    this.byte(op.MARK);
  }

  /** Emit one opcode byte that takes no argument (REDUCE, BUILD, SETITEM(S), TUPLE*, EMPTY_*, NEWFALSE…). */
  opcode(code: number): void {
    this.byte(code);
  }

  /**
   * If `identity` was memoized, fetch it with BINGET and return true. Otherwise return false and the
   * caller writes the object, then calls `put(identity)`.
   */
  get(identity: unknown): boolean {
    const i = this.memo.get(identity);
    if (i === undefined) return false;
    if (i < 256) {
      this.byte(op.BINGET);
      this.byte(i);
    } else {
      this.byte(op.LONG_BINGET);
      this.u32(i);
    }
    return true;
  }

  /** Memoize the object just written (BINPUT n, or LONG_BINPUT past 255). Fresh objects pass a new {}. */
  put(identity: unknown = {}): void {
    const i = this.memo.size;
    this.memo.set(identity, i);
    if (i < 256) {
      this.byte(op.BINPUT);
      this.byte(i);
    } else {
      this.byte(op.LONG_BINPUT);
      this.u32(i);
    }
  }

  /** GLOBAL "module\nname\n", memoized by its dotted name (a class is one object). */
  global(module: string, name: string): void {
    const id = `global:${module}.${name}`;
    if (this.get(id)) return;
    this.byte(op.GLOBAL);
    this.raw(utf8.encode(`${module}\n${name}\n`));
    this.put(id);
  }

  /** A str, as BINUNICODE + memo. Pass `identity` for strings that are one shared object in torch. */
  str(s: string, identity?: unknown): void {
    if (identity !== undefined && this.get(identity)) return;
    const b = utf8.encode(s);
    this.byte(op.BINUNICODE);
    this.u32(b.byteLength);
    this.raw(b);
    this.put(identity);
  }

  /** A Python int in the smallest encoding CPython's protocol-2 pickler picks. Ints are never memoized. */
  int(v: number | bigint): void {
    const n = typeof v === 'bigint' ? v : BigInt(v);
    if (n >= 0n && n <= 0xffn) {
      this.byte(op.BININT1);
      this.byte(Number(n));
    } else if (n >= 0n && n <= 0xffffn) {
      this.byte(op.BININT2);
      this.byte(Number(n) & 0xff);
      this.byte(Number(n) >> 8);
    } else if (n >= -(2n ** 31n) && n < 2n ** 31n) {
      this.byte(op.BININT);
      this.u32(Number(BigInt.asUintN(32, n)));
    } else {
      const bytes = encodeLong(n);
      this.byte(op.LONG1);
      this.byte(bytes.length);
      this.raw(bytes);
    }
  }

  bool(v: boolean): void {
    this.byte(v ? op.NEWTRUE : op.NEWFALSE);
  }

  /** Python float: BINFLOAT, big-endian IEEE double. */
  float(v: number): void {
    this.byte(op.BINFLOAT);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, false);
    this.raw(b);
  }

  /**
   * A tuple of ints (torch sizes and strides). Like CPython: () is EMPTY_TUPLE and not memoized;
   * 1–3 items use TUPLE1/2/3, longer ones MARK … TUPLE; the tuple is a fresh object and memoized.
   */
  intTuple(items: readonly number[]): void {
    if (items.length === 0) {
      this.byte(op.EMPTY_TUPLE);
      return;
    }
    if (items.length > 3) this.mark();
    for (const x of items) this.int(x);
    this.byte(items.length === 1 ? op.TUPLE1 : items.length === 2 ? op.TUPLE2 : items.length === 3 ? op.TUPLE3 : op.TUPLE);
    this.put();
  }

  private byte(b: number): void {
    this.reserve(1);
    this.buf[this.len++] = b;
  }

  private u32(v: number): void {
    this.reserve(4);
    const b = this.buf;
    b[this.len] = v & 0xff;
    b[this.len + 1] = (v >>> 8) & 0xff;
    b[this.len + 2] = (v >>> 16) & 0xff;
    b[this.len + 3] = (v >>> 24) & 0xff;
    this.len += 4;
  }

  private raw(bytes: Uint8Array): void {
    this.reserve(bytes.byteLength);
    this.buf.set(bytes, this.len);
    this.len += bytes.byteLength;
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.byteLength) return;
    let cap = this.buf.byteLength * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
}

/** Little-endian two's complement in the fewest bytes that keep the sign (pickle.encode_long). */
export function encodeLong(n: bigint): Uint8Array {
  if (n === 0n) return new Uint8Array(0);
  const out: number[] = [];
  let x = n;
  for (;;) {
    const byte = Number(x & 0xffn);
    out.push(byte);
    x >>= 8n;
    const signBit = (byte & 0x80) !== 0;
    if ((x === 0n && !signBit) || (x === -1n && signBit)) break;
  }
  return Uint8Array.from(out);
}

/** One tensor of the state_dict as `_rebuild_tensor_v2` arguments. */
export interface PickledTensor {
  name: string;
  /** Legacy storage class name under `torch`, e.g. "FloatStorage". */
  storageClass: string;
  /** Storage key; equal keys are one storage (written once in the archive, tied in torch). */
  storageKey: string;
  /** Elements in the whole storage (not the tensor). */
  storageNumel: number;
  /** Offset into the storage, in elements. */
  storageOffset: number;
  shape: readonly number[];
  stride: readonly number[];
}

/** `state_dict._metadata` entries: module prefix → attributes (e.g. `['fc', { version: 1 }]`), in order. */
export type StateDictMetadata = ReadonlyArray<readonly [string, Readonly<Record<string, number>>]>;

/**
 * data.pkl for `torch.save(state_dict)`: an OrderedDict of tensors rebuilt by
 * `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`, with
 * storages as persistent ids ('storage', torch.<Class>, key, 'cpu', numel). `metadata`, when given,
 * becomes the OrderedDict's `_metadata` attribute (set with BUILD, as torch does).
 */
export function pickleStateDict(tensors: readonly PickledTensor[], metadata?: StateDictMetadata): Uint8Array {
  const p = new PickleEncoder();
  // Identities of the objects torch shares between tensors: the constant strings and, per storage,
  // its key string (the one object id_map hands back for every tensor of that storage).
  const STORAGE = Symbol('storage');
  const CPU = Symbol('cpu');
  const keyIds = new Map<string, symbol>();

  p.proto();
  orderedDict(p);
  p.put();
  batchedItems(p, tensors, (t) => {
    p.str(t.name);
    p.global('torch._utils', '_rebuild_tensor_v2');
    p.mark();
    p.mark();
    p.str('storage', STORAGE);
    p.global('torch', t.storageClass);
    let keyId = keyIds.get(t.storageKey);
    if (!keyId) keyIds.set(t.storageKey, (keyId = Symbol(t.storageKey)));
    p.str(t.storageKey, keyId);
    p.str('cpu', CPU);
    p.int(t.storageNumel);
    p.opcode(op.TUPLE);
    p.put();
    p.opcode(op.BINPERSID);
    p.int(t.storageOffset);
    p.intTuple(t.shape);
    p.intTuple(t.stride);
    p.bool(false); // requires_grad
    orderedDict(p); // backward_hooks
    p.put();
    p.opcode(op.TUPLE);
    p.put();
    p.opcode(op.REDUCE);
    p.put();
  });

  if (metadata) {
    // OrderedDict.__reduce__ state is the instance __dict__: {'_metadata': OrderedDict(...)}.
    p.opcode(op.EMPTY_DICT);
    p.put();
    p.str('_metadata');
    orderedDict(p);
    p.put();
    const VERSION_KEYS = new Map<string, symbol>();
    batchedItems(p, metadata, ([prefix, attrs]) => {
      p.str(prefix);
      p.opcode(op.EMPTY_DICT);
      p.put();
      batchedItems(p, Object.entries(attrs), ([k, v]) => {
        // torch's attribute names are string constants: one object per name across modules.
        let id = VERSION_KEYS.get(k);
        if (!id) VERSION_KEYS.set(k, (id = Symbol(k)));
        p.str(k, id);
        p.int(v);
      });
    });
    p.opcode(op.SETITEM);
    p.opcode(op.BUILD);
  }
  p.stop();
  return p.bytes();
}

/** `OrderedDict()` as CPython pickles it: the memoized class, (), REDUCE. The caller memoizes the result. */
function orderedDict(p: PickleEncoder): void {
  p.global('collections', 'OrderedDict');
  p.opcode(op.EMPTY_TUPLE);
  p.opcode(op.REDUCE);
}

/** Dict items the way pickle._batch_setitems writes them: MARK … SETITEMS per batch, SETITEM for a lone item. */
function batchedItems<T>(p: PickleEncoder, items: readonly T[], writeItem: (item: T) => void): void {
  for (let i = 0; i < items.length; i += BATCH) {
    const n = Math.min(BATCH, items.length - i);
    if (n > 1) p.mark();
    for (let j = i; j < i + n; j++) writeItem(items[j]!);
    p.opcode(n > 1 ? op.SETITEMS : op.SETITEM);
  }
}
