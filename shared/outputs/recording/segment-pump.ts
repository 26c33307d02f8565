import { CmafSegmenter, type CmafSegment } from '../../media/cmaf';
import { Mp3FrameReader } from '../../media/mp3-frames';
import { Mp4SegmentReader } from '../../media/mp4-boxes';
import type { GrowingObjectUpload } from '../../upload/growing-object';
import type { HlsUpload } from '../../upload/hls-upload';
import type { EncoderContainer } from './encoder-args';

/** Where one encoder's output goes: a growing file, HLS, or both (one encoding, two outputs). */
export interface SegmentSinks {
  file?: GrowingObjectUpload;
  /** Fragmented MP4 only: its fragments are grouped into CMAF segments. */
  hls?: HlsUpload;
}

/**
 * Hands an encoder's or remuxer's output to its sinks in pieces a player can use on their own
 * (whole MP4 fragments, whole MP3 frames, whole HLS segments), waiting while a sink is full.
 * The MP4 header alone is no recording: it goes into the file with the first fragment, so a
 * stored object always plays.
 */
export async function pumpSegments(output: AsyncIterable<Buffer>, container: EncoderContainer, sinks: SegmentSinks): Promise<void> {
  const mp4 = container === 'mp4' ? new Mp4SegmentReader() : undefined;
  const mp3 = container === 'mp3' ? new Mp3FrameReader() : undefined;
  const segmenter = mp4 && sinks.hls ? new CmafSegmenter() : undefined;
  const { file, hls } = sinks;
  let header: Buffer | undefined;
  for await (const chunk of output) {
    if (mp3) {
      if (file && !file.write(mp3.push(chunk).bytes)) await file.room();
      continue;
    }
    for (const piece of mp4!.push(chunk)) {
      if (segmenter) await toHls(hls!, segmenter.push(piece));
      if (!file) continue;
      if (piece.kind === 'init') {
        header = piece.bytes;
        continue;
      }
      const whole = header ? Buffer.concat([header, piece.bytes]) : piece.bytes;
      header = undefined;
      if (!file.write(whole)) await file.room();
    }
  }
  // The fragments after the last whole segment: the recording's last, shorter segment.
  if (segmenter) await toHls(hls!, segmenter.flush());
}

async function toHls(hls: HlsUpload, segments: CmafSegment[]): Promise<void> {
  for (const segment of segments) {
    if (segment.kind === 'init') hls.writeInit(segment.bytes);
    else if (!hls.writeSegment(segment.bytes, segment.durationSec)) await hls.room();
  }
}
