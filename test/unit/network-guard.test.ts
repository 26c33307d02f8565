import { describe, expect, it } from 'vitest';
import { isMetadataAddress, metadataResolutionProblem, parseIpv4Literal } from '../../shared/network-guard';
import { sourceUrlProblem } from '../../shared/source-url';

describe('isMetadataAddress', () => {
  it('catches the metadata services and link-local addresses in every literal form a resolver takes', () => {
    const metadata = [
      '100.100.100.200',
      '169.254.169.254',
      '169.254.0.1',
      '2852039166', // 169.254.169.254 as one decimal number
      '0xa9fea9fe',
      '0xA9.0xFE.0xA9.0xFE',
      '0251.0376.0251.0376', // octal
      '169.254.43518', // a.b.c with c covering two bytes
      '1684300999'.replace('1684300999', String(100 * 2 ** 24 + 100 * 2 ** 16 + 100 * 256 + 200)),
      '[::ffff:169.254.169.254]',
      '::ffff:a9fe:a9fe',
      '[::169.254.169.254]',
      '64:ff9b::a9fe:a9fe',
      'fe80::1',
      '[fe80::1%eth0]',
      'fd00:ec2::254',
      'metadata.tencentyun.com',
      'METADATA.tencentyun.com.',
      'metadata.google.internal',
    ];
    for (const host of metadata) expect(isMetadataAddress(host), host).toBe(true);
  });

  it('lets ordinary hosts through', () => {
    for (const host of ['127.0.0.1', '10.0.0.5', '100.100.100.201', '169.253.255.255', 'live.example.com', '::1', '[2001:db8::1]', '::ffff:8.8.8.8', '1.2.3.4.5', 'metadata.tencentyun.com.evil.example']) {
      expect(isMetadataAddress(host), host).toBe(false);
    }
  });

  it('reads IPv4 literals as inet_aton does', () => {
    expect(parseIpv4Literal('2852039166')).toEqual([169, 254, 169, 254]);
    expect(parseIpv4Literal('127.1')).toEqual([127, 0, 0, 1]);
    expect(parseIpv4Literal('0x7f.1')).toEqual([127, 0, 0, 1]);
    for (const notIp of ['256.1.1.1', '1.2.3.4.5', '08.1.1.1', 'example.com', '', '1..2']) expect(parseIpv4Literal(notIp), notIp).toBeUndefined();
  });
});

describe('metadataResolutionProblem', () => {
  it('refuses a name that resolves to a metadata address, and passes one that does not', async () => {
    const resolver = (answers: Record<string, string[]>) => async (host: string) => answers[host] ?? [];
    const dns = resolver({ 'evil.example': ['93.184.216.34', '169.254.169.254'], 'fine.example': ['93.184.216.34'] });
    expect(await metadataResolutionProblem('evil.example', dns)).toMatch(/resolves to a cloud metadata/);
    expect(await metadataResolutionProblem('fine.example', dns)).toBeNull();
    expect(await metadataResolutionProblem('0xa9fea9fe', dns)).toMatch(/points at/);
    expect(await metadataResolutionProblem('localhost')).toBeNull();
  });
});

describe('sourceUrlProblem', () => {
  it('refuses sources at metadata addresses before anything starts', () => {
    for (const url of [
      'http://100.100.100.200/latest/meta-data/ram/security-credentials/',
      'rtmp://2852039166/live/s',
      'rtmp://0xa9fea9fe:1935/live/s',
      'http://[::ffff:169.254.169.254]/x.flv',
      'https://metadata.tencentyun.com/latest/meta-data/',
      'rtmps://user:pw@169.254.1.1/live/s',
    ]) {
      expect(sourceUrlProblem(url), url).toBe('must not point at a cloud metadata or link-local address');
    }
    expect(sourceUrlProblem('rtmp://live.example.com/app/stream')).toBeNull();
  });
});
