import { open } from 'node:fs/promises';
import type { ImageFormat } from './format';

/**
 * Whether an image file is complete for its format, read from its first and last bytes only.
 * An image is counted as taken, stored or made `latest` only when this finds no problem: an
 * encoder interrupted mid-write leaves an empty or cut file that a rename would still publish.
 */
const EDGE_BYTES = 16;
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** The IEND chunk: zero length, type, and its fixed CRC. */
const PNG_IEND = Buffer.from([0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]);

/** Why the bytes are not a complete image of `format`, or null when they are. */
export function imageProblem(format: ImageFormat, size: number, head: Buffer, tail: Buffer): string | null {
  if (size === 0) return 'empty file';
  switch (format) {
    case 'jpg':
      if (size < 4 || head[0] !== 0xff || head[1] !== 0xd8) return 'no JPEG start-of-image marker';
      if (tail[tail.length - 2] !== 0xff || tail[tail.length - 1] !== 0xd9) return 'no JPEG end-of-image marker (cut short)';
      return null;
    case 'png':
      if (size < PNG_SIGNATURE.length + PNG_IEND.length || !head.subarray(0, 8).equals(PNG_SIGNATURE)) return 'no PNG signature';
      if (!tail.subarray(tail.length - PNG_IEND.length).equals(PNG_IEND)) return 'no PNG IEND chunk (cut short)';
      return null;
    case 'webp':
      if (size < 12 || head.toString('latin1', 0, 4) !== 'RIFF' || head.toString('latin1', 8, 12) !== 'WEBP') return 'no RIFF/WEBP header';
      if (head.readUInt32LE(4) + 8 !== size) return `RIFF size ${head.readUInt32LE(4) + 8} does not match the file's ${size} bytes (cut short)`;
      return null;
  }
}

export async function imageFileProblem(format: ImageFormat, path: string): Promise<{ problem: string | null; bytes: number; modifiedAt: number }> {
  const file = await open(path, 'r');
  try {
    const { size, mtimeMs } = await file.stat();
    const head = Buffer.alloc(Math.min(EDGE_BYTES, size));
    const tail = Buffer.alloc(Math.min(EDGE_BYTES, size));
    await file.read(head, 0, head.length, 0);
    await file.read(tail, 0, tail.length, size - tail.length);
    return { problem: imageProblem(format, size, head, tail), bytes: size, modifiedAt: mtimeMs };
  } finally {
    await file.close();
  }
}
