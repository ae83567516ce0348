import { describe, expect, it } from 'vitest';
import { clientIp, normalizeAddress, parseTrust, TrustError } from '../../src/runtime/client-ip.js';
import { fetchRaw, startFixture } from '../helpers.js';

describe('clientIp', () => {
  const loopback = parseTrust('loopback');
  const privateNets = parseTrust('loopback,private');

  it('is the socket peer when no proxy is trusted, whatever the header says', () => {
    expect(clientIp('198.51.100.7', '203.0.113.1', parseTrust(undefined))).toBe('198.51.100.7');
  });

  it('ignores the header when the peer is not a trusted proxy', () => {
    expect(clientIp('198.51.100.7', '203.0.113.1', loopback)).toBe('198.51.100.7');
  });

  it('takes the right-most address that is not a trusted proxy', () => {
    expect(clientIp('127.0.0.1', '203.0.113.1, 198.51.100.2, 10.0.0.3', privateNets)).toBe('198.51.100.2');
  });

  it('never reads left of the first untrusted hop, where the client writes', () => {
    // The client sent "1.1.1.1" itself; our proxy appended the real address.
    expect(clientIp('10.0.0.9', '1.1.1.1, 198.51.100.2', privateNets)).toBe('198.51.100.2');
  });

  it('joins repeated header lines in order', () => {
    expect(clientIp('127.0.0.1', ['203.0.113.1', '10.0.0.2'], privateNets)).toBe('203.0.113.1');
  });

  it('returns the left-most address when every hop is trusted', () => {
    expect(clientIp('127.0.0.1', '10.0.0.1, 10.0.0.2', privateNets)).toBe('10.0.0.1');
  });

  it('stops at garbage and keeps the last address it can vouch for', () => {
    expect(clientIp('127.0.0.1', 'not-an-ip, 10.0.0.2', privateNets)).toBe('10.0.0.2');
    expect(clientIp('127.0.0.1', '<script>', privateNets)).toBe('127.0.0.1');
    expect(clientIp('127.0.0.1', '', privateNets)).toBe('127.0.0.1');
  });

  it('counts hops like Express: N means the peer and N-1 more hops are proxies', () => {
    expect(clientIp('10.0.0.1', '203.0.113.1, 198.51.100.2', parseTrust('1'))).toBe('198.51.100.2');
    expect(clientIp('10.0.0.1', '203.0.113.1, 198.51.100.2', parseTrust('2'))).toBe('203.0.113.1');
    expect(clientIp('10.0.0.1', '203.0.113.1', parseTrust('5'))).toBe('203.0.113.1');
  });

  it('handles IPv6 peers, IPv6 hops and CIDRs', () => {
    const trust = parseTrust('::1/128, 2001:db8::/32');
    expect(clientIp('::1', '2001:db8::5, 2600:1f18::1, 2001:db8:ffff::1', trust)).toBe('2600:1f18::1');
  });

  it('treats IPv4-mapped IPv6 addresses as the IPv4 address', () => {
    expect(normalizeAddress('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(clientIp('::ffff:127.0.0.1', '203.0.113.1', loopback)).toBe('203.0.113.1');
    expect(clientIp('::1', '::ffff:203.0.113.1', loopback)).toBe('203.0.113.1');
  });

  it('rejects a malformed trust list naming the entry', () => {
    expect(() => parseTrust('10.0.0.0/8, banana')).toThrow(TrustError);
    expect(() => parseTrust('10.0.0.0/33')).toThrow(/prefix length/);
    expect(() => parseTrust('0')).toThrow(/hop count/);
  });
});

describe('client IP on a real socket', () => {
  const spoof = { 'x-forwarded-for': '6.6.6.6' };

  it('does not let a spoofed X-Forwarded-For change the address when no proxy is trusted', async () => {
    const server = await startFixture();
    const reply = await fetchRaw(server.port, '/ip', { headers: spoof });
    expect(JSON.parse(reply.body)).toEqual({ ip: '127.0.0.1' });
  });

  it('believes a trusted loopback proxy and logs the client address it reports', async () => {
    const server = await startFixture({ TRUSTED_PROXIES: 'loopback' });
    const reply = await fetchRaw(server.port, '/ip', { headers: { 'x-forwarded-for': '6.6.6.6, 203.0.113.4' } });
    expect(JSON.parse(reply.body)).toEqual({ ip: '203.0.113.4' });
    const line = await server.waitForLog((l) => l.message === 'request');
    expect((line.httpRequest as Record<string, unknown>).remoteIp).toBe('203.0.113.4');
  });

  it('does not believe a proxy outside the trusted ranges', async () => {
    const server = await startFixture({ TRUSTED_PROXIES: '10.0.0.0/8' });
    const reply = await fetchRaw(server.port, '/ip', { headers: spoof });
    expect(JSON.parse(reply.body)).toEqual({ ip: '127.0.0.1' });
  });

  it('reports an IPv6 loopback peer, and an IPv4 peer on a dual-stack socket without the ::ffff: prefix', async () => {
    const server = await startFixture({ HOST: '::' });
    const v6 = await fetchRaw(server.port, '/ip', { host: '::1' });
    expect(JSON.parse(v6.body)).toEqual({ ip: '::1' });
    const v4 = await fetchRaw(server.port, '/ip');
    expect(JSON.parse(v4.body)).toEqual({ ip: '127.0.0.1' });
  });

  it('survives garbage in the header and falls back to the proxy it can vouch for', async () => {
    const server = await startFixture({ TRUSTED_PROXIES: 'loopback' });
    const reply = await fetchRaw(server.port, '/ip', { headers: { 'x-forwarded-for': '", DROP TABLE; 999.1.1.1' } });
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.body)).toEqual({ ip: '127.0.0.1' });
  });
});
