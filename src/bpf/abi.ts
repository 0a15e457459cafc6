// abi.ts: the TypeScript side of bpf/include/abi.h and reasons.h. One codec
// per shared struct (encode to / decode from the exact bytes the datapath
// reads), its layout (size and field offsets, checked against the object's
// BTF by test/datapath/abi.test.ts; the codecs take every offset from the
// layout, never a literal), the packing of a table slot (backend, alternate
// and second hop in one u64), the flag and constant values, and the reason
// codes with the C enum's names and numbers.

export const FAMILY_V4 = 2;
export const FAMILY_V6 = 10;

/** vip_meta.flags */
export const VIP_F_SOURCE_IP_AFFINITY = 1 << 0;
export const VIP_F_MODE_L2DSR = 1 << 1;
export const VIP_F_FLOW_TABLE = 1 << 2;
export const VIP_F_MODE_GUE = 1 << 3;
/** backend.flags */
export const BACKEND_F_VALID = 1 << 0;
/** lb_ctl.flags */
export const CTL_F_WILDCARD_VIPS = 1 << 0;
/** "No backend index" on the TypeScript side; also the low word of a slot with no backend and no alternate. */
export const BACKEND_NONE = 0xffffffff;
/**
 * A table slot (the u64 of an inner map of lb_tables) packs three backend
 * indices: the primary (the slot's owner) in bits 0-15, its alternate in bits
 * 16-31, its second hop in bits 32-47, bits 48-63 all ones; SLOT_NONE in a
 * field means none, so backend indices stay below it. Here a slot is two u32
 * words, little-endian: the low one (primary, alternate), the high one
 * (second hop, reserved).
 */
export const SLOT_INDEX_MASK = 0xffff;
export const SLOT_ALT_SHIFT = 16;
export const SLOT_HOP_SHIFT = 32;
export const SLOT_NONE = 0xffff;
/** Bytes and u32 words of a table slot. */
export const SLOT_BYTES = 8;
export const SLOT_WORDS = 2;
/** UDP destination port of GUE packets (XDPLB_GUE_PORT). */
export const GUE_PORT = 6080;
/** lb_ctl.mtu: 0 (no check) or at least this. */
export const MIN_MTU = 1280;
export const BENCH_MAX_COPY = 256;

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** Stable reason codes (enum xdplb_reason); the C name is XDPLB_<name>. */
export const Reason = {
  PASS_NOT_IP: 0,
  PASS_NOT_VIP: 1,
  PASS_MALFORMED: 2,
  FWD_IPIP: 3,
  FWD_L2DSR: 4,
  FWD_ICMP_ERROR: 5,
  ICMP_TOO_BIG_SENT: 6,
  DROP_MALFORMED: 7,
  DROP_NO_BACKEND: 8,
  DROP_BACKEND_UNRESOLVED: 9,
  DROP_TOO_BIG: 10,
  DROP_ENCAP_FAILED: 11,
  DECAP_OK: 12,
  DECAP_PASS_NOT_TUNNEL: 13,
  DECAP_PASS_NOT_LOCAL: 14,
  DECAP_PASS_FRAGMENT: 15,
  DROP_DECAP_FAILED: 16,
  EV_FRAGMENT: 17,
  EV_FLOW_TABLE_HIT: 18,
  EV_FLOW_TABLE_MISS: 19,
  EV_FLOW_TABLE_STALE: 20,
  DROP_BACKEND_DOWN: 21,
  EV_ALTERNATE: 22,
  EV_FALLBACK: 23,
  FWD_GUE: 24,
  DECAP_FWD_SECOND_HOP: 25,
  EV_SC_SYN: 26,
  EV_SC_LOCAL: 27,
  EV_SC_COOKIE: 28,
  EV_SC_NO_HOP: 29,
} as const;
export type ReasonName = keyof typeof Reason;
export const REASON_MAX = 30;

/** Events are counted in addition to a packet's one disposition; they do not sum. */
export function isEvent(name: ReasonName): boolean {
  return name.startsWith('EV_');
}

export const reasonName: readonly ReasonName[] = (() => {
  const names: ReasonName[] = [];
  for (const [name, code] of Object.entries(Reason)) names[code] = name as ReasonName;
  return names;
})();

/** Size and field offsets of a C struct, as BTF describes it. */
export interface StructLayout {
  readonly name: string;
  readonly size: number;
  readonly fields: Readonly<Record<string, { readonly offset: number; readonly size: number }>>;
}

/** A layout whose codec reads its offsets from it (`at.field`), so the BTF check covers the codec too. */
export interface Layout<F extends string> extends StructLayout {
  readonly at: Readonly<Record<F, number>>;
}

function layout<F extends string>(name: string, size: number, fields: Record<F, [number, number]>): Layout<F> {
  const entries = Object.entries(fields) as [F, [number, number]][];
  const l = { name, size, fields: Object.fromEntries(entries.map(([f, [offset, sz]]) => [f, { offset, size: sz }])) };
  // Not enumerable: the layout compared with BTF stays {name, size, fields}.
  Object.defineProperty(l, 'at', { value: Object.fromEntries(entries.map(([f, [offset]]) => [f, offset])), enumerable: false });
  return l as Layout<F>;
}

function familyOf(address: Uint8Array): number {
  if (address.length === 4) return FAMILY_V4;
  if (address.length === 16) return FAMILY_V6;
  throw new RangeError(`an address has 4 or 16 bytes, got ${String(address.length)}`);
}

function putAddress(b: Buffer, at: number, address: Uint8Array): void {
  b.fill(0, at, at + 16);
  b.set(address, at);
}

function getAddress(b: Buffer, at: number, family: number): Uint8Array {
  return Uint8Array.from(b.subarray(at, at + (family === FAMILY_V4 ? 4 : 16)));
}

// ---- table slots (packed backend indices) ------------------------------

function slotHalf(index: number, what: string): number {
  if (index === BACKEND_NONE) return SLOT_NONE;
  if (!Number.isInteger(index) || index < 0 || index >= SLOT_NONE) throw new RangeError(`a table slot holds backend indices below ${String(SLOT_NONE)}, got ${what} ${String(index)}`);
  return index;
}

/** Packs a table's slots: primaries[s], alternates[s] and secondHops[s] (backend indices, or BACKEND_NONE) into the u64s the datapath reads, two u32 words each. */
export function encodeTableSlots(primaries: Uint32Array, alternates: Uint32Array | undefined, secondHops?: Uint32Array): Uint32Array {
  for (const [what, a] of [['alternates', alternates], ['second hops', secondHops]] as const) {
    if (a !== undefined && a.length !== primaries.length) throw new RangeError(`${String(a.length)} ${what} for ${String(primaries.length)} slots`);
  }
  const out = new Uint32Array(primaries.length * SLOT_WORDS);
  for (let s = 0; s < primaries.length; s++) {
    const alternate = alternates === undefined ? SLOT_NONE : slotHalf(alternates[s]!, 'alternate');
    const hop = secondHops === undefined ? SLOT_NONE : slotHalf(secondHops[s]!, 'second hop');
    out[s * SLOT_WORDS] = (slotHalf(primaries[s]!, 'backend') | (alternate << SLOT_ALT_SHIFT)) >>> 0;
    out[s * SLOT_WORDS + 1] = (hop | (SLOT_NONE << 16)) >>> 0;
  }
  return out;
}

/**
 * Packs a table given by owner positions straight into `out`, one slot every
 * `stride` u32 words (the kernel's layout of an mmap()ed array; a slot is two
 * words): slot s holds byOwner[slots[s]] and, where it has them,
 * byOwner[alternates[s]] and byOwner[secondHops[s]] (BACKEND_NONE: none).
 * One pass, no allocation: the writer's path for tables of 65537 slots.
 */
export function packTableInto(slots: Uint32Array, alternates: Uint32Array | undefined, byOwner: Uint32Array, out: Uint32Array, stride: number, secondHops?: Uint32Array): void {
  const n = slots.length;
  for (const [what, a] of [['alternates', alternates], ['second hops', secondHops]] as const) {
    if (a !== undefined && a.length !== n) throw new RangeError(`${String(a.length)} ${what} for ${String(n)} slots`);
  }
  if (stride < SLOT_WORDS || out.length < (n - 1) * stride + SLOT_WORDS) throw new RangeError(`room for ${String(out.length)} words, ${String(n)} slots of stride ${String(stride)} need more`);
  for (const index of byOwner) slotHalf(index, 'backend');
  const owners = byOwner.length;
  // An int32 stored into a Uint32Array wraps to its u32 (no >>> 0: that makes a double per slot).
  const noAlternate = SLOT_NONE << SLOT_ALT_SHIFT;
  const noHop = SLOT_NONE | (SLOT_NONE << 16);
  const reserved = SLOT_NONE << 16;
  for (let s = 0; s < n; s++) {
    const o = slots[s]!;
    const a = alternates === undefined ? BACKEND_NONE : alternates[s]!;
    const h = secondHops === undefined ? BACKEND_NONE : secondHops[s]!;
    if (o >= owners || (a >= owners && a !== BACKEND_NONE) || (h >= owners && h !== BACKEND_NONE)) {
      throw new RangeError(`slot ${String(s)} names owner ${String(o)}, alternate ${String(a)} and second hop ${String(h)} of ${String(owners)}`);
    }
    out[s * stride] = byOwner[o]! | (a === BACKEND_NONE ? noAlternate : byOwner[a]! << SLOT_ALT_SHIFT);
    out[s * stride + 1] = h === BACKEND_NONE ? noHop : byOwner[h]! | reserved;
  }
}

/**
 * Unpacks a table's slots (`words` u32 each: SLOT_WORDS, or 1 for the u32
 * slots of builds before second hops, read on an upgrade) into primaries,
 * alternates and second hops (backend indices, BACKEND_NONE for none).
 */
export function decodeTableSlots(values: Uint32Array, words: 1 | 2 = SLOT_WORDS): { primaries: Uint32Array; alternates: Uint32Array; secondHops: Uint32Array } {
  const n = values.length / words;
  const primaries = new Uint32Array(n);
  const alternates = new Uint32Array(n);
  const secondHops = new Uint32Array(n);
  for (let s = 0; s < n; s++) {
    const v = values[s * words]!;
    const p = v & SLOT_INDEX_MASK;
    const a = v >>> SLOT_ALT_SHIFT;
    const h = words === 1 ? SLOT_NONE : values[s * words + 1]! & SLOT_INDEX_MASK;
    primaries[s] = p === SLOT_NONE ? BACKEND_NONE : p;
    alternates[s] = a === SLOT_NONE ? BACKEND_NONE : a;
    secondHops[s] = h === SLOT_NONE ? BACKEND_NONE : h;
  }
  return { primaries, alternates, secondHops };
}

// ---- struct vip_key ------------------------------------------------------

export interface VipKey {
  /** 4 or 16 bytes; the family follows. */
  address: Uint8Array;
  /** 0 = every port of proto. */
  port: number;
  proto: number;
}

export const vipKeyLayout = layout('vip_key', 20, { addr: [0, 16], port: [16, 2], proto: [18, 1], family: [19, 1] });

export function encodeVipKey(k: VipKey): Buffer {
  const { at } = vipKeyLayout;
  const b = Buffer.alloc(vipKeyLayout.size);
  putAddress(b, at.addr, k.address);
  b.writeUInt16BE(k.port, at.port);
  b.writeUInt8(k.proto, at.proto);
  b.writeUInt8(familyOf(k.address), at.family);
  return b;
}

export function decodeVipKey(b: Buffer): VipKey {
  const { at } = vipKeyLayout;
  return { address: getAddress(b, at.addr, b.readUInt8(at.family)), port: b.readUInt16BE(at.port), proto: b.readUInt8(at.proto) };
}

// ---- struct vip_meta -----------------------------------------------------

export interface VipMeta {
  vipId: number;
  flags: number;
  tableSlot: number;
  tableSize: number;
}

export const vipMetaLayout = layout('vip_meta', 16, { vip_id: [0, 4], flags: [4, 4], table_slot: [8, 4], table_size: [12, 4] });

export function encodeVipMeta(m: VipMeta): Buffer {
  const { at } = vipMetaLayout;
  const b = Buffer.alloc(vipMetaLayout.size);
  b.writeUInt32LE(m.vipId, at.vip_id);
  b.writeUInt32LE(m.flags, at.flags);
  b.writeUInt32LE(m.tableSlot, at.table_slot);
  b.writeUInt32LE(m.tableSize, at.table_size);
  return b;
}

export function decodeVipMeta(b: Buffer): VipMeta {
  const { at } = vipMetaLayout;
  return { vipId: b.readUInt32LE(at.vip_id), flags: b.readUInt32LE(at.flags), tableSlot: b.readUInt32LE(at.table_slot), tableSize: b.readUInt32LE(at.table_size) };
}

// ---- struct backend ------------------------------------------------------

export interface Backend {
  address: Uint8Array;
  flags: number;
  mac: Uint8Array;
}

export const backendLayout = layout('backend', 24, { addr: [0, 16], family: [16, 1], flags: [17, 1], mac: [18, 6] });

export function encodeBackend(be: Backend): Buffer {
  const { at } = backendLayout;
  const b = Buffer.alloc(backendLayout.size);
  putAddress(b, at.addr, be.address);
  b.writeUInt8(familyOf(be.address), at.family);
  b.writeUInt8(be.flags, at.flags);
  b.set(be.mac.subarray(0, 6), at.mac);
  return b;
}

export function decodeBackend(b: Buffer): Backend {
  const { at } = backendLayout;
  const family = b.readUInt8(at.family);
  return { address: getAddress(b, at.addr, family === 0 ? FAMILY_V4 : family), flags: b.readUInt8(at.flags), mac: Uint8Array.from(b.subarray(at.mac, at.mac + 6)) };
}

// ---- struct lb_ctl -------------------------------------------------------

export interface LbCtl {
  srcMac: Uint8Array;
  /** L3 MTU toward backends; 0 = no check, else >= MIN_MTU. */
  mtu: number;
  /** Outer IPv4 source prefix and netmask (4 bytes each). */
  v4SrcPrefix: Uint8Array;
  v4SrcMask: Uint8Array;
  /** Outer IPv6 source: the first 12 bytes are used. */
  v6SrcPrefix: Uint8Array;
  flags: number;
}

export const lbCtlLayout = layout('lb_ctl', 40, {
  src_mac: [0, 6],
  mtu: [6, 2],
  v4_src_prefix: [8, 4],
  v4_src_mask: [12, 4],
  v6_src_prefix: [16, 16],
  flags: [32, 4],
  pad: [36, 4],
});

export function encodeLbCtl(c: LbCtl): Buffer {
  const { at } = lbCtlLayout;
  const b = Buffer.alloc(lbCtlLayout.size);
  b.set(c.srcMac.subarray(0, 6), at.src_mac);
  b.writeUInt16LE(c.mtu, at.mtu);
  b.set(c.v4SrcPrefix.subarray(0, 4), at.v4_src_prefix);
  b.set(c.v4SrcMask.subarray(0, 4), at.v4_src_mask);
  b.set(c.v6SrcPrefix.subarray(0, 16), at.v6_src_prefix);
  b.writeUInt32LE(c.flags, at.flags);
  return b;
}

export function decodeLbCtl(b: Buffer): LbCtl {
  const { at } = lbCtlLayout;
  return {
    srcMac: Uint8Array.from(b.subarray(at.src_mac, at.src_mac + 6)),
    mtu: b.readUInt16LE(at.mtu),
    v4SrcPrefix: Uint8Array.from(b.subarray(at.v4_src_prefix, at.v4_src_prefix + 4)),
    v4SrcMask: Uint8Array.from(b.subarray(at.v4_src_mask, at.v4_src_mask + 4)),
    v6SrcPrefix: Uint8Array.from(b.subarray(at.v6_src_prefix, at.v6_src_prefix + 16)),
    flags: b.readUInt32LE(at.flags),
  };
}

// ---- struct vip_filter --------------------------------------------------

export const VIP_FILTER_BITS = 16;
export const VIP_FILTER_WORDS = (1 << VIP_FILTER_BITS) / 64;

export const vipFilterLayout = layout('vip_filter', VIP_FILTER_WORDS * 8, { words: [0, VIP_FILTER_WORDS * 8] });

/** The filter bucket of an address, as lb_maybe_vip computes it. */
export function vipFilterBucket(address: Uint8Array): number {
  const dv = new DataView(address.buffer, address.byteOffset, address.length);
  let w = dv.getUint32(0, true);
  if (address.length === 16) w = (w ^ dv.getUint32(4, true) ^ dv.getUint32(8, true) ^ dv.getUint32(12, true)) >>> 0;
  return Math.imul(w, 0x9e3779b1) >>> (32 - VIP_FILTER_BITS);
}

/** The filter with the bucket of every given address set. */
export function encodeVipFilter(addresses: Iterable<Uint8Array>): Buffer {
  const b = Buffer.alloc(vipFilterLayout.size);
  for (const a of addresses) {
    const bucket = vipFilterBucket(a);
    b[bucket >> 3] = b[bucket >> 3]! | (1 << (bucket & 7));
  }
  return b;
}

// ---- struct flow_key -----------------------------------------------------

export interface FlowKey {
  src: Uint8Array;
  dst: Uint8Array;
  sport: number;
  dport: number;
  vipId: number;
  proto: number;
}

export const flowKeyLayout = layout('flow_key', 44, {
  src: [0, 16],
  dst: [16, 16],
  sport: [32, 2],
  dport: [34, 2],
  vip_id: [36, 4],
  proto: [40, 1],
  family: [41, 1],
  pad: [42, 2],
});

export function encodeFlowKey(k: FlowKey): Buffer {
  const { at } = flowKeyLayout;
  const b = Buffer.alloc(flowKeyLayout.size);
  putAddress(b, at.src, k.src);
  putAddress(b, at.dst, k.dst);
  b.writeUInt16BE(k.sport, at.sport);
  b.writeUInt16BE(k.dport, at.dport);
  b.writeUInt32LE(k.vipId, at.vip_id);
  b.writeUInt8(k.proto, at.proto);
  b.writeUInt8(familyOf(k.src), at.family);
  return b;
}

export function decodeFlowKey(b: Buffer): FlowKey {
  const { at } = flowKeyLayout;
  const family = b.readUInt8(at.family);
  return {
    src: getAddress(b, at.src, family),
    dst: getAddress(b, at.dst, family),
    sport: b.readUInt16BE(at.sport),
    dport: b.readUInt16BE(at.dport),
    vipId: b.readUInt32LE(at.vip_id),
    proto: b.readUInt8(at.proto),
  };
}

// ---- struct lb_counter ---------------------------------------------------

export interface Counter {
  packets: bigint;
  bytes: bigint;
}

export const lbCounterLayout = layout('lb_counter', 16, { packets: [0, 8], bytes: [8, 8] });

export function decodeCounter(b: Buffer): Counter {
  const { at } = lbCounterLayout;
  return { packets: b.readBigUInt64LE(at.packets), bytes: b.readBigUInt64LE(at.bytes) };
}

/** Sum of per-CPU counter values. */
export function sumCounters(perCpu: readonly Buffer[]): Counter {
  let packets = 0n;
  let bytes = 0n;
  for (const v of perCpu) {
    const c = decodeCounter(v);
    packets += c.packets;
    bytes += c.bytes;
  }
  return { packets, bytes };
}

// ---- struct decap_key ----------------------------------------------------

export const decapKeyLayout = layout('decap_key', 20, { addr: [0, 16], family: [16, 1], pad: [17, 3] });

export function encodeDecapKey(address: Uint8Array): Buffer {
  const { at } = decapKeyLayout;
  const b = Buffer.alloc(decapKeyLayout.size);
  putAddress(b, at.addr, address);
  b.writeUInt8(familyOf(address), at.family);
  return b;
}

export function decodeDecapKey(b: Buffer): Uint8Array {
  const { at } = decapKeyLayout;
  return getAddress(b, at.addr, b.readUInt8(at.family));
}

// ---- struct bench_tmpl (benchmark only) ----------------------------------

export interface BenchTemplate {
  frame: Uint8Array;
  /** Bytes written back each repetition (the headers); <= BENCH_MAX_COPY. */
  copyLen: number;
  /** Offset of a 32-bit field rewritten with a counter each repetition; 0 = none. */
  varyOffset: number;
}

export const benchTmplLayout = layout('bench_tmpl', 16 + BENCH_MAX_COPY, {
  len: [0, 4],
  copy_len: [4, 4],
  vary_off: [8, 4],
  counter: [12, 4],
  bytes: [16, BENCH_MAX_COPY],
});

export function encodeBenchTemplate(t: BenchTemplate): Buffer {
  const { at } = benchTmplLayout;
  const b = Buffer.alloc(benchTmplLayout.size);
  const copyLen = Math.min(t.copyLen, BENCH_MAX_COPY, t.frame.length);
  b.writeUInt32LE(t.frame.length, at.len);
  b.writeUInt32LE(copyLen, at.copy_len);
  b.writeUInt32LE(t.varyOffset, at.vary_off);
  b.set(t.frame.subarray(0, copyLen), at.bytes);
  return b;
}

/** Every layout, for the ABI test. */
export const layouts: readonly StructLayout[] = [
  vipKeyLayout,
  vipMetaLayout,
  backendLayout,
  lbCtlLayout,
  vipFilterLayout,
  flowKeyLayout,
  lbCounterLayout,
  decapKeyLayout,
  benchTmplLayout,
];

/** u32 key of an array map. */
export function u32Key(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
}
