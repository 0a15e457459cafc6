// pcap.test.ts: capture files round-trip, both byte orders and resolutions
// are read, and damaged or unsupported files are refused with BAD_PCAP.
import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/core/errors.js';
import { parsePcap, writePcap, LINKTYPE_ETHERNET, type Pcap } from '../../src/core/pcap.js';

const sample: Pcap = {
  nanosecond: false,
  linkType: LINKTYPE_ETHERNET,
  snapLen: 65535,
  packets: [
    { tsSec: 1, tsFrac: 500, data: Uint8Array.from({ length: 60 }, (_, i) => i), origLen: 60 },
    { tsSec: 2, tsFrac: 999999, data: Uint8Array.of(1, 2, 3), origLen: 1500 },
  ],
};

const bad = expect.objectContaining({ code: ErrorCodes.BAD_PCAP });

describe('pcap', () => {
  it('round-trips', () => {
    expect(parsePcap(writePcap(sample))).toEqual(sample);
    const ns = { ...sample, nanosecond: true };
    expect(parsePcap(writePcap(ns))).toEqual(ns);
  });

  it('reads big-endian files', () => {
    const le = writePcap(sample);
    const be = Buffer.from(le);
    be.writeUInt32BE(0xa1b2c3d4, 0);
    be.writeUInt16BE(2, 4);
    be.writeUInt16BE(4, 6);
    be.writeUInt32BE(65535, 16);
    be.writeUInt32BE(1, 20);
    let at = 24;
    for (const p of sample.packets) {
      be.writeUInt32BE(p.tsSec, at);
      be.writeUInt32BE(p.tsFrac, at + 4);
      be.writeUInt32BE(p.data.length, at + 8);
      be.writeUInt32BE(p.origLen, at + 12);
      at += 16 + p.data.length;
    }
    expect(parsePcap(be)).toEqual(sample);
  });

  it('refuses truncated, foreign and pcapng files', () => {
    const whole = writePcap(sample);
    expect(() => parsePcap(whole.subarray(0, 20))).toThrowError(bad);
    expect(() => parsePcap(whole.subarray(0, whole.length - 1))).toThrowError(bad);
    expect(() => parsePcap(whole.subarray(0, 24 + 10))).toThrowError(bad);
    expect(() => parsePcap(Buffer.from('hello world, this is not a capture'))).toThrowError(bad);
    const ng = Buffer.alloc(28);
    ng.writeUInt32LE(0x0a0d0d0a, 0);
    expect(() => parsePcap(ng)).toThrowError(/pcapng is not supported/);
  });
});
