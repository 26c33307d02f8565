import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readConfig } from '../../shared/config';
import { resolveFfmpegPath } from '../../shared/ffmpeg/binary';
import { ossEndpoint } from '../../shared/storage/oss';

describe('resolveFfmpegPath', () => {
  const layer = join(mkdtempSync(join(tmpdir(), 'layer-')), 'ffmpeg');

  it('prefers FFMPEG_PATH, then the platform layer, then the bundled build', () => {
    expect(resolveFfmpegPath('/custom/ffmpeg', layer)).toBe('/custom/ffmpeg');
    expect(resolveFfmpegPath(undefined, layer)).toMatch(/@ffmpeg-installer\/linux-x64\/ffmpeg$/);
    writeFileSync(layer, '');
    expect(resolveFfmpegPath(undefined, layer)).toBe(layer);
  });
});

describe('ossEndpoint', () => {
  it('uses the internal endpoint only inside the function region, and honours an override', () => {
    expect(ossEndpoint('cn-hangzhou', 'cn-hangzhou')).toBe('https://oss-cn-hangzhou-internal.aliyuncs.com');
    expect(ossEndpoint('cn-beijing', 'cn-hangzhou')).toBe('https://oss-cn-beijing.aliyuncs.com');
    expect(ossEndpoint('cn-beijing', undefined)).toBe('https://oss-cn-beijing.aliyuncs.com');
    expect(ossEndpoint('cn-beijing', 'cn-beijing', 'http://127.0.0.1:9000')).toBe('http://127.0.0.1:9000');
  });
});

describe('readConfig', () => {
  it('applies defaults', () => {
    expect(readConfig({})).toMatchObject({ logLevel: 'info', tmpRoot: '/tmp', flushMarginMs: 10_000, uploadConcurrency: 4 });
    expect(readConfig({}).alibabaCredentials).toBeUndefined();
  });

  it('reads credentials only as complete pairs, and ignores bad numbers', () => {
    expect(readConfig({ ALIBABA_CLOUD_ACCESS_KEY_ID: 'id' }).alibabaCredentials).toBeUndefined();
    expect(
      readConfig({ ALIBABA_CLOUD_ACCESS_KEY_ID: 'id', ALIBABA_CLOUD_ACCESS_KEY_SECRET: 's', ALIBABA_CLOUD_SECURITY_TOKEN: 't' }).alibabaCredentials,
    ).toEqual({ accessKeyId: 'id', accessKeySecret: 's', securityToken: 't' });
    expect(readConfig({ UPLOAD_CONCURRENCY: 'lots', LOG_LEVEL: 'loud' })).toMatchObject({ uploadConcurrency: 4, logLevel: 'info' });
  });
});
