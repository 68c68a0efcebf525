/**
 * CRC-32 as zip uses it (IEEE, reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF).
 * Not CRC-32C: TF bundles use the Castagnoli polynomial and need their own table.
 *
 * Slice-by-8: eight 256-entry tables let the loop consume 8 bytes per step, several times faster
 * than the byte-at-a-time table in V8; it matters when a writer CRCs gigabytes of weights.
 */

// Int32Array, not Uint32Array: values past 2^31 read from a Uint32Array become doubles in V8 and
// the loop runs several times slower; as int32 the whole computation stays in small integers.
// One flat table (8 × 256): table k maps a byte to its CRC contribution when followed by k zero bytes.
const T: Int32Array = buildTable();
/** Word loads assume little-endian memory; on a big-endian host the byte loop is used throughout. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function buildTable(): Int32Array {
  const t = new Int32Array(256 * 8);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  for (let k = 1; k < 8; k++) {
    for (let n = 0; n < 256; n++) {
      const p = t[(k - 1) * 256 + n]!;
      t[k * 256 + n] = (p >>> 8) ^ t[p & 0xff]!;
    }
  }
  return t;
}

/**
 * CRC-32 of `data`. Chain over chunks by passing the previous result as `seed`:
 * `crc32(b, crc32(a)) === crc32(concat(a, b))`. Returns an unsigned 32-bit number.
 */
export function crc32(data: Uint8Array, seed = 0): number {
  let c = ~seed;
  const n = data.length;
  let i = 0;
  if (LITTLE_ENDIAN && n >= 64) {
    // Bytes up to a 4-byte boundary, then 8 bytes per step through an aligned Int32Array view.
    const head = (4 - (data.byteOffset & 3)) & 3;
    for (; i < head; i++) c = T[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
    const words = new Int32Array(data.buffer, data.byteOffset + head, (n - head) >> 2);
    const m = words.length & ~1;
    for (let j = 0; j < m; j += 2) {
      const a = c ^ words[j]!;
      const b = words[j + 1]!;
      c = T[1792 + (a & 0xff)]! ^ T[1536 + ((a >>> 8) & 0xff)]! ^ T[1280 + ((a >>> 16) & 0xff)]! ^ T[1024 + (a >>> 24)]! ^
        T[768 + (b & 0xff)]! ^ T[512 + ((b >>> 8) & 0xff)]! ^ T[256 + ((b >>> 16) & 0xff)]! ^ T[b >>> 24]!;
    }
    i = head + m * 4;
  }
  for (; i < n; i++) c = T[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
