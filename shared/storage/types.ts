import type { Readable } from 'node:stream';

export type CloudName = 'oss' | 'cos' | 'local';

export interface PutOptions {
  contentType?: string;
  /** Stops retries between attempts; an attempt in flight is left to its own timeout. */
  signal?: AbortSignal;
}

export interface PutResult {
  key: string;
  /** Attempts the shared retry policy made (SDK-internal retries are not counted). */
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
  /** Public-style URL of an object, for results and callbacks. */
  objectUrl(key: string): string;
}

export type PutBody = Buffer | Readable;
