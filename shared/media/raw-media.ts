/** Small pure helpers on raw frames, kept out of the recorder so they can be tested alone. */

/** Bytes of one I420 picture. */
export const i420Size = (width: number, height: number) => width * height + 2 * (Math.ceil(width / 2) * Math.ceil(height / 2));

/** Video-range black, so a gap reads as "no picture" rather than a frozen one. */
export function blackI420(width: number, height: number): Buffer {
  const frame = Buffer.alloc(i420Size(width, height), 128);
  frame.fill(16, 0, width * height);
  return frame;
}

/**
 * Nearest-neighbour resize of an I420 picture. Used only when an anchor's resolution
 * changes mid-stream (TRTC adapts it), so the recording keeps one size throughout.
 */
export function scaleI420(src: Buffer, sw: number, sh: number, dw: number, dh: number): Buffer {
  const out = Buffer.alloc(i420Size(dw, dh));
  const planes = [
    { srcOffset: 0, sw, sh, dstOffset: 0, dw, dh },
    { srcOffset: sw * sh, sw: Math.ceil(sw / 2), sh: Math.ceil(sh / 2), dstOffset: dw * dh, dw: Math.ceil(dw / 2), dh: Math.ceil(dh / 2) },
  ];
  const chroma = planes[1]!;
  planes.push({ ...chroma, srcOffset: chroma.srcOffset + chroma.sw * chroma.sh, dstOffset: chroma.dstOffset + chroma.dw * chroma.dh });
  for (const p of planes) {
    for (let y = 0; y < p.dh; y++) {
      const srcRow = p.srcOffset + Math.min(p.sh - 1, Math.floor((y * p.sh) / p.dh)) * p.sw;
      const dstRow = p.dstOffset + y * p.dw;
      for (let x = 0; x < p.dw; x++) out[dstRow + x] = src[srcRow + Math.min(p.sw - 1, Math.floor((x * p.sw) / p.dw))]!;
    }
  }
  return out;
}

export interface PcmFormat {
  sampleRate: number;
  channels: number;
}

/**
 * Converts s16le PCM between rates (linear interpolation) and channel counts (average
 * down, duplicate up). TRTC normally keeps one format per user; this covers a change.
 */
export function convertPcm(data: Buffer, from: PcmFormat, to: PcmFormat): Buffer {
  if (from.sampleRate === to.sampleRate && from.channels === to.channels) return data;
  const inFrames = Math.floor(data.length / 2 / from.channels);
  const outFrames = Math.floor((inFrames * to.sampleRate) / from.sampleRate);
  const out = Buffer.alloc(outFrames * to.channels * 2);
  const sampleAt = (frame: number, channel: number) => data.readInt16LE((Math.min(frame, inFrames - 1) * from.channels + channel) * 2);
  const mono = (frame: number) => {
    let sum = 0;
    for (let c = 0; c < from.channels; c++) sum += sampleAt(frame, c);
    return sum / from.channels;
  };
  for (let i = 0; i < outFrames; i++) {
    const position = (i * from.sampleRate) / to.sampleRate;
    const left = Math.floor(position);
    const weight = position - left;
    for (let c = 0; c < to.channels; c++) {
      const read = (frame: number) => (to.channels === from.channels ? sampleAt(frame, c) : mono(frame));
      const value = read(left) * (1 - weight) + read(left + 1) * weight;
      out.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(value))), (i * to.channels + c) * 2);
    }
  }
  return out;
}
