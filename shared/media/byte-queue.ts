/**
 * Bytes that arrive in chunks of any size, read from the front in whole units (an FLV tag, an MP4
 * box): what a streaming parser holds between pushes. Chunks are joined only when a read spans them.
 */
export class ByteQueue {
  private chunks: Buffer[] = [];
  private queued = 0;

  get length(): number {
    return this.queued;
  }

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.queued += chunk.length;
  }

  /** The first `length` bytes, not removed; the caller checks that they are queued. */
  peek(length: number): Buffer {
    if (this.chunks[0]!.length < length) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, length);
  }

  /** Removes the first `length` bytes and returns them: a view of the chunks received, not a copy. */
  take(length: number): Buffer {
    const joined = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const rest = joined.subarray(length);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.queued = rest.length;
    return joined.subarray(0, length);
  }
}
