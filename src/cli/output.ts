/**
 * Output discipline for the CLI contract: with --json, stdout carries exactly one JSON object and
 * all human text goes to stderr; without it, the human report goes to stdout.
 */
export interface Out {
  json: boolean;
  /** Human-readable report lines (stdout, or stderr under --json). */
  say(...lines: string[]): void;
  /** Progress and notes: always stderr, so they never mix into a report. */
  note(line: string): void;
  /** The final report object: printed once, on stdout, under --json. */
  report(obj: unknown): void;
}

export function makeOut(json: boolean, quiet = false): Out {
  return {
    json,
    say: (...lines) => {
      for (const line of lines) (json ? process.stderr : process.stdout).write(line + '\n');
    },
    note: (line) => {
      if (!quiet) process.stderr.write(line + '\n');
    },
    report: (obj) => {
      if (json) process.stdout.write(JSON.stringify(obj, jsonReplacer) + '\n');
    },
  };
}

/** bigint is not JSON; int64 values beyond 2^53 are given as strings so nothing is rounded. */
export function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  return value;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

/** Minimal fixed-width table for human output. */
export function table(rows: string[][]): string[] {
  if (rows.length === 0) return [];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ').trimEnd());
}
