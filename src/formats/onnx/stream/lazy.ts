/**
 * readOnnxLazy: an OnnxModel whose big raw_data payloads stay in the source until something reads
 * them. The skeleton (scan.ts) is decoded with the usual reader, and the model's SiblingResolver
 * answers PAYLOAD_LOCATION with the source itself (or with the payloads the scan held in memory),
 * so payloadReader, quantizeWeights and writeOnnx — which stream external tensors window by window —
 * need no change. writeOnnx writes such tensors back inline as raw_data, byte for byte as the
 * eager reader's model would be written.
 */
import { ErrorCodes, ModelsmithError } from '../../../core/errors.js';
import { checkRange, type ByteSource, type SiblingResolver } from '../../../io/source.js';
import { decodeOnnx, type OnnxModel, type ReadOnnxOptions } from '../read.js';
import { PAYLOAD_LOCATION, scanOnnxStream, type ScanOptions, type ScanOutput } from './scan.js';

export interface ReadOnnxLazyOptions extends ReadOnnxOptions {
  /** raw_data of at least this many bytes stays in the source (default 64 KiB). */
  threshold?: number;
  /** Called for each big payload as the scan passes it (see scan.ts). */
  onPayload?: ScanOptions['onPayload'];
  /**
   * 'lazy' (default): payloads are read again from the source when needed (files, Blobs).
   * 'hold': payloads are kept in memory as the scan passes (sources that can only be read forward).
   */
  keep?: 'lazy' | 'hold';
}

export interface LazyOnnxModel extends OnnxModel {
  /** What the scan left out of the decoded model. */
  scan: Omit<ScanOutput, 'skeleton'>;
}

/** A ByteSource over the payloads a scan held, addressed by their offsets in the original source. */
class HeldPayloads implements ByteSource {
  constructor(readonly held: Map<number, Uint8Array>, readonly size: number, readonly name: string) {}

  private find(offset: number, length: number): Uint8Array {
    checkRange(this, offset, length);
    const bytes = this.held.get(offset);
    if (!bytes || bytes.byteLength < length) {
      throw new ModelsmithError(ErrorCodes.UNSUPPORTED, `payload at ${offset} was not kept (the source can only be read once)`, { path: this.name, offset, format: 'onnx' });
    }
    return bytes.subarray(0, length);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    return this.find(offset, length);
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    // Tensor readers ask for windows inside one payload: find the payload that starts at or before.
    const direct = this.held.get(offset);
    if (direct && direct.byteLength >= target.byteLength) {
      target.set(direct.subarray(0, target.byteLength));
      return;
    }
    for (const [start, bytes] of this.held) {
      if (offset >= start && offset + target.byteLength <= start + bytes.byteLength) {
        target.set(bytes.subarray(offset - start, offset - start + target.byteLength));
        return;
      }
    }
    this.find(offset, target.byteLength);
  }
}

export async function readOnnxLazy(source: ByteSource, opts: ReadOnnxLazyOptions = {}): Promise<LazyOnnxModel> {
  const path = opts.path ?? source.name;
  const scanOpts: ScanOptions = { path };
  if (opts.threshold !== undefined) scanOpts.threshold = opts.threshold;
  if (opts.limits) scanOpts.limits = opts.limits;
  if (opts.keep) scanOpts.keep = opts.keep;
  if (opts.onPayload) scanOpts.onPayload = opts.onPayload;
  const scan = await scanOnnxStream(source, scanOpts);
  const decodeOpts: ReadOnnxOptions = { path };
  if (opts.limits) decodeOpts.limits = opts.limits;
  const model = decodeOnnx(scan.skeleton, decodeOpts);
  const payloads: ByteSource = (opts.keep ?? 'lazy') === 'hold' ? new HeldPayloads(scan.held, source.size, path) : source;
  const outer: SiblingResolver | undefined = opts.siblings;
  const siblings: SiblingResolver = async (rel) => {
    if (rel === PAYLOAD_LOCATION) return payloads;
    if (outer) return outer(rel);
    throw new ModelsmithError(ErrorCodes.EXTERNAL_DATA, `external data file '${rel}' cannot be resolved (no folder was given)`, { path, format: 'onnx' });
  };
  const { skeleton: _skeleton, ...rest } = scan;
  void _skeleton;
  const lazy: LazyOnnxModel = { ...model, byteSize: source.size, siblings, scan: rest };
  return lazy;
}
