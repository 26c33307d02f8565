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
    expect(readConfig({})).toMatchObject({ logLevel: 'info', workRoot: '/tmp', snapshot: { finalizeMarginMs: 10_000, uploadConcurrency: 4 }, record: { finalizeMarginMs: 60_000 } });
    expect(readConfig({}).alibabaCredentials).toBeUndefined();
  });

  it('refuses a malformed value, naming the variable', () => {
    expect(() => readConfig({ UPLOAD_CONCURRENCY: 'lots' })).toThrow(/UPLOAD_CONCURRENCY must be a positive number; got "lots"/);
    expect(() => readConfig({ UPLOAD_CONCURRENCY: '2.5' })).toThrow(/UPLOAD_CONCURRENCY must be a whole number/);
    expect(() => readConfig({ LOG_LEVEL: 'loud' })).toThrow(/LOG_LEVEL must be one of debug, info, warn, error; got "loud"/);
    expect(() => readConfig({ FINALIZE_MARGIN_MS: '-1' })).toThrow(/FINALIZE_MARGIN_MS must be a positive number/);
    expect(() => readConfig({ SPILL_LIMIT_MB: '0' })).toThrow(/SPILL_LIMIT_MB/);
    expect(readConfig({ LOG_LEVEL: 'WARN', UPLOAD_CONCURRENCY: ' 8 ' })).toMatchObject({ logLevel: 'warn', snapshot: { uploadConcurrency: 8 } });
  });

  it('reads credentials only as complete pairs', () => {
    expect(readConfig({ ALIBABA_CLOUD_ACCESS_KEY_ID: 'id' }).alibabaCredentials).toBeUndefined();
    expect(
      readConfig({ ALIBABA_CLOUD_ACCESS_KEY_ID: 'id', ALIBABA_CLOUD_ACCESS_KEY_SECRET: 's', ALIBABA_CLOUD_SECURITY_TOKEN: 't' }).alibabaCredentials,
    ).toEqual({ accessKeyId: 'id', accessKeySecret: 's', securityToken: 't' });
  });
});
