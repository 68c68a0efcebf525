/**
 * Kernel module loader and arena. One API for every runtime:
 *  - `initKernels()` compiles the embedded bytes (Node, Deno, browsers), choosing the SIMD build when
 *    the engine validates it and the scalar build otherwise;
 *  - `initKernels({ module })` instantiates a precompiled `WebAssembly.Module` (Cloudflare Workers
 *    refuse to compile bytes, so the workerd entry imports the .wasm file as a module).
 * The host owns linear memory above `__heap_base` and hands it out as a bump arena that is reset
 * after each kernel call sequence; big tensors go through in fixed windows (see `windowed`).
 */
import { SCALAR_WASM_BASE64, SIMD_WASM_BASE64 } from './wasm-bytes.generated.js';
import { ErrorCodes, ModelsmithError } from '../core/errors.js';

export type Flavor = 'simd' | 'scalar';

export interface InitOptions {
  /** Precompiled module (workerd). Its flavor must be stated since a Module cannot be introspected cheaply. */
  module?: WebAssembly.Module;
  moduleFlavor?: Flavor;
  /** Force a flavor (tests run every kernel on both). */
  flavor?: Flavor;
}

const PAGE = 65536;

function decodeBase64(b64: string): Uint8Array<ArrayBuffer> {
  // atob exists in Node ≥ 16, Deno, browsers and workerd; Buffer does not exist everywhere.
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Raw exports of the kernel module: every kernel takes byte offsets and counts. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type RawExports = Record<string, any> & { memory: WebAssembly.Memory; heap_base: () => number };

export class Kernels {
  readonly flavor: Flavor;
  readonly raw: RawExports;
  readonly memory: WebAssembly.Memory;
  private readonly base: number;
  private top: number;

  constructor(instance: WebAssembly.Instance, flavor: Flavor) {
    this.raw = instance.exports as RawExports;
    this.memory = this.raw.memory;
    this.flavor = flavor;
    const hb = this.raw.heap_base();
    this.base = align(hb, 64);
    this.top = this.base;
  }

  /** Bytes currently addressable (linear memory size). */
  get capacity(): number {
    return this.memory.buffer.byteLength;
  }

  /** Largest single allocation we allow: wasm32 caps memory at 4 GiB; keep headroom for the stack/data. */
  static readonly MAX_BYTES = 4 * 1024 * 1024 * 1024 - 2 * PAGE;

  /** Bump-allocate `bytes` (64-byte aligned). Grows memory if needed; views made before may detach. */
  alloc(bytes: number): number {
    const p = align(this.top, 64);
    const end = p + bytes;
    if (!Number.isSafeInteger(end) || end > Kernels.MAX_BYTES) {
      throw new ModelsmithError(ErrorCodes.LIMIT, `kernel arena cannot hold ${bytes} more bytes (wasm32 4 GiB limit)`);
    }
    if (end > this.capacity) {
      const pages = Math.ceil((end - this.capacity) / PAGE);
      this.memory.grow(pages);
    }
    this.top = end;
    return p;
  }

  /** Release everything allocated since `mark` (or everything). Memory is kept for reuse. */
  reset(mark: number = this.base): void {
    this.top = mark;
  }

  mark(): number {
    return this.top;
  }

  /** Fresh views: always call after any alloc/kernel call that may have grown memory. */
  u8(ptr: number, n: number): Uint8Array { return new Uint8Array(this.memory.buffer, ptr, n); }
  i8(ptr: number, n: number): Int8Array { return new Int8Array(this.memory.buffer, ptr, n); }
  u16(ptr: number, n: number): Uint16Array { return new Uint16Array(this.memory.buffer, ptr, n); }
  i32(ptr: number, n: number): Int32Array { return new Int32Array(this.memory.buffer, ptr, n); }
  u32(ptr: number, n: number): Uint32Array { return new Uint32Array(this.memory.buffer, ptr, n); }
  f32(ptr: number, n: number): Float32Array { return new Float32Array(this.memory.buffer, ptr, n); }
  f64(ptr: number, n: number): Float64Array { return new Float64Array(this.memory.buffer, ptr, n); }
  i64(ptr: number, n: number): BigInt64Array { return new BigInt64Array(this.memory.buffer, ptr, n); }
}

function align(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

let simdSupported: boolean | undefined;
export function simdAvailable(): boolean {
  simdSupported ??= WebAssembly.validate(decodeBase64(SIMD_WASM_BASE64));
  return simdSupported;
}

const cache = new Map<Flavor, Kernels>();

export async function initKernels(opts: InitOptions = {}): Promise<Kernels> {
  if (opts.module) {
    const flavor = opts.moduleFlavor ?? 'simd';
    const inst = await WebAssembly.instantiate(opts.module, {});
    const k = new Kernels(inst, flavor);
    cache.set(flavor, k);
    defaultKernels = k;
    return k;
  }
  const flavor: Flavor = opts.flavor ?? (simdAvailable() ? 'simd' : 'scalar');
  const hit = cache.get(flavor);
  if (hit) return hit;
  const bytes = decodeBase64(flavor === 'simd' ? SIMD_WASM_BASE64 : SCALAR_WASM_BASE64);
  const compiled = await WebAssembly.compile(bytes);
  const k = new Kernels(await WebAssembly.instantiate(compiled, {}), flavor);
  cache.set(flavor, k);
  if (!opts.flavor || !defaultKernels) defaultKernels = k;
  return k;
}

let defaultKernels: Kernels | undefined;

/** The kernels chosen by the last `initKernels()`. Throws if none was initialised. */
export function kernels(): Kernels {
  if (!defaultKernels) throw new ModelsmithError(ErrorCodes.KERNEL_ARG, 'kernels not initialised: await initKernels() first');
  return defaultKernels;
}
