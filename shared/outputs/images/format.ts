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
 * nearest-neighbour or not, while the table is a few ms less per 1080p image. Only right for
 * 8-bit 4:2:0 pictures whose matrix is BT.601's, which is what JFIF readers assume.
 */
export const VIDEO_TO_FULL_RANGE_FILTER =
  "lutyuv=y='clip((val-16)*255/219,0,255)':u='clip((val-128)*255/224+128,0,255)':v='clip((val-128)*255/224+128,0,255)'";

/** What decoded pictures are, as their stream's SPS signals it. */
export interface PictureFormat {
  /** 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4. */
  chromaFormat: number;
  bitDepth: number;
  fullRange: boolean;
  /** H.264 matrix_coefficients; undefined when not signalled. */
  matrix?: number;
}

/** What our own encoder makes, and what most streams are: 8-bit 4:2:0, video range, BT.601. */
export const COMMON_PICTURE_FORMAT: PictureFormat = { chromaFormat: 1, bitDepth: 8, fullRange: false };

/** swscale's names for H.264's matrix_coefficients; anything else is read as BT.601, as decoders do. */
const MATRIX_NAMES: Readonly<Record<number, string>> = { 1: 'bt709', 4: 'fcc', 5: 'bt601', 6: 'smpte170m', 7: 'smpte240m', 9: 'bt2020', 10: 'bt2020' };
const BT601_MATRICES = new Set([undefined, 2, 5, 6]);

/**
 * Filters from a decoded picture to what the image encoder takes, scaling to `width` if given.
 * The common case (8-bit 4:2:0, BT.601, video range) costs a lookup table at most. Anything else
 * goes through swscale with matrix and range spelled out, so that colours come out as the stream
 * signals them (never a green field from 10-bit samples read as 8-bit). swscale converts between
 * matrices only on the way to or from RGB, so a BT.709 (or BT.2020) picture goes through RGB.
 */
export function imageFilters(format: ImageFormat, picture: PictureFormat = COMMON_PICTURE_FORMAT, width?: number): string[] {
  const bt601 = BT601_MATRICES.has(picture.matrix);
  const common = bt601 && picture.bitDepth === 8 && picture.chromaFormat === 1 && !picture.fullRange;
  // -2 keeps the aspect ratio with an even height, which every encoder accepts.
  const size = width === undefined ? [] : [`w=${width}`, 'h=-2', 'flags=bicubic'];
  const scale = (...options: string[]) => (options.length > 0 ? [`scale=${options.join(':')}`] : []);
  const inRange = `in_range=${picture.fullRange ? 'pc' : 'tv'}`;
  const toRgb = scale(...size, `in_color_matrix=${MATRIX_NAMES[picture.matrix ?? 5] ?? 'bt601'}`, inRange);
  /** To BT.601 YUV 4:2:0 in `range`: directly when only range, depth or subsampling change. */
  const toYuv601 = (range: 'pc' | 'tv') =>
    bt601 ? [...scale(...size, inRange, `out_range=${range}`), 'format=yuv420p'] : [...toRgb, 'format=rgb24', ...scale('out_color_matrix=bt601', `out_range=${range}`), 'format=yuv420p'];
  switch (format) {
    case 'jpg':
      return common ? [...scale(...size), VIDEO_TO_FULL_RANGE_FILTER] : toYuv601('pc');
    case 'png':
      return [...toRgb, 'format=rgb24'];
    case 'webp':
      // libwebp's lossy YUV is BT.601 video range.
      return common ? scale(...size) : toYuv601('tv');
  }
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
