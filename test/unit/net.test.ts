// net.test.ts: address text <-> bytes, and canonical IPv6 text (RFC 5952),
// which is how the agent compares what the maps hold with what is wanted.
import { isIPv6 } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalIp, ipBytes, ipText, macBytes } from '../../src/core/net.js';
import { ErrorCodes } from '../../src/core/errors.js';

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
