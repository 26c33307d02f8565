import { accessSync, chmodSync, constants, existsSync } from 'node:fs';

/** Where the FC and SCF FFmpeg layers install their binary. */
export const LAYER_FFMPEG_PATH = '/opt/bin/ffmpeg';

/**
 * Resolution order: an explicit path (FFMPEG_PATH), the platform layer, then the
 * static build bundled through @ffmpeg-installer/ffmpeg.
 */
export function resolveFfmpegPath(explicitPath?: string, layerPath = LAYER_FFMPEG_PATH): string {
  if (explicitPath) return explicitPath;
  if (existsSync(layerPath)) return layerPath;
  // Required lazily: the installer package probes the platform when loaded.
  const bundled = (require('@ffmpeg-installer/ffmpeg') as { path: string }).path;
  ensureExecutable(bundled);
  return bundled;
}

/** npm 11 may skip the installer's `chmod u+x` postinstall; zips can drop the bit too. */
function ensureExecutable(path: string): void {
  try {
    accessSync(path, constants.X_OK);
  } catch {
    chmodSync(path, 0o755);
  }
}
