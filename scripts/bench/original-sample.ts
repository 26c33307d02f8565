/**
 * The original rtmp-snapshot sample's ffmpeg command, which both bench:snapshot parts measure
 * against: every frame decoded, one JPEG a second named by the wall clock.
 */
export function originalSampleArgs(url: string, outDir: string): string[] {
  return ['-loglevel', 'error', '-i', url, '-f', 'image2', '-r', '1', '-strftime', '1', `${outDir}/%Y%m%d%H%M%S.jpg`];
}
