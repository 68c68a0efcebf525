/**
 * Calibration / training data sets: named float32 model inputs (+ optional int class labels),
 * streamed in batches. Readers only parse headers when a data set is opened; payload bytes are read
 * (or inflated) as batches are drawn, so memory is bounded by one batch whatever the data set size.
 */
import type { DType } from '../core/dtype.js';
import type { ByteSource } from '../io/source.js';
import type { Value } from '../engine/types.js';

export interface Batch {
  /** Input name → float32 value [batch, ...sample dims]. */
  inputs: Record<string, Value>;
  /** One class id per sample, when the data set has labels. */
  labels?: Int32Array;
}

/** A byte source the data set may close when done with it (FileSource has `close`). */
export type DataSource = ByteSource & { close?(): Promise<void> };

export interface DirEntry {
  name: string;
  directory: boolean;
}

/**
 * File access, given by the caller so src/data stays runtime-neutral (Node passes FileSource.open
 * and fs.readdir; a browser passes Blobs from a folder picker).
 */
export interface DataIo {
  open(path: string): Promise<DataSource>;
  /** The entries of a folder, or undefined when `path` is a file. */
  list(path: string): Promise<DirEntry[] | undefined>;
}

/** A declared model input: dims are numbers (fixed) or strings/undefined (symbolic, e.g. the batch). */
export interface InputDecl {
  name: string;
  dims?: (number | string | undefined)[];
}

export interface OpenDatasetOptions {
  /**
   * The model's inputs. Names files/members that carry no name of their own, and tells a batch
   * file ([n, ...sample]) from one sample, and reshapes samples (IDX [n,28,28] → [n,1,28,28]) when
   * the element counts agree.
   */
  inputs?: InputDecl[];
  /** Divide every input value by this (IDX images default to 255, everything else to 1). */
  divisor?: number;
  /** Labels file for an IDX image file (default: the sibling with "labels"/"idx1" in its name). */
  labels?: string;
  /** Use at most this many samples (the first ones). */
  maxSamples?: number;
}

/** One tensor payload in a file (or zip member): `count` samples of one input, or labels. */
export interface Chunk {
  path: string;
  dtype: DType;
  /** Shape as stored. */
  shape: number[];
  /** Samples held (set once the sample shape is resolved). */
  count: number;
  /** Payload bytes from the first sample on, read forward. */
  open(): Promise<ChunkCursor>;
}

export interface ChunkCursor {
  next(bytes: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

export type DatasetKind = 'npy' | 'npz' | 'pb' | 'idx';
