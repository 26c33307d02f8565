import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { MediaError } from './errors';

/**
 * Cloud instance-metadata services hand out the function role's keys: no user-given URL (a
 * source, a callback) may make us connect there. Addresses are compared after normalising every
 * literal form a resolver accepts — decimal (2852039166), hex (0xa9fea9fe), octal, short forms
 * (169.254.43518) and IPv4 inside IPv6 (::ffff:169.254.169.254, ::ffff:a9fe:a9fe) — because
 * ffmpeg resolves hosts with getaddrinfo, which takes them all, and URLs of non-web schemes
 * (rtmp://) are not normalised by the URL parser.
 */
const METADATA_NAMES = new Set(['metadata.tencentyun.com', 'metadata.google.internal']);
/** Alibaba Cloud's metadata service; the rest of the list is link-local. */
const METADATA_IPV4 = [100, 100, 100, 200];

/** IPv4 as inet_aton reads it: 1–4 parts, each decimal, 0-prefixed octal or 0x hex. */
export function parseIpv4Literal(host: string): number[] | undefined {
  const parts = host.split('.');
  if (parts.length < 1 || parts.length > 4 || parts.some((part) => part === '')) return undefined;
  const values: number[] = [];
  for (const part of parts) {
    const match = /^(0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*)$/i.exec(part);
    if (!match) return undefined;
    const value = /^0x/i.test(part) ? Number.parseInt(part.slice(2) || '0', 16) : part.length > 1 && part.startsWith('0') ? Number.parseInt(part, 8) : Number(part);
    if (!Number.isSafeInteger(value)) return undefined;
    values.push(value);
  }
  // The last part fills the remaining bytes.
  const head = values.slice(0, -1);
  const last = values.at(-1)!;
  if (head.some((value) => value > 255) || last >= 256 ** (4 - head.length)) return undefined;
  const octets = [...head];
  for (let i = 3 - head.length; i >= 0; i--) octets.push(Math.floor(last / 256 ** i) % 256);
  return octets;
}

/** The 16 bytes of an IPv6 literal (brackets allowed), or undefined. */
function parseIpv6Literal(host: string): number[] | undefined {
  const bare = host.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  if (isIP(bare) !== 6) return undefined;
  let text = bare;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const v4 = parseIpv4Literal(dotted[1]!)!;
    text = text.slice(0, -dotted[1]!.length) + `${((v4[0]! << 8) | v4[1]!).toString(16)}:${((v4[2]! << 8) | v4[3]!).toString(16)}`;
  }
  const [left, right] = text.split('::') as [string, string | undefined];
  const groups = (part: string | undefined) => (part ? part.split(':') : []);
  const missing = 8 - groups(left).length - groups(right).length;
  const all = [...groups(left), ...Array(right === undefined ? 0 : missing).fill('0'), ...groups(right)];
  return all.flatMap((group) => {
    const value = Number.parseInt(group, 16);
    return [value >> 8, value & 0xff];
  });
}

function isMetadataIpv4(octets: number[]): boolean {
  return (octets[0] === 169 && octets[1] === 254) || octets.every((octet, i) => octet === METADATA_IPV4[i]);
}

/** Whether a host name or address literal (any form) is a cloud metadata or link-local address. */
export function isMetadataAddress(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '');
  if (METADATA_NAMES.has(bare)) return true;
  const v4 = parseIpv4Literal(bare);
  if (v4) return isMetadataIpv4(v4);
  const v6 = parseIpv6Literal(bare);
  if (!v6) return false;
  if (v6[0] === 0xfe && (v6[1]! & 0xc0) === 0x80) return true; // fe80::/10, link-local
  if (v6.join(',') === [0xfd, 0, 0x0e, 0xc2, ...Array(10).fill(0), 2, 0x54].join(',')) return true; // fd00:ec2::254
  // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d) forms, and NAT64 (64:ff9b::/96).
  const prefix = v6.slice(0, 12).join(',');
  const embedded = v6.slice(12);
  const mapped = prefix === [...Array(10).fill(0), 0xff, 0xff].join(',') || prefix === Array(12).fill(0).join(',') || prefix === [0, 0x64, 0xff, 0x9b, ...Array(8).fill(0)].join(',');
  return mapped && isMetadataIpv4(embedded);
}

/** A connection was about to go to a metadata or link-local address. */
export class ForbiddenAddressError extends MediaError {
  constructor(host: string) {
    super('ForbiddenSource', `${host} resolves to a cloud metadata or link-local address; refused`);
  }
}

/**
 * A `lookup` for node:net, node:tls and node:http(s) that refuses metadata and link-local
 * addresses. The connection then goes to exactly the address checked: a name that resolves
 * elsewhere a moment later (DNS rebinding) cannot slip through between a check and a connect.
 */
export const guardedLookup: LookupFunction = (hostname, options, callback) => {
  const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : (options.family ?? 0);
  dnsLookup(hostname, { family, all: true }, (error, addresses: LookupAddress[]) => {
    if (error) return callback(error, '');
    if (addresses.some((entry) => isMetadataAddress(entry.address))) {
      const refused = new ForbiddenAddressError(hostname) as ForbiddenAddressError & NodeJS.ErrnoException;
      return callback(refused, '');
    }
    if (options.all) return callback(null, addresses);
    callback(null, addresses[0]!.address, addresses[0]!.family);
  });
};
