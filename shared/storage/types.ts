import type { Readable } from 'node:stream';
import { StorageError, type StorageFailure } from '../errors';
import type { RetryPolicy } from '../retry';

export type CloudName = 'oss' | 'cos' | 'local';

export interface PutOptions {
  contentType?: string;
  /** Stops retries between attempts; an attempt in flight is left to its own timeout. */
  signal?: AbortSignal;
  /**
   * Overrides the store's retry policy for this one call, every request of it (multipart parts
   * included): e.g. a long maxElapsedMs to ride out an outage for as long as a deadline allows.
   */
  retry?: Partial<RetryPolicy>;
}

export interface PutResult {
  key: string;
  /**
   * Attempts the shared retry policy made (SDK-internal retries are not counted). For a
   * multipart upload, the most that any one of its requests needed.
   */
  attempts: number;
  etag?: string;
}

export interface AppendResult {
  key: string;
  /** The object's length after this append: the position of the next one. */
  nextPosition: number;
  /** Attempts the shared retry policy made, a resync (HEAD after a lost answer) included. */
  attempts: number;
  /** An answer was lost and a HEAD showed the append had been applied. */
  resynced?: boolean;
}

export interface ObjectInfo {
  size: number;
  /** Created by append (and not replaced by a put since): more can be appended. */
  appendable: boolean;
  contentType?: string;
}

/**
 * The one storage surface both functions write through. Drivers are thin adapters
 * over an SDK; retries and error typing (StorageError) happen inside the driver so
 * callers never see SDK-specific errors.
 */
export interface ObjectStore {
  readonly cloud: CloudName;
  readonly bucket: string;
  /** Streams the file from disk; never reads it whole into memory. */
  putFile(key: string, filePath: string, options?: PutOptions): Promise<PutResult>;
  putBuffer(key: string, body: Buffer, options?: PutOptions): Promise<PutResult>;
  /**
   * Stores a stream of unknown length (a pipe). The stream is consumed, or destroyed
   * when the upload fails.
   */
  putStream(key: string, body: Readable, options?: PutOptions): Promise<PutResult>;
  /**
   * Appends `body` at `position` (the object's current length; 0 creates an appendable object).
   * Never applied twice: after a lost answer the store reads the length back before resending.
   * Fails with a StorageError that `positionMismatch` or `isAppendRefused` recognise.
   */
  append(key: string, body: Buffer, position: number, options?: PutOptions): Promise<AppendResult>;
  /** Size and kind of an object, or null when it does not exist. */
  head(key: string, options?: PutOptions): Promise<ObjectInfo | null>;
  /** Public-style URL of an object, for results and callbacks. */
  objectUrl(key: string): string;
}

// ---------------------------------------------------------------- what a cloud driver implements

/** A byte range of a file on disk, opened afresh for every attempt. */
export interface FileRange {
  path: string;
  start: number;
  length: number;
}

/** A request body a failed attempt can send again: bytes held in memory, or a file range. */
export type RetryableBody = Buffer | FileRange;

export interface UploadedPart {
  partNumber: number;
  etag: string;
}

/**
 * The calls a driver makes through one SDK client bound to one set of credentials.
 * Each call is a single attempt; retries and error typing happen around it.
 */
export interface CloudClient {
  put(key: string, body: RetryableBody, contentType?: string): Promise<{ etag?: string }>;
  createMultipart(key: string, contentType?: string): Promise<string>;
  uploadPart(key: string, uploadId: string, partNumber: number, body: RetryableBody): Promise<string>;
  completeMultipart(key: string, uploadId: string, parts: UploadedPart[]): Promise<{ etag?: string }>;
  abortMultipart(key: string, uploadId: string): Promise<void>;
  // Optional so that a client for puts alone (a test double) still fits; both cloud drivers have them.
  append?(key: string, body: Buffer, position: number, contentType?: string): Promise<{ nextPosition: number }>;
  /** Null on 404. */
  head?(key: string): Promise<ObjectInfo | null>;
}

// ---------------------------------------------------------------- appending

/** Both clouds cap an appendable object, and so each append, at 5 GB. */
export const MAX_APPENDABLE_BYTES = 5 * 1024 ** 3;

export const POSITION_NOT_EQUAL_TO_LENGTH = 'PositionNotEqualToLength';
export const OBJECT_NOT_APPENDABLE = 'ObjectNotAppendable';

/**
 * The codes with which a cloud refuses to append to a key at all. Both clouds document only
 * ObjectNotAppendable (409; the key holds a normal object). Neither documents a separate code for
 * buckets that take no appends (COS multi-AZ or versioned, OSS objects under retention); when one
 * is confirmed it belongs here.
 */
const APPEND_REFUSED_CODES = new Set([OBJECT_NOT_APPENDABLE]);

/** The append cannot work on this key or bucket: write the object another way (put, multipart). */
export function isAppendRefused(error: unknown): boolean {
  return error instanceof StorageError && APPEND_REFUSED_CODES.has(error.detail.cloudCode ?? '');
}

/** The object's current length when an append was refused for a wrong position, else undefined. */
export function positionMismatch(error: unknown): number | undefined {
  if (!(error instanceof StorageError) || error.detail.cloudCode !== POSITION_NOT_EQUAL_TO_LENGTH) return undefined;
  return error.detail.nextPosition;
}

/** An append the clouds would refuse for its size, refused before any request. */
export class AppendLimitError extends StorageError {
  override readonly code = 'AppendLimit';
}

export function checkAppendLimit(where: Pick<StorageFailure, 'cloud' | 'bucket' | 'key'>, position: number, length: number): void {
  if (!Number.isSafeInteger(position) || position < 0) {
    throw new StorageError({ ...where, operation: 'append' }, `append to ${where.bucket}/${where.key}: position must be a non-negative integer, got ${position}`);
  }
  if (position + length > MAX_APPENDABLE_BYTES) {
    throw new AppendLimitError(
      { ...where, operation: 'append' },
      `append to ${where.bucket}/${where.key} refused: ${length} bytes at ${position} would pass the ${MAX_APPENDABLE_BYTES}-byte limit of an appendable object`,
    );
  }
}
