import type { Readable } from 'node:stream';

export type CloudName = 'oss' | 'cos' | 'local';

export interface PutOptions {
  contentType?: string;
  /** Stops retries between attempts; an attempt in flight is left to its own timeout. */
  signal?: AbortSignal;
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
}
