/** Number formatting shared by the page and the worker (kept dependency-free so both bundles stay small). */

export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[u]}`;
}

export function formatShape(shape: readonly (number | string | null)[]): string {
  return `[${shape.map((d) => (d === null ? '?' : String(d))).join(',')}]`;
}

/** Engineering notation for small errors; SNR in dB keeps Infinity readable. */
export function formatErr(x: number): string {
  return Number.isFinite(x) ? x.toExponential(2) : String(x);
}

export function formatDb(x: number): string {
  return Number.isFinite(x) ? x.toFixed(1) : String(x);
}
