import { Mp3FrameReader } from '../../media/mp3-frames';
import { Mp4SegmentReader } from '../../media/mp4-boxes';
import type { GrowingObjectUpload } from '../../upload/growing-object';

/**
 * Hands an encoder's or remuxer's output to a growing object in pieces a player can use on their
 * own (whole MP4 fragments, whole MP3 frames), waiting while the upload is full. The MP4 header
 * alone is no recording: it goes out with the first fragment, so a stored object always plays.
 */
export async function pumpSegments(output: AsyncIterable<Buffer>, container: 'mp4' | 'mp3', upload: GrowingObjectUpload): Promise<void> {
  const mp4 = container === 'mp4' ? new Mp4SegmentReader() : undefined;
  const mp3 = container === 'mp3' ? new Mp3FrameReader() : undefined;
  let header: Buffer | undefined;
  for await (const chunk of output) {
    const pieces = mp4 ? mp4.push(chunk) : [{ kind: 'frames', bytes: mp3!.push(chunk).bytes }];
    for (const { kind, bytes } of pieces) {
      if (kind === 'init') {
        header = bytes;
        continue;
      }
      const whole = header ? Buffer.concat([header, bytes]) : bytes;
      header = undefined;
      if (!upload.write(whole)) await upload.room();
    }
  }
}
