// flow-hash.ts: the datapath's flow hash, in TypeScript, bit for bit as in
// bpf/include/flow_hash.h (lookup3 / jhash2 over little-endian 32-bit words of
// the packet). The control plane uses it to predict which backend a flow gets;
// test/vectors/flow-hash.json pins the values and the C header is checked
// against the same file.

export type Affinity = 'fiveTuple' | 'sourceIp';

export interface Flow {
  /** Source address, 4 (IPv4) or 16 (IPv6) bytes in network order. */
  readonly src: Uint8Array;
  /** Destination address, same family as src. */
  readonly dst: Uint8Array;
  readonly sport: number;
  readonly dport: number;
  /** IP protocol number (6 = TCP, 17 = UDP). */
  readonly proto: number;
}

export const FLOW_HASH_SEED = 0x78646c62; // "xdlb", as XDPLB_FLOW_HASH_SEED
const JHASH_INIT = 0xdeadbeef;

function le32(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24);
}

/** The ports word: the first 4 bytes of the L4 header loaded little-endian. */
export function portsWord(sport: number, dport: number): number {
  return ((sport >>> 8) & 0xff) | ((sport & 0xff) << 8) | (((dport >>> 8) & 0xff) << 16) | ((dport & 0xff) << 24);
}

/** lookup3 hash of 32-bit words, as jhash2(words, length, FLOW_HASH_SEED). */
export function jhashWords(words: ArrayLike<number>): number {
  let a: number, b: number, c: number;
  a = b = c = (JHASH_INIT + (words.length << 2) + FLOW_HASH_SEED) | 0;
  let i = 0;
  let n = words.length;
  while (n > 3) {
    a = (a + words[i]!) | 0;
    b = (b + words[i + 1]!) | 0;
    c = (c + words[i + 2]!) | 0;
    // mix
    a = (a - c) | 0; a ^= (c << 4) | (c >>> 28); c = (c + b) | 0;
    b = (b - a) | 0; b ^= (a << 6) | (a >>> 26); a = (a + c) | 0;
    c = (c - b) | 0; c ^= (b << 8) | (b >>> 24); b = (b + a) | 0;
    a = (a - c) | 0; a ^= (c << 16) | (c >>> 16); c = (c + b) | 0;
    b = (b - a) | 0; b ^= (a << 19) | (a >>> 13); a = (a + c) | 0;
    c = (c - b) | 0; c ^= (b << 4) | (b >>> 28); b = (b + a) | 0;
    i += 3;
    n -= 3;
  }
  if (n === 0) return c >>> 0;
  if (n === 3) c = (c + words[i + 2]!) | 0;
  if (n >= 2) b = (b + words[i + 1]!) | 0;
  a = (a + words[i]!) | 0;
  // final
  c ^= b; c = (c - ((b << 14) | (b >>> 18))) | 0;
  a ^= c; a = (a - ((c << 11) | (c >>> 21))) | 0;
  b ^= a; b = (b - ((a << 25) | (a >>> 7))) | 0;
  c ^= b; c = (c - ((b << 16) | (b >>> 16))) | 0;
  a ^= c; a = (a - ((c << 4) | (c >>> 28))) | 0;
  b ^= a; b = (b - ((a << 14) | (a >>> 18))) | 0;
  c ^= b; c = (c - ((b << 24) | (b >>> 8))) | 0;
  return c >>> 0;
}

/** The flow hash the datapath computes for this flow under this affinity. */
export function flowHash(flow: Flow, affinity: Affinity): number {
  const { src, dst } = flow;
  if (src.length !== dst.length || (src.length !== 4 && src.length !== 16)) {
    throw new RangeError(`flow addresses must both be 4 or 16 bytes, got ${src.length} and ${dst.length}`);
  }
  const ports = affinity === 'sourceIp' ? 0 : portsWord(flow.sport, flow.dport);
  const words: number[] = [];
  for (let at = 0; at < src.length; at += 4) words.push(le32(src, at));
  for (let at = 0; at < dst.length; at += 4) words.push(le32(dst, at));
  words.push(ports, flow.proto & 0xff);
  return jhashWords(words);
}

/** The table slot a flow hash selects in a table of `size` slots. */
export function tableIndex(hash: number, size: number): number {
  return (hash >>> 0) % size;
}
