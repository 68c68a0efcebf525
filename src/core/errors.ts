/**
 * One error type with stable codes. Codes are part of the public contract: scripts match on them,
 * so a code is never renamed or reused — add new ones instead.
 */
export const ErrorCodes = {
  /** Input ended before a structure it announced (truncated file). */
  TRUNCATED: 'E_TRUNCATED',
  /** Bytes that cannot be the claimed format (bad magic, bad wire type, impossible varint). */
  MALFORMED: 'E_MALFORMED',
  /** A length/count/offset/shape product that is out of range or overflows. */
  OUT_OF_RANGE: 'E_OUT_OF_RANGE',
  /** No reader recognises the file. */
  UNKNOWN_FORMAT: 'E_UNKNOWN_FORMAT',
  /** Tensor payload size disagrees with dtype × shape. */
  TENSOR_SIZE: 'E_TENSOR_SIZE',
  /** A dtype code that this format does not define, or a dtype the operation cannot handle. */
  DTYPE: 'E_DTYPE',
  /** External data: path escapes the model folder, missing file, or offset/length outside the file. */
  EXTERNAL_DATA: 'E_EXTERNAL_DATA',
  /** A feature that the format allows but modelsmith does not implement (said, never silently dropped). */
  UNSUPPORTED: 'E_UNSUPPORTED',
  /** Kernel precondition (length mismatch, bad block size, value out of the target's range). */
  KERNEL_ARG: 'E_KERNEL_ARG',
  /** Kernel result does not fit (e.g. int64 → int32 value out of range). */
  RANGE_CHECK: 'E_RANGE_CHECK',
  /** A file operation failed (not found, permission, refusing to overwrite an input). */
  IO: 'E_IO',
  /** Command-line usage error. */
  USAGE: 'E_USAGE',
  /** Resource cap exceeded (message nesting, count, size caps for untrusted input). */
  LIMIT: 'E_LIMIT',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export interface ErrorContext {
  /** Format name, e.g. "onnx". */
  format?: string;
  /** File path the error is about. */
  path?: string;
  /** Byte offset in the file where the problem was found. */
  offset?: number;
  /** Tensor, node or op the error is about. */
  tensor?: string;
  op?: string;
  cause?: unknown;
}

export class ModelsmithError extends Error {
  readonly code: ErrorCode;
  readonly format?: string;
  readonly path?: string;
  readonly offset?: number;
  readonly tensor?: string;
  readonly op?: string;

  constructor(code: ErrorCode, message: string, ctx: ErrorContext = {}) {
    super(formatMessage(code, message, ctx), ctx.cause !== undefined ? { cause: ctx.cause } : undefined);
    this.name = 'ModelsmithError';
    this.code = code;
    if (ctx.format !== undefined) this.format = ctx.format;
    if (ctx.path !== undefined) this.path = ctx.path;
    if (ctx.offset !== undefined) this.offset = ctx.offset;
    if (ctx.tensor !== undefined) this.tensor = ctx.tensor;
    if (ctx.op !== undefined) this.op = ctx.op;
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, format: this.format, path: this.path, offset: this.offset, tensor: this.tensor, op: this.op };
  }
}

function formatMessage(code: ErrorCode, message: string, ctx: ErrorContext): string {
  const where: string[] = [];
  if (ctx.path !== undefined) where.push(ctx.path);
  if (ctx.tensor !== undefined) where.push(`tensor '${ctx.tensor}'`);
  if (ctx.op !== undefined) where.push(`op '${ctx.op}'`);
  if (ctx.offset !== undefined) where.push(`byte ${ctx.offset}`);
  return `${code}: ${message}${where.length ? ` (${where.join(', ')})` : ''}`;
}

export function isModelsmithError(e: unknown): e is ModelsmithError {
  return e instanceof ModelsmithError;
}

/** Non-fatal findings returned beside a result (never thrown). */
export interface Diagnostic {
  level: 'info' | 'warning';
  code: string;
  message: string;
  tensor?: string;
  op?: string;
}

export class Diagnostics {
  readonly items: Diagnostic[] = [];
  info(code: string, message: string, extra: Partial<Diagnostic> = {}): void {
    this.items.push({ level: 'info', code, message, ...extra });
  }
  warn(code: string, message: string, extra: Partial<Diagnostic> = {}): void {
    this.items.push({ level: 'warning', code, message, ...extra });
  }
}
