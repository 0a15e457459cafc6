// pcap.ts: classic libpcap capture files, read and written in memory (pure).
// Reads both byte orders and both microsecond and nanosecond timestamps;
// writes little-endian, microsecond or nanosecond as the input was. Only
// Ethernet captures (link type 1) carry what the XDP program sees. pcapng is
// refused with a hint (tcpdump -r in.pcapng -w out.pcap converts it).
import { ErrorCodes, XdplbError } from './errors.js';

export const LINKTYPE_ETHERNET = 1;

export interface PcapPacket {
  /** Seconds and sub-second part (µs or ns, per the file's resolution). */
  readonly tsSec: number;
  readonly tsFrac: number;
  readonly data: Uint8Array;
  /** Length on the wire; more than data.length if the capture was truncated (snaplen). */
  readonly origLen: number;
}

export interface Pcap {
  readonly nanosecond: boolean;
  readonly linkType: number;
  readonly snapLen: number;
  readonly packets: readonly PcapPacket[];
}

const MAGIC_US = 0xa1b2c3d4;
const MAGIC_NS = 0xa1b23c4d;
const MAGIC_PCAPNG = 0x0a0d0d0a;

function bad(message: string): XdplbError {
  return new XdplbError(ErrorCodes.BAD_PCAP, message);
}

export function parsePcap(bytes: Uint8Array): Pcap {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (b.length < 24) throw bad(`not a pcap file: ${b.length} bytes, the header alone is 24`);
  const le = b.readUInt32LE(0);
  const bem = b.readUInt32BE(0);
  if (le === MAGIC_PCAPNG) throw bad('pcapng is not supported; convert it with: tcpdump -r in.pcapng -w out.pcap');
  let little: boolean;
  let nanosecond: boolean;
  if (le === MAGIC_US || le === MAGIC_NS) {
    little = true;
    nanosecond = le === MAGIC_NS;
  } else if (bem === MAGIC_US || bem === MAGIC_NS) {
    little = false;
    nanosecond = bem === MAGIC_NS;
  } else {
    throw bad(`not a pcap file (magic 0x${le.toString(16)})`);
  }
  const u32 = (at: number): number => (little ? b.readUInt32LE(at) : b.readUInt32BE(at));
  const u16 = (at: number): number => (little ? b.readUInt16LE(at) : b.readUInt16BE(at));
  const major = u16(4);
  if (major !== 2) throw bad(`pcap version ${major}.${u16(6)} is not supported (2.4 is)`);
  const snapLen = u32(16);
  const linkType = u32(20) & 0x0fffffff;
  const packets: PcapPacket[] = [];
  let at = 24;
  while (at < b.length) {
    if (at + 16 > b.length) throw bad(`record ${packets.length + 1} is truncated: its 16-byte header starts ${b.length - at} bytes before the end`);
    const incl = u32(at + 8);
    const orig = u32(at + 12);
    if (incl > 262144) throw bad(`record ${packets.length + 1} claims ${incl} bytes (at most 262144)`);
    if (at + 16 + incl > b.length) throw bad(`record ${packets.length + 1} is truncated: ${incl} bytes claimed, ${b.length - at - 16} present`);
    packets.push({ tsSec: u32(at), tsFrac: u32(at + 4), data: Uint8Array.from(b.subarray(at + 16, at + 16 + incl)), origLen: orig });
    at += 16 + incl;
  }
  return { nanosecond, linkType, snapLen, packets };
}

export function writePcap(p: Pcap): Buffer {
  const size = 24 + p.packets.reduce((n, pkt) => n + 16 + pkt.data.length, 0);
  const b = Buffer.alloc(size);
  b.writeUInt32LE(p.nanosecond ? MAGIC_NS : MAGIC_US, 0);
  b.writeUInt16LE(2, 4);
  b.writeUInt16LE(4, 6);
  b.writeUInt32LE(p.snapLen, 16);
  b.writeUInt32LE(p.linkType, 20);
  let at = 24;
  for (const pkt of p.packets) {
    b.writeUInt32LE(pkt.tsSec, at);
    b.writeUInt32LE(pkt.tsFrac, at + 4);
    b.writeUInt32LE(pkt.data.length, at + 8);
    b.writeUInt32LE(Math.max(pkt.origLen, pkt.data.length), at + 12);
    b.set(pkt.data, at + 16);
    at += 16 + pkt.data.length;
  }
  return b;
}
