// packet.ts: a small frame builder and checker (Ethernet with VLAN tags,
// IPv4 with options, IPv6 with extension headers, TCP, UDP, ICMP, ICMPv6),
// computing every checksum itself, independently of the datapath. Used by
// the datapath tests and the benchmark to craft input and expected output.

import { ipBytes, macBytes } from '../src/core/net.js';

export const ETH_P_IP = 0x0800;
export const ETH_P_IPV6 = 0x86dd;
export const ETH_P_8021Q = 0x8100;
export const ETH_P_8021AD = 0x88a8;
export const PROTO_ICMP = 1;
export const PROTO_IPIP = 4;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_IPV6 = 41;
export const PROTO_ICMPV6 = 58;

export type Bytes = Uint8Array;
type Addr = string | Uint8Array;

export function concat(...parts: readonly Bytes[]): Bytes {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function u16(n: number): Bytes {
  return Uint8Array.of((n >> 8) & 0xff, n & 0xff);
}

function u32(n: number): Bytes {
  return Uint8Array.of((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

/** Ones'-complement sum of big-endian 16-bit words, unfolded. */
function sum16(data: Bytes, initial = 0): number {
  let s = initial;
  for (let i = 0; i + 1 < data.length; i += 2) s += (data[i]! << 8) | data[i + 1]!;
  if (data.length % 2 === 1) s += data[data.length - 1]! << 8;
  return s;
}

/** Internet checksum (RFC 1071) of the concatenated parts. */
export function checksum(...parts: readonly Bytes[]): number {
  let s = sum16(concat(...parts));
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

function pseudoHeader(src: Bytes, dst: Bytes, proto: number, length: number): Bytes {
  if (src.length === 4) return concat(src, dst, Uint8Array.of(0, proto), u16(length));
  return concat(src, dst, u32(length), Uint8Array.of(0, 0, 0, proto));
}

export interface VlanTag {
  tpid?: number;
  tci: number;
}

export interface EthernetOptions {
  dst: Addr;
  src: Addr;
  type: number;
  vlans?: readonly VlanTag[];
}

export function ethernet(o: { dst: string | Bytes; src: string | Bytes; type: number; vlans?: readonly VlanTag[] }, payload: Bytes): Bytes {
  const tags = (o.vlans ?? []).map((v, i, all) => concat(u16(v.tpid ?? (all.length > 1 && i === 0 ? ETH_P_8021AD : ETH_P_8021Q)), u16(v.tci)));
  return concat(macBytes(o.dst), macBytes(o.src), ...tags, u16(o.type), payload);
}

export interface Ipv4Options {
  src: Addr;
  dst: Addr;
  proto: number;
  ttl?: number;
  tos?: number;
  id?: number;
  df?: boolean;
  mf?: boolean;
  /** Fragment offset in 8-byte units. */
  fragOffset?: number;
  /** IP options, padded by the caller to a multiple of 4. */
  options?: Bytes;
  /** Override the IHL field (malformed packets). */
  ihl?: number;
  /** Override the total length field. */
  totalLength?: number;
}

export function ipv4(o: Ipv4Options, payload: Bytes): Bytes {
  const options = o.options ?? new Uint8Array(0);
  const hlen = 20 + options.length;
  const flags = (o.df === true ? 0x4000 : 0) | (o.mf === true ? 0x2000 : 0) | ((o.fragOffset ?? 0) & 0x1fff);
  const header = concat(
    Uint8Array.of(0x40 | ((o.ihl ?? hlen / 4) & 0xf), o.tos ?? 0),
    u16(o.totalLength ?? hlen + payload.length),
    u16(o.id ?? 0x1234),
    u16(flags),
    Uint8Array.of(o.ttl ?? 64, o.proto),
    u16(0),
    ipBytes(o.src),
    ipBytes(o.dst),
    options,
  );
  const c = checksum(header);
  header[10] = c >> 8;
  header[11] = c & 0xff;
  return concat(header, payload);
}

export interface Ipv6Extension {
  /** Header type: 0 hop-by-hop, 43 routing, 60 destination options, 44 fragment. */
  type: number;
  /** Body after next-header and length bytes (6 + 8n bytes; fragment: 6 bytes). */
  body?: Bytes;
}

export interface Ipv6Options {
  src: Addr;
  dst: Addr;
  /** Upper-layer protocol (after any extension headers). */
  proto: number;
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
  extensions?: readonly Ipv6Extension[];
  payloadLength?: number;
}

/** IPv6 fragment header body (after next-header, reserved): offset in 8-byte units, M flag, id. */
export function ipv6FragmentBody(offset: number, more: boolean, id: number): Bytes {
  return concat(Uint8Array.of(0), u16(((offset & 0x1fff) << 3) | (more ? 1 : 0)), u32(id));
}

export function ipv6(o: Ipv6Options, payload: Bytes): Bytes {
  const ext = o.extensions ?? [];
  const chain: Bytes[] = [];
  ext.forEach((e, i) => {
    const next = i + 1 < ext.length ? ext[i + 1]!.type : o.proto;
    if (e.type === 44) {
      chain.push(concat(Uint8Array.of(next), e.body ?? ipv6FragmentBody(0, false, 1)));
    } else {
      const body = e.body ?? new Uint8Array(6);
      chain.push(concat(Uint8Array.of(next, (body.length + 2) / 8 - 1), body));
    }
  });
  const rest = concat(...chain, payload);
  const first = (6 << 28) | ((o.trafficClass ?? 0) << 20) | ((o.flowLabel ?? 0) & 0xfffff);
  return concat(
    u32(first >>> 0),
    u16(o.payloadLength ?? rest.length),
    Uint8Array.of(ext.length > 0 ? ext[0]!.type : o.proto, o.hopLimit ?? 64),
    ipBytes(o.src),
    ipBytes(o.dst),
    rest,
  );
}

export interface TcpOptions {
  sport: number;
  dport: number;
  seq?: number;
  ack?: number;
  /** Flag bits, default SYN (0x02). */
  flags?: number;
  window?: number;
  options?: Bytes;
  /** Override data offset (malformed packets). */
  doff?: number;
}

export function tcp(src: Addr, dst: Addr, o: TcpOptions, payload: Bytes = new Uint8Array(0)): Bytes {
  const options = o.options ?? new Uint8Array(0);
  const doff = o.doff ?? (20 + options.length) / 4;
  const seg = concat(u16(o.sport), u16(o.dport), u32(o.seq ?? 1), u32(o.ack ?? 0), Uint8Array.of(doff << 4, o.flags ?? 0x02), u16(o.window ?? 65535), u16(0), u16(0), options, payload);
  const s = ipBytes(src);
  const c = checksum(pseudoHeader(s, ipBytes(dst), PROTO_TCP, seg.length), seg);
  seg[16] = c >> 8;
  seg[17] = c & 0xff;
  return seg;
}

export function udp(src: Addr, dst: Addr, o: { sport: number; dport: number; length?: number }, payload: Bytes = new Uint8Array(0)): Bytes {
  const len = 8 + payload.length;
  const dg = concat(u16(o.sport), u16(o.dport), u16(o.length ?? len), u16(0), payload);
  const c = checksum(pseudoHeader(ipBytes(src), ipBytes(dst), PROTO_UDP, len), dg);
  const v = c === 0 ? 0xffff : c;
  dg[6] = v >> 8;
  dg[7] = v & 0xff;
  return dg;
}

/**
 * The UDP payload of a GUE packet as xdplb sends it (docs/second-chance.md):
 * the GUE header (variant 0, Hlen the words of private data, proto the inner
 * IP protocol) and, with a second hop, xdplb's private data naming it; then
 * the inner IP packet. Wrap it in udp(...) to port 6080 with checksum 0.
 */
export function guePayload(innerProto: number, inner: Bytes, hop?: { address: string; hopsLeft: number }): Bytes {
  if (hop === undefined) return concat(Uint8Array.of(0, innerProto, 0, 0), inner);
  const a = ipBytes(hop.address);
  return concat(Uint8Array.of(a.length === 4 ? 2 : 5, innerProto, 0, 0), Uint8Array.of(0x78, 1, hop.hopsLeft, a.length === 4 ? 2 : 10), a, inner);
}

/** A UDP datagram with checksum 0 (a tunnel's: the inner packet carries its own). */
export function udpNoChecksum(o: { sport: number; dport: number }, payload: Bytes): Bytes {
  return concat(u16(o.sport), u16(o.dport), u16(8 + payload.length), u16(0), payload);
}

/** ICMPv4 message: type, code, 4 bytes of type data, body. */
export function icmp4(type: number, code: number, rest: Bytes, body: Bytes): Bytes {
  const msg = concat(Uint8Array.of(type, code, 0, 0), rest, body);
  const c = checksum(msg);
  msg[2] = c >> 8;
  msg[3] = c & 0xff;
  return msg;
}

/** ICMPv6 message (checksum over the pseudo header). */
export function icmp6(src: Addr, dst: Addr, type: number, code: number, rest: Bytes, body: Bytes): Bytes {
  const msg = concat(Uint8Array.of(type, code, 0, 0), rest, body);
  const c = checksum(pseudoHeader(ipBytes(src), ipBytes(dst), PROTO_ICMPV6, msg.length), msg);
  msg[2] = c >> 8;
  msg[3] = c & 0xff;
  return msg;
}

export { u16 as be16, u32 as be32 };

// ---- checks on frames the datapath produced -------------------------------

/** Offset of the L3 header after Ethernet and VLAN tags, and its ethertype. */
export function l3Offset(frame: Bytes): { offset: number; type: number } {
  let at = 12;
  let type = (frame[at]! << 8) | frame[at + 1]!;
  while ((type === ETH_P_8021Q || type === ETH_P_8021AD) && at < 20) {
    at += 4;
    type = (frame[at]! << 8) | frame[at + 1]!;
  }
  return { offset: at + 2, type };
}

/** The IPv4 header at `at` has a valid checksum. */
export function ipv4HeaderChecksumOk(frame: Bytes, at: number): boolean {
  const ihl = (frame[at]! & 0xf) * 4;
  return checksum(frame.subarray(at, at + ihl)) === 0;
}

/** The ICMP (v4) message of `length` bytes at `at` has a valid checksum. */
export function icmp4ChecksumOk(frame: Bytes, at: number, length: number): boolean {
  return checksum(frame.subarray(at, at + length)) === 0;
}

/** The ICMPv6 message after the IPv6 header at `l3` has a valid checksum. */
export function icmp6ChecksumOk(frame: Bytes, l3: number): boolean {
  const len = (frame[l3 + 4]! << 8) | frame[l3 + 5]!;
  const src = frame.subarray(l3 + 8, l3 + 24);
  const dst = frame.subarray(l3 + 24, l3 + 40);
  return checksum(pseudoHeader(src, dst, PROTO_ICMPV6, len), frame.subarray(l3 + 40, l3 + 40 + len)) === 0;
}
