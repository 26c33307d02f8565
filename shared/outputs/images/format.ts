export const IMAGE_FORMATS = ['jpg', 'png', 'webp'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

export const CONTENT_TYPES: Record<ImageFormat, string> = {
  jpg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
};

/** Formats whose encoder has a quality knob; png is lossless. */
export const LOSSY_FORMATS: readonly ImageFormat[] = ['jpg', 'webp'];

/**
 * Video range (Y 16–235, chroma 16–240) to full range as a per-pixel lookup table. JPEG (JFIF) is
 * full range; doing this in swscale (yuv420p → yuvj420p) costs about as much as the JPEG encode,
 * nearest-neighbour or not, while the table is a few ms less per 1080p image.
 */
export const VIDEO_TO_FULL_RANGE_FILTER =
  "lutyuv=y='clip((val-16)*255/219,0,255)':u='clip((val-128)*255/224+128,0,255)':v='clip((val-128)*255/224+128,0,255)'";

/** Filters an image needs before its encoder (after any scaling), if any. */
export function imageFilters(format: ImageFormat): string[] {
  return format === 'jpg' ? [VIDEO_TO_FULL_RANGE_FILTER] : [];
}

/**
 * Encoder arguments for one image, single-threaded (one image at a time gains nothing from
 * threads, and each thread costs). `quality` is 1–100, higher is better.
 */
export function imageEncoderArgs(format: ImageFormat, quality?: number): string[] {
  switch (format) {
    case 'jpg':
      // The frames are already full range (imageFilters) but still say yuv420p: `-strict -1` lets
      // mjpeg take yuv420p, and color_range jpeg makes it write plain JFIF, without the
      // "CS=ITU601" comment that would tell readers the data is video range.
      // mjpeg's qscale runs 2 (best) … 31 (worst).
      return ['-threads', '1', '-c:v', 'mjpeg', '-strict', '-1', '-pix_fmt', 'yuv420p', '-color_range', 'jpeg', '-q:v', String(jpegQscale(quality ?? 90))];
    case 'png':
      return ['-threads', '1', '-c:v', 'png'];
    case 'webp':
      return ['-threads', '1', '-c:v', 'libwebp', '-lossless', '0', '-quality', String(quality ?? 80)];
  }
}

export function jpegQscale(quality: number): number {
  return Math.round(2 + ((100 - quality) * 29) / 99);
}
