import { accessSync, chmodSync, constants, existsSync } from 'node:fs';
import { join } from 'node:path';

/** Where the FC and SCF FFmpeg layers install their binary. */
export const LAYER_FFMPEG_PATH = '/opt/bin/ffmpeg';

/**
 * Where `npm run build` puts the static ffmpeg in a deployable package: `bin/ffmpeg` next to the
 * bundled index.js. From the sources (tests, local runs) nothing is there, and the search goes on.
 */
export const PACKAGED_FFMPEG_PATH = join(__dirname, 'bin', 'ffmpeg');

/**
 * Resolution order: an explicit path (FFMPEG_PATH), the platform layer, the binary packaged next
 * to the bundle, then the static build bundled through @ffmpeg-installer/ffmpeg.
 */
export function resolveFfmpegPath(explicitPath?: string, layerPath = LAYER_FFMPEG_PATH, packagedPath = PACKAGED_FFMPEG_PATH): string {
  if (explicitPath) return explicitPath;
  if (existsSync(layerPath)) return layerPath;
  if (existsSync(packagedPath)) {
    ensureExecutable(packagedPath);
    return packagedPath;
  }
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
