import { describe, expect, it } from 'vitest';
import { toSnapshotJob } from '../../functions/fc-snapshot/event';
import { ValidationError } from '../../shared/errors';

const base = { rtmp_url: 'rtmp://host:1935/stream/example', bucket: 'my-bucket', region: 'cn-hangzhou', dst: 'dst' };

function issuesOf(event: unknown, functionRegion?: string) {
  try {
    toSnapshotJob(event, 'req-1', functionRegion);
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return (error as ValidationError).issues;
  }
  throw new Error('expected a validation error');
}

describe('FC snapshot event', () => {
  it('accepts the seed event as a Buffer, a string or an object, with defaults', () => {
    for (const event of [Buffer.from(JSON.stringify(base)), JSON.stringify(base), base]) {
      expect(toSnapshotJob(event, 'req-1', undefined)).toEqual({
        requestId: 'req-1',
        sourceUrl: base.rtmp_url,
        bucket: 'my-bucket',
        region: 'cn-hangzhou',
        prefix: 'dst/',
        intervalSec: 1,
        format: 'jpg',
        width: undefined,
        quality: undefined,
        maxSnapshots: undefined,
        maxDurationSec: undefined,
        idleTimeoutSec: 10,
        connectTimeoutSec: 30,
        latest: false,
        callbackUrl: undefined,
      });
    }
  });

  it("defaults region to the function's region and strips an oss- prefix", () => {
    const { region: _omit, ...withoutRegion } = base;
    expect(toSnapshotJob(withoutRegion, 'r', 'cn-shanghai').region).toBe('cn-shanghai');
    expect(toSnapshotJob({ ...base, region: 'oss-cn-beijing' }, 'r', undefined).region).toBe('cn-beijing');
    expect(issuesOf(withoutRegion)).toEqual([{ field: 'region', message: expect.stringContaining('FC_REGION') }]);
  });

  it('names every bad field', () => {
    const issues = issuesOf({ rtmp_url: 5, bucket: 'Bad_Bucket', interval: 0, format: 'gif', width: 641 });
    expect(issues.map((i) => i.field).sort()).toEqual(['bucket', 'format', 'interval', 'rtmp_url', 'width']);
    expect(issues.find((i) => i.field === 'format')!.message).toContain('jpg, png, webp');
  });

  it('rejects unknown keys and lists the allowed ones', () => {
    const [issue] = issuesOf({ ...base, rtmpUrl: 'x' });
    expect(issue!.field).toBe('rtmpUrl');
    expect(issue!.message).toContain('rtmp_url, bucket, region, dst, interval');
  });

  it('refuses quality for lossless png', () => {
    expect(issuesOf({ ...base, format: 'png', quality: 80 })).toEqual([{ field: 'quality', message: expect.stringContaining('png') }]);
  });

  it.each([
    ['file:///etc/passwd'],
    ['concat:a.flv|b.flv'],
    ['pipe:0'],
    ['data:video/flv;base64,AAAA'],
    ['subfile:,start,0,end,1,:/etc/passwd'],
    ['tcp://127.0.0.1:22'],
    ['udp://1.2.3.4:5'],
    ['-i'],
    ['-f lavfi'],
    ['rtmp://host/app/s\n-y'],
    ['rtmp://host/app/s stream'],
    ['rtmp://host/app/\u0000s'],
    ['rtmp:///nohost'],
    ['ftp://host/x.flv'],
  ])('refuses the source %j before anything starts', (rtmp_url) => {
    const issues = issuesOf({ ...base, rtmp_url });
    expect(issues.map((i) => i.field)).toEqual(['rtmp_url']);
  });

  it('accepts rtmps, HTTP-FLV and HLS sources', () => {
    for (const url of ['rtmps://h/app/s', 'http://h/live/s.flv', 'https://h/live/s.m3u8?auth_key=1-0-0-abc']) {
      expect(toSnapshotJob({ ...base, rtmp_url: url }, 'r', undefined).sourceUrl).toBe(url);
    }
  });

  it('refuses callbacks to metadata services and non-http URLs', () => {
    for (const callback of ['http://100.100.100.200/latest/meta-data', 'http://169.254.169.254/', 'http://metadata.tencentyun.com/', 'file:///x']) {
      expect(issuesOf({ ...base, callback }).map((i) => i.field)).toEqual(['callback']);
    }
  });

  it('refuses dst with traversal or control characters', () => {
    for (const dst of ['a/../b', 'a\nb', 'a\\b']) expect(issuesOf({ ...base, dst }).map((i) => i.field)).toEqual(['dst']);
  });

  it('never echoes the rejected value, so credentials in a URL stay private', () => {
    const issues = issuesOf({ ...base, rtmp_url: 'file://user:hunter2@host/x', callback: 'ftp://u:s3cret@h/' });
    expect(JSON.stringify(issues)).not.toMatch(/hunter2|s3cret/);
  });

  it('refuses a body that is not a JSON object', () => {
    expect(issuesOf('not json')).toEqual([{ field: 'event', message: expect.stringContaining('JSON') }]);
    expect(issuesOf('[1,2]')).toEqual([{ field: 'event', message: 'must be a JSON object' }]);
  });
});
