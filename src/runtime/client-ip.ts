import { isIP } from 'node:net';

/**
 * The client's address behind proxies. `X-Forwarded-For` is honoured only
 * when the socket peer is a trusted proxy; then the client is the right-most
 * address that is not itself trusted. Each proxy appends the address it saw,
 * so everything left of the first untrusted hop was written by the client and
 * may be forged: we never read past it.
 *
 * Trust is a list of CIDRs (`10.0.0.0/8`, `::1/128`), shorthands (`loopback`,
 * `private`, `linklocal`) or a hop count (`2`: the peer and the next hop
 * are proxies; Express's `trust proxy` number means the same).
 */

export type Trust = { kind: 'none' } | { kind: 'hops'; hops: number } | { kind: 'cidrs'; ranges: Range[] };

interface Range {
  family: 4 | 6;
  bits: bigint;
  mask: bigint;
}

const shorthands: Record<string, string[]> = {
  loopback: ['127.0.0.0/8', '::1/128'],
  private: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
  // Shared address space: Cloud NAT and carrier-grade NAT sit here.
  cgnat: ['100.64.0.0/10'],
};

export class TrustError extends Error {}

/** Parses TRUSTED_PROXIES. Throws a TrustError naming the bad entry. */
export function parseTrust(text: string | undefined): Trust {
  const value = text?.trim() ?? '';
  if (value === '') return { kind: 'none' };
  if (/^\d+$/.test(value)) {
    const hops = Number(value);
    if (hops < 1 || hops > 32) throw new TrustError('a hop count must be from 1 to 32');
    return { kind: 'hops', hops };
  }
  const ranges: Range[] = [];
  for (const raw of value.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    for (const cidr of shorthands[entry] ?? [entry]) ranges.push(parseCidr(cidr));
  }
  return { kind: 'cidrs', ranges };
}

function parseCidr(cidr: string): Range {
  const [address = '', prefixText] = cidr.split('/');
  const family = isIP(address);
  if (family === 0) {
    throw new TrustError(`"${cidr}" is not a CIDR, an address, or one of ${Object.keys(shorthands).join(', ')}`);
  }
  const width = family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? width : Number(prefixText);
  if (!/^\d+$/.test(prefixText ?? String(width)) || prefix > width) {
    throw new TrustError(`"${cidr}" has a prefix length outside 0-${width}`);
  }
  const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(width - prefix);
  return { family: family as 4 | 6, bits: (toBigInt(address, family) ?? 0n) & mask, mask };
}

/** `::ffff:10.0.0.1` is the IPv4 address it maps; anything else is returned as is, trimmed. */
export function normalizeAddress(address: string): string {
  const trimmed = address.trim();
  if (trimmed.length > 7 && trimmed.slice(0, 7).toLowerCase() === '::ffff:' && isIP(trimmed.slice(7)) === 4) {
    return trimmed.slice(7);
  }
  return trimmed;
}

function toBigInt(address: string, family: number): bigint | undefined {
  if (family === 4) {
    return address.split('.').reduce((acc, part) => (acc << 8n) + BigInt(Number(part)), 0n);
  }
  const [head = '', tail] = address.split('::');
  const parse = (part: string) => (part === '' ? [] : part.split(':'));
  let groups = parse(head);
  let rest = tail === undefined ? [] : parse(tail);
  // An embedded IPv4 tail (::ffff:1.2.3.4) counts as two groups.
  const expand = (list: string[]) =>
    list.flatMap((group) => {
      if (!group.includes('.')) return [group];
      const v4 = Number(toBigInt(group, 4));
      return [(v4 >>> 16).toString(16), (v4 & 0xffff).toString(16)];
    });
  groups = expand(groups);
  rest = expand(rest);
  const missing = 8 - groups.length - rest.length;
  const all = tail === undefined ? groups : [...groups, ...Array<string>(missing).fill('0'), ...rest];
  if (all.length !== 8) return undefined;
  return all.reduce((acc, group) => (acc << 16n) + BigInt(Number.parseInt(group, 16)), 0n);
}

function isTrusted(address: string, ranges: Range[]): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  const value = toBigInt(address, family);
  if (value === undefined) return false;
  return ranges.some((range) => range.family === family && (value & range.mask) === range.bits);
}

/**
 * The client address for a request whose socket peer is `peer` and whose
 * `X-Forwarded-For` header (all of its lines joined) is `forwardedFor`.
 */
export function clientIp(peer: string | undefined, forwardedFor: string | string[] | undefined, trust: Trust): string {
  const socketAddress = normalizeAddress(peer ?? '');
  if (trust.kind === 'none' || forwardedFor === undefined) return socketAddress;
  if (trust.kind === 'cidrs' && !isTrusted(socketAddress, trust.ranges)) return socketAddress;
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',');
  let client = socketAddress;
  for (let i = hops.length - 1, walked = 1; i >= 0; i--, walked++) {
    const hop = normalizeAddress(hops[i] ?? '');
    // Garbage where an address should be: the hop to its right is the last one we can vouch for.
    if (isIP(hop) === 0) return client;
    client = hop;
    if (trust.kind === 'hops' ? walked >= trust.hops : !isTrusted(hop, trust.ranges)) return client;
  }
  return client;
}
