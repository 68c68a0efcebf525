/**
 * What the zip and legacy containers hand to the tensor builder: the unpickled object and a way
 * to find each storage's bytes in the file.
 */
import type { Diagnostic } from '../../core/errors.js';
import type { StorageRef } from './pyobjects.js';

export interface StorageRange {
  /** File offset of the storage's first byte. */
  offset: number;
  /** Bytes available for the storage. */
  byteLength: number;
}

export interface ParsedContainer {
  format: 'pytorch-zip' | 'pytorch-legacy' | 'torchscript';
  top: unknown;
  unknownGlobals: Set<string>;
  /** Multi-byte elements are stored big-endian and must be swapped on load. */
  bigEndian: boolean;
  resolve(storage: StorageRef, tensor: string): Promise<StorageRange>;
  diagnostics: Diagnostic[];
}

/** Largest pickle we hold in memory (state_dict pickles are kilobytes to a few megabytes). */
export const MAX_PICKLE_BYTES = 256 * 1024 * 1024;
