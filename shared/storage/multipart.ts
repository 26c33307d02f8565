import type { Readable } from 'node:stream';
import type { RetryOutcome } from '../retry';
import type { CloudClient, PutResult, RetryableBody, UploadedPart } from './types';

export interface MultipartOptions {
  /** Files larger than this go up in parts; smaller ones in one put. */
  thresholdBytes: number;
  partSizeBytes: number;
  /** Parts in flight at once. For a pipe also the number of part buffers held: memory ≤ parallelParts × partSizeBytes. */
  parallelParts: number;
}

const MiB = 1024 * 1024;

export const DEFAULT_MULTIPART_OPTIONS: MultipartOptions = {
  thresholdBytes: 16 * MiB,
  partSizeBytes: 8 * MiB,
  parallelParts: 4,
};

/** COS rejects parts below 1 MiB (OSS below 100 KiB) except the last. */
const MIN_PART_SIZE = MiB;
/** Both clouds allow at most this many parts per upload. */
const MAX_PARTS = 10_000;

export function resolveMultipartOptions(overrides: Partial<MultipartOptions> = {}): MultipartOptions {
  const options = { ...DEFAULT_MULTIPART_OPTIONS, ...overrides };
  if (!Number.isInteger(options.partSizeBytes) || options.partSizeBytes < MIN_PART_SIZE) {
    throw new RangeError(`multipart partSizeBytes must be an integer ≥ ${MIN_PART_SIZE}`);
  }
  if (!Number.isInteger(options.parallelParts) || options.parallelParts < 1) {
    throw new RangeError('multipart parallelParts must be an integer ≥ 1');
  }
  return options;
}

/**
 * Runs one request of this upload under the store's retry policy, on its current client,
 * and types any failure as a StorageError.
 */
export type Send = <T>(operation: string, call: (client: CloudClient) => Promise<T>) => Promise<RetryOutcome<T>>;

/** Uploads a file as byte ranges; a failed part is re-read from disk, so no part is held in memory. */
export function putFileInParts(
  key: string,
  filePath: string,
  size: number,
  options: MultipartOptions,
  contentType: string | undefined,
  send: Send,
): Promise<PutResult> {
  // A file too large for MAX_PARTS parts of the configured size gets larger parts.
  const partSize = Math.max(options.partSizeBytes, Math.ceil(size / MAX_PARTS));
  function* ranges(): Generator<RetryableBody> {
    for (let start = 0; start < size; start += partSize) {
      yield { path: filePath, start, length: Math.min(partSize, size - start) };
    }
  }
  return putInParts(key, ranges(), options.parallelParts, contentType, send);
}

/**
 * Uploads a stream of unknown length. Each part is held in a Buffer until it is stored, so a
 * failed part can be sent again; a stream shorter than one part goes up in a single put.
 */
export async function putStreamInParts(
  key: string,
  body: Readable,
  options: MultipartOptions,
  contentType: string | undefined,
  send: Send,
): Promise<PutResult> {
  const { partSizeBytes } = options;
  // A stored part's buffer is refilled rather than left to the GC, so at most parallelParts
  // buffers ever exist and RSS stays flat however long the stream is.
  const freeBuffers: Buffer[] = [];
  const parts = bufferedParts(body, partSizeBytes, () => freeBuffers.pop() ?? Buffer.allocUnsafe(partSizeBytes));
  try {
    const first = await parts.next();
    const firstPart = first.done ? Buffer.alloc(0) : first.value;
    if (firstPart.length < partSizeBytes) {
      const { value, attempts } = await send('put', (client) => client.put(key, firstPart, contentType));
      return { key, attempts, etag: value.etag };
    }
    const reuse = (part: RetryableBody) => {
      if (Buffer.isBuffer(part) && part.length === partSizeBytes) freeBuffers.push(part);
    };
    return await putInParts(key, prepend(firstPart, parts), options.parallelParts, contentType, send, reuse);
  } finally {
    // Ends the read loop; on failure this destroys the source stream.
    await parts.return(undefined);
  }
}

/**
 * Initiates, uploads parts with at most `parallel` in flight, completes. Parts are pulled from
 * `parts` only when a slot is free, which is what bounds a pipe's buffers. Each part is retried
 * on its own; on a permanent failure the upload is aborted so no orphaned parts are billed.
 */
async function putInParts(
  key: string,
  parts: Iterator<RetryableBody> | AsyncIterator<RetryableBody>,
  parallel: number,
  contentType: string | undefined,
  send: Send,
  onStored: (part: RetryableBody) => void = () => undefined,
): Promise<PutResult> {
  const created = await send('initiate multipart upload', (client) => client.createMultipart(key, contentType));
  const uploadId = created.value;
  let attempts = created.attempts;
  try {
    const uploaded: UploadedPart[] = [];
    const inFlight = new Set<Promise<void>>();
    let failure: { error: unknown } | undefined;
    try {
      for (let partNumber = 1; !failure; partNumber++) {
        while (inFlight.size >= parallel) await Promise.race(inFlight);
        if (failure) break;
        const next = await parts.next();
        if (next.done) break;
        if (partNumber > MAX_PARTS) throw new RangeError(`more than ${MAX_PARTS} parts; raise partSizeBytes`);
        const body = next.value;
        const task: Promise<void> = send(`upload part ${partNumber}`, (client) => client.uploadPart(key, uploadId, partNumber, body))
          .then(
            (outcome) => {
              uploaded.push({ partNumber, etag: outcome.value });
              attempts = Math.max(attempts, outcome.attempts);
              onStored(body);
            },
            (error: unknown) => {
              failure ??= { error };
            },
          )
          .finally(() => inFlight.delete(task));
        inFlight.add(task);
      }
    } finally {
      await Promise.all(inFlight);
    }
    if (failure) throw failure.error;
    uploaded.sort((a, b) => a.partNumber - b.partNumber);
    const completed = await send('complete multipart upload', (client) => client.completeMultipart(key, uploadId, uploaded));
    return { key, attempts: Math.max(attempts, completed.attempts), etag: completed.value.etag };
  } catch (error) {
    // Best effort: if the abort fails too, the bucket's lifecycle rule for incomplete uploads cleans up.
    await send('abort multipart upload', (client) => client.abortMultipart(key, uploadId)).catch(() => undefined);
    throw error;
  }
}

/** Cuts a stream into Buffers of exactly `partSize` bytes (the last one shorter), each from `nextBuffer`. */
async function* bufferedParts(body: Readable, partSize: number, nextBuffer: () => Buffer): AsyncGenerator<Buffer, void, undefined> {
  let part = nextBuffer();
  let filled = 0;
  let yielded = false;
  for await (const chunk of body) {
    const bytes: Buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    for (let offset = 0; offset < bytes.length; ) {
      const copied = bytes.copy(part, filled, offset);
      offset += copied;
      filled += copied;
      if (filled === partSize) {
        yield part;
        yielded = true;
        filled = 0;
        // Taken only when the consumer asks for the next part, i.e. when an upload slot is free.
        part = nextBuffer();
      }
    }
  }
  if (filled > 0 || !yielded) yield part.subarray(0, filled);
}

async function* prepend<T>(first: T, rest: AsyncIterator<T>): AsyncGenerator<T, void, undefined> {
  yield first;
  for (let next = await rest.next(); !next.done; next = await rest.next()) yield next.value;
}
