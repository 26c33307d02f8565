import { describe, expect, it } from 'vitest';
import { connect as connectTcp, createServer, type AddressInfo } from 'node:net';
import { guardedLookup, isMetadataAddress, parseIpv4Literal } from '../../shared/network-guard';
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

describe('guardedLookup', () => {
  it('refuses a name whose address is a metadata one before any connection, and lets others through', async () => {
    let connections = 0;
    const listener = createServer(() => connections++);
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const { port } = listener.address() as AddressInfo;
    const connect = (host: string) =>
      new Promise<string>((resolve) => {
        const socket = connectTcp({ host, port, lookup: guardedLookup });
        socket.on('connect', () => resolve(`connected to ${socket.remoteAddress}`)).on('error', (error: Error & { code?: string }) => resolve(`${error.code}: ${error.message}`));
        socket.setTimeout(2_000, () => socket.destroy(new Error('timed out')));
      });
    try {
      // getaddrinfo reads '0xa9fea9fe' as 169.254.169.254: a name that is not an IP literal to Node.
      expect(await connect('0xa9fea9fe')).toMatch(/^ForbiddenSource: 0xa9fea9fe resolves to a cloud metadata/);
      expect(await connect('localhost')).toBe('connected to 127.0.0.1');
      expect(connections).toBe(1);
    } finally {
      listener.close();
    }
  });
});
