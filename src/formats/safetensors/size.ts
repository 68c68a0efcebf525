/**
 * `--shard-size` values: "123456" (bytes), "500MB", "2GB", "1.5GiB", "64 KiB".
 * Decimal units are powers of 1000 and binary units powers of 1024, as huggingface's
 * `max_shard_size` reads them ("5GB" = 5·10^9 bytes). Units are case-insensitive. Fractions are
 * computed exactly (BigInt) and rounded down to whole bytes.
 */
import { ErrorCodes, ModelsmithError } from '../../core/errors.js';

// A Map, not an object literal: a unit like "constructor" must not find Object.prototype members.
const UNITS = new Map<string, bigint>(Object.entries({
  '': 1n,
  b: 1n,
  kb: 10n ** 3n,
  mb: 10n ** 6n,
  gb: 10n ** 9n,
  tb: 10n ** 12n,
  kib: 1n << 10n,
  mib: 1n << 20n,
  gib: 1n << 30n,
  tib: 1n << 40n,
}));

export function parseSize(text: string): number {
  const fail = (why: string): never => {
    throw new ModelsmithError(ErrorCodes.USAGE, `invalid size ${JSON.stringify(text)}: ${why} (examples: 123456, 500MB, 2GB, 1.5GiB)`);
  };
  if (typeof text !== 'string') fail('not a string');
  const m = /^\s*([0-9]+)(?:\.([0-9]+))?\s*([a-zA-Z]*)\s*$/.exec(text);
  if (!m) return fail('expected a number followed by an optional unit');
  const unit = UNITS.get(m[3]!.toLowerCase());
  if (unit === undefined) return fail(`unknown unit '${m[3]}'`);
  const frac = m[2] ?? '';
  const scaled = (BigInt(m[1]! + frac) * unit) / 10n ** BigInt(frac.length);
  if (scaled < 1n) return fail('must be at least 1 byte');
  if (scaled > BigInt(Number.MAX_SAFE_INTEGER)) return fail('too large');
  return Number(scaled);
}
