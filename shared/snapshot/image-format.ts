export const IMAGE_FORMATS = ['jpg', 'png', 'webp'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

export const CONTENT_TYPES: Record<ImageFormat, string> = {
  jpg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
};

/** Formats whose encoder has a quality knob; png is lossless. */
export const LOSSY_FORMATS: readonly ImageFormat[] = ['jpg', 'webp'];

/** Encoder arguments for one image. `quality` is 1–100, higher is better. */
export function imageEncoderArgs(format: ImageFormat, quality?: number): string[] {
  switch (format) {
    case 'jpg':
      // mjpeg's qscale runs 2 (best) … 31 (worst). The only conversion left is video range
      // to full range at 1:1, where nearest-neighbour is exact and a quarter of the CPU.
      return ['-c:v', 'mjpeg', '-pix_fmt', 'yuvj420p', '-sws_flags', 'neighbor', '-q:v', String(jpegQscale(quality ?? 90))];
    case 'png':
      return ['-c:v', 'png'];
    case 'webp':
      return ['-c:v', 'libwebp', '-lossless', '0', '-quality', String(quality ?? 80)];
  }
}

export function jpegQscale(quality: number): number {
  return Math.round(2 + ((100 - quality) * 29) / 99);
}
