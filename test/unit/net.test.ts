// net.test.ts: address text <-> bytes, and canonical IPv6 text (RFC 5952),
// which is how the agent compares what the maps hold with what is wanted;
// and which interface holds an address (--interface auto of the decap role).
import { isIPv6 } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalIp, ipBytes, ipText, macBytes } from '../../src/core/net.js';
import { ErrorCodes } from '../../src/core/errors.js';
import { interfaceHolding } from '../../src/net/interfaces.js';

describe('addresses', () => {
  it.each([
    ['2001:DB8::1', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['::ffff:192.0.2.1', '::ffff:c000:201'],
    ['192.0.2.1', '192.0.2.1'],
  ])('canonical %s -> %s', (input, out) => {
    expect(canonicalIp(input)).toBe(out);
  });

  it('round-trips any address through bytes and text', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => {
        const text = ipText(b);
        expect(isIPv6(text)).toBe(true);
        expect(Buffer.from(ipBytes(text)).equals(Buffer.from(b))).toBe(true);
        expect(canonicalIp(text)).toBe(text);
      }),
    );
  });

  it('refuses what is not an address, with a stable code', () => {
    for (const bad of ['', '1.2.3', '300.1.1.1', 'fe80::1%eth0', 'hello']) {
      expect(() => ipBytes(bad)).toThrowError(expect.objectContaining({ code: ErrorCodes.BAD_CONFIG }));
    }
    expect(() => macBytes('02:00:00:00:00')).toThrowError(expect.objectContaining({ code: ErrorCodes.BAD_CONFIG }));
  });
});

describe('the interface holding an address', () => {
  const info = (address: string, internal = false) => ({ address, netmask: '', family: address.includes(':') ? ('IPv6' as const) : ('IPv4' as const), mac: '00:00:00:00:00:00', internal, cidr: null, scopeid: 0 });
  const host = {
    lo: [info('127.0.0.1', true), info('::1', true)],
    ens5: [info('10.0.1.7'), info('fe80::1')],
    cni0: [info('10.244.0.1')],
    ens6: [info('2001:db8::7')],
  };

  it('finds the one holding the first address it holds, in canonical form; never loopback; null when none does', () => {
    expect(interfaceHolding(['10.0.1.7'], host)).toBe('ens5');
    expect(interfaceHolding(['192.0.2.1', '2001:DB8:0::7'], host)).toBe('ens6');
    expect(interfaceHolding(['127.0.0.1'], host)).toBeNull();
    expect(interfaceHolding([], host)).toBeNull();
    expect(interfaceHolding(['10.9.9.9'], host)).toBeNull();
  });
});
