/**
 * CRC-32C (Castagnoli) and TensorFlow's CRC masking. TF tensor bundles and their LevelDB-style index
 * use CRC-32C, not the zip CRC-32, and store every checksum "masked": a CRC computed over data that
 * itself embeds CRCs would otherwise be weak, so stored values are rotated and offset.
 */

const POLY = 0x82f63b78;

/**
 * Slicing-by-8 tables in one flat array (table s at s·256): every byte of every tensor is checksummed
 * on load, and checkpoints reach gigabytes, so the 8-bytes-per-step loop matters (~2× byte-wise).
 */
const T: Uint32Array = (() => {
  const t = new Uint32Array(8 * 256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[i] = c >>> 0;
  }
  for (let s = 1; s < 8; s++) {
    for (let i = 0; i < 256; i++) {
      const p = t[(s - 1) * 256 + i]!;
      t[s * 256 + i] = (p >>> 8) ^ t[p & 0xff]!;
    }
  }
  return t;
})();

/** Word loads assume a little-endian host (every JS platform in practice); others use the byte loop. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Extend a CRC-32C over `data`. Start with `crc = 0` (the init/xor-out are handled inside), and feed
 * the result back to continue over the next chunk: `crc32c(b, crc32c(a)) === crc32c(a ‖ b)`.
 */
export function crc32c(data: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  let i = 0;
  const n = data.length;
  if (LITTLE_ENDIAN && n >= 16) {
    // Bytes up to 4-byte alignment, then aligned 32-bit word pairs.
    const head = (4 - (data.byteOffset & 3)) & 3;
    for (; i < head; i++) c = T[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
    const pairs = Math.floor((n - i) / 8);
    const w = new Uint32Array(data.buffer, data.byteOffset + i, pairs * 2);
    for (let k = 0; k < w.length; k += 2) {
      const lo = (c ^ w[k]!) >>> 0;
      const hi = w[k + 1]!;
      c = T[1792 + (lo & 0xff)]! ^ T[1536 + ((lo >>> 8) & 0xff)]! ^ T[1280 + ((lo >>> 16) & 0xff)]! ^ T[1024 + (lo >>> 24)]! ^
        T[768 + (hi & 0xff)]! ^ T[512 + ((hi >>> 8) & 0xff)]! ^ T[256 + ((hi >>> 16) & 0xff)]! ^ T[hi >>> 24]!;
    }
    i += pairs * 8;
  }
  for (; i < n; i++) c = T[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

const MASK_DELTA = 0xa282ead8;

export function maskCrc(crc: number): number {
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + MASK_DELTA) >>> 0;
}

export function unmaskCrc(masked: number): number {
  const rot = (masked - MASK_DELTA) >>> 0;
  return ((rot >>> 17) | (rot << 15)) >>> 0;
}
