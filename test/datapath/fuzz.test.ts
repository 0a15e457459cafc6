// fuzz.test.ts: tens of thousands of random and mutated frames through the
// load balancer. Invariants: the verdict is PASS, TX or DROP; a passed frame
// is never modified; a frame whose IP destination is not a VIP address is
// always passed; only VIP-addressed frames are dropped or transmitted; the
// disposition counters add up to the frames run.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isEvent, reasonName } from '../../src/bpf/abi.js';
import { readReasons } from '../../src/bpf/datapath.js';
import { ipBytes } from '../../src/core/net.js';
import { be16, concat, ETH_P_IP, ETH_P_IPV6, icmp4, icmp6, ipv4, ipv6, ipv6FragmentBody, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, tcp, udp, type Bytes } from '../../lab/packet.js';
import type { LbHarness } from './lib/harness.js';
import { prng } from './lib/prng.js';
import { fixtureLb, toLb, VIPS } from './lib/fixture.js';

const RANDOM_FRAMES = 10_000;
const MUTATED_FRAMES = 30_000;

const vipAddresses = new Set(Object.values(VIPS).map((v) => Buffer.from(ipBytes(v.address)).toString('hex')));

/** The oracle: the frame's IP destination, read the way any parser would, is a VIP address. */
function toVipAddress(frame: Bytes): boolean {
  if (frame.length < 14) return false;
  let at = 12;
  let type = (frame[at]! << 8) | frame[at + 1]!;
  for (let i = 0; i < 2 && (type === 0x8100 || type === 0x88a8); i++) {
    at += 4;
    if (at + 2 > frame.length) return false;
    type = (frame[at]! << 8) | frame[at + 1]!;
  }
  const l3 = at + 2;
  let dst: Bytes | undefined;
  if (type === ETH_P_IP && frame.length >= l3 + 20) dst = frame.subarray(l3 + 16, l3 + 20);
  if (type === ETH_P_IPV6 && frame.length >= l3 + 40) dst = frame.subarray(l3 + 24, l3 + 40);
  return dst !== undefined && vipAddresses.has(Buffer.from(dst).toString('hex'));
}

function seeds(): Bytes[] {
  const c4 = '192.0.2.7';
  const c6 = '2001:db8:ff::7';
  const e4 = (l3: Bytes, vlans?: { tci: number }[]) => toLb(ETH_P_IP, l3, vlans);
  const e6 = (l3: Bytes, vlans?: { tci: number }[]) => toLb(ETH_P_IPV6, l3, vlans);
  const out: Bytes[] = [];
  for (const v of Object.values(VIPS)) {
    const port = v.port === 0 ? 9999 : v.port;
    const proto = v.proto === 'tcp' ? PROTO_TCP : PROTO_UDP;
    if (v.address.includes(':')) {
      const l4 = proto === PROTO_TCP ? tcp(c6, v.address, { sport: 1234, dport: port }) : udp(c6, v.address, { sport: 1234, dport: port }, new Uint8Array(20));
      out.push(e6(ipv6({ src: c6, dst: v.address, proto }, l4)));
      out.push(e6(ipv6({ src: c6, dst: v.address, proto, extensions: [{ type: 0 }, { type: 44, body: ipv6FragmentBody(0, true, 5) }] }, l4), [{ tci: 3 }]));
      const quoted = ipv6({ src: v.address, dst: c6, proto }, proto === PROTO_TCP ? tcp(v.address, c6, { sport: port, dport: 1234 }) : udp(v.address, c6, { sport: port, dport: 1234 }));
      out.push(e6(ipv6({ src: '2001:db8:ee::1', dst: v.address, proto: PROTO_ICMPV6 }, icmp6('2001:db8:ee::1', v.address, 2, 0, Uint8Array.of(0, 0, 5, 0), quoted))));
    } else {
      const l4 = proto === PROTO_TCP ? tcp(c4, v.address, { sport: 1234, dport: port }) : udp(c4, v.address, { sport: 1234, dport: port }, new Uint8Array(20));
      out.push(e4(ipv4({ src: c4, dst: v.address, proto, df: true }, l4)));
      out.push(e4(ipv4({ src: c4, dst: v.address, proto, options: Uint8Array.of(1, 1, 1, 0) }, l4), [{ tci: 1 }, { tci: 2 }]));
      out.push(e4(ipv4({ src: c4, dst: v.address, proto, fragOffset: 20 }, l4)));
      const quoted = ipv4({ src: v.address, dst: c4, proto }, proto === PROTO_TCP ? tcp(v.address, c4, { sport: port, dport: 1234 }) : udp(v.address, c4, { sport: port, dport: 1234 }));
      out.push(e4(ipv4({ src: '198.51.100.9', dst: v.address, proto: PROTO_ICMP }, icmp4(3, 4, concat(be16(0), be16(1400)), quoted.subarray(0, 28)))));
    }
  }
  out.push(e4(ipv4({ src: c4, dst: '10.250.0.1', proto: PROTO_TCP }, tcp(c4, '10.250.0.1', { sport: 1, dport: 80 }))));
  out.push(e6(ipv6({ src: c6, dst: '2001:db8:250::1', proto: PROTO_UDP }, udp(c6, '2001:db8:250::1', { sport: 1, dport: 53 }))));
  out.push(e4(ipv4({ src: c4, dst: '10.100.0.1', proto: PROTO_TCP, df: true }, tcp(c4, '10.100.0.1', { sport: 1, dport: 80 }, new Uint8Array(1460)))));
  return out;
}

function mutate(seed: Bytes, next: () => number): Bytes {
  let b: Bytes = Uint8Array.from(seed);
  const n = 1 + (next() % 4);
  for (let i = 0; i < n; i++) {
    const op = next() % 6;
    if (op === 0) b[next() % b.length] = next() & 0xff; // any byte
    else if (op === 1) b[14 + (next() % Math.min(64, b.length - 14))] = next() & 0xff; // a header byte
    else if (op === 2) {
      const at = 14 + (next() % Math.min(64, b.length - 14)); // a header bit
      b[at] = b[at]! ^ (1 << (next() % 8));
    }
    else if (op === 3) b = b.subarray(0, 14 + (next() % (b.length - 13))); // truncate
    else if (op === 4) b = concat(b, Uint8Array.from({ length: next() % 64 }, () => next() & 0xff)); // trailing junk
    else {
      // header length fields: IHL, total length, IPv6 payload length, TCP data offset
      const at = [14, 16, 17, 18, 19, 14 + 32, 14 + 52][next() % 7]!;
      if (at < b.length) b[at] = next() & 0xff;
    }
  }
  return b.length < 14 ? concat(b, new Uint8Array(14 - b.length)) : b;
}

describe('fuzz: random and mutated frames', () => {
  let h: LbHarness;
  beforeAll(() => {
    h = fixtureLb();
  });
  afterAll(() => h.close());

  it(`${String(RANDOM_FRAMES + MUTATED_FRAMES)} frames keep the invariants`, () => {
    const next = prng(0xf022);
    const pool = seeds();
    const before = readReasons(h.maps.reasonStats);
    const failures: string[] = [];
    const verdicts = { PASS: 0, TX: 0, DROP: 0 };
    const total = RANDOM_FRAMES + MUTATED_FRAMES;
    for (let n = 0; n < total; n++) {
      let frame: Bytes;
      if (n < RANDOM_FRAMES) {
        frame = Uint8Array.from({ length: 14 + (next() % 200) }, () => next() & 0xff);
        const types = [ETH_P_IP, ETH_P_IPV6, 0x8100, 0x88a8, next() & 0xffff];
        const t = types[next() % types.length]!;
        frame[12] = t >> 8;
        frame[13] = t & 0xff;
        if (next() % 2 === 0 && frame.length >= 54) {
          // aim some random frames at VIP addresses
          const v = [...vipAddresses][next() % vipAddresses.size]!;
          const addr = Buffer.from(v, 'hex');
          frame[12] = addr.length === 4 ? 0x08 : 0x86;
          frame[13] = addr.length === 4 ? 0x00 : 0xdd;
          frame[14] = addr.length === 4 ? 0x45 : 0x60;
          frame.set(addr, addr.length === 4 ? 30 : 38);
        }
      } else {
        frame = mutate(pool[next() % pool.length]!, next);
      }
      const r = h.runFast(frame);
      const vip = toVipAddress(frame);
      const where = () => `frame ${String(n)} ${Buffer.from(frame).toString('hex').slice(0, 160)}`;
      if (r.verdict !== 'PASS' && r.verdict !== 'TX' && r.verdict !== 'DROP') failures.push(`${where()}: verdict ${r.verdict}`);
      else verdicts[r.verdict]++;
      if (r.verdict === 'PASS' && !r.out.equals(Buffer.from(frame))) failures.push(`${where()}: passed but modified`);
      if (!vip && r.verdict !== 'PASS') failures.push(`${where()}: not for a VIP but ${r.verdict}`);
      if (failures.length > 10) break;
    }
    expect(failures).toEqual([]);

    const after = readReasons(h.maps.reasonStats);
    let dispositions = 0;
    for (const name of reasonName) if (!isEvent(name)) dispositions += Number(after[name].packets - before[name].packets);
    expect(dispositions).toBe(total);
    console.log('fuzz verdicts', verdicts);
    expect(verdicts.TX).toBeGreaterThan(1000);
    expect(verdicts.DROP).toBeGreaterThan(100);
  });
});
