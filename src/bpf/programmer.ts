// programmer.ts: writes a complete desired state (control settings,
// backends, per-VIP tables, VIPs) into the load balancer's maps, in the order
// that never lets a packet see a half-written state: control, backends,
// tables, the VIP address filter (widened), VIPs; then removals in the
// opposite order and the filter narrowed. It reads the maps to
// learn what is there (no memory of earlier calls), so a restarted agent can
// converge pinned maps. Table swaps follow bpf/include/maps.h: same size ->
// replace the inner map in place; new size -> fresh outer slot, one vip_meta
// update, then free the old slot. applyDecapVips does the same for the
// backend-side decap program's VIP set.

import { ErrorCodes, XdplbError } from '../core/errors.js';
import {
  BACKEND_F_VALID,
  BACKEND_NONE,
  decodeVipMeta,
  encodeBackend,
  encodeDecapKey,
  encodeVipFilter,
  decodeVipKey,
  encodeVipKey,
  encodeVipMeta,
  IPPROTO_TCP,
  IPPROTO_UDP,
  MIN_MTU,
  u32Key,
  VIP_F_FLOW_TABLE,
  VIP_F_MODE_L2DSR,
  VIP_F_SOURCE_IP_AFFINITY,
  type VipMeta,
} from './abi.js';
import type { DecapMaps, LbMaps } from './datapath.js';
import { encodeControl, writeTable } from './map-writer.js';
import { ipBytes, macBytes } from '../core/net.js';

export interface DatapathControl {
  /** Source MAC of transmitted frames. */
  srcMac: string | Uint8Array;
  /** L3 MTU toward backends: 0 = no check, else >= 1280. */
  mtu: number;
  /** Outer IPv4 source prefix for IPIP, e.g. "172.16.0.0/16". */
  v4SrcPrefix: string;
  /** Outer IPv6 source prefix for IPIP, a /96, e.g. "fd00:5eed::/96". */
  v6SrcPrefix: string;
}

export interface DatapathBackend {
  address: string | Uint8Array;
  /** Next hop (IPIP) or backend (L2 DSR) MAC; null = unresolved. */
  mac: string | Uint8Array | null;
  /** Default true; false drains the backend at once. */
  valid?: boolean;
}

export interface DatapathTable {
  /** M, a prime (see src/core/table-sizes.ts). */
  size: number;
  /** slot -> index into DatapathState.backends, or BACKEND_NONE. */
  slots: Uint32Array;
}

export interface DatapathVip {
  address: string | Uint8Array;
  /** 0 = every port of proto. */
  port: number;
  proto: 'tcp' | 'udp';
  mode: 'ipip' | 'l2dsr';
  affinity: 'fiveTuple' | 'sourceIp';
  flowTable?: boolean;
  /** null: no table (the VIP's traffic is dropped as DROP_NO_BACKEND). */
  table: DatapathTable | null;
}

export interface DatapathState {
  control: DatapathControl;
  /** Index in this list = backend index in the tables. */
  backends: readonly DatapathBackend[];
  /** Index in this list = vip_id (counter index). */
  vips: readonly DatapathVip[];
}

const MAX_FRAME_MTU = 0xffff;

function bad(message: string): XdplbError {
  return new XdplbError(ErrorCodes.BAD_CONFIG, message);
}

function protoNumber(p: 'tcp' | 'udp'): number {
  return p === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP;
}

function vipKeyAddress(key: Buffer): Uint8Array {
  return decodeVipKey(key).address;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
}

export class DatapathProgrammer {
  private backendHighWater: number | undefined;

  constructor(private readonly maps: LbMaps) {}

  /** Converge the maps to `state`. Throws BAD_CONFIG (nothing written) or BPF. */
  apply(state: DatapathState): void {
    const vips = this.validate(state);

    // 1. control
    const wildcard = state.vips.some((v) => v.port === 0);
    this.maps.ctl.update(u32Key(0), encodeControl(state.control, wildcard));

    // 2. backends
    state.backends.forEach((be, i) => {
      const mac = be.mac === null ? new Uint8Array(6) : macBytes(be.mac);
      const valid = be.valid !== false && be.mac !== null;
      this.maps.backends.update(u32Key(i), encodeBackend({ address: ipBytes(be.address), flags: valid ? BACKEND_F_VALID : 0, mac }));
    });

    // 3. tables, each into a slot: its current one if the size is unchanged, else a free one
    const current = new Map<string, VipMeta>();
    for (const key of this.maps.vips.keys()) {
      const meta = this.maps.vips.lookup(key);
      if (meta !== undefined) current.set(key.toString('hex'), decodeVipMeta(meta));
    }
    const usedSlots = new Set<number>();
    for (const m of current.values()) if (m.tableSize !== 0) usedSlots.add(m.tableSlot);
    const taken = new Set<number>(usedSlots);
    const metas: Buffer[] = [];
    vips.forEach(({ vip, key }, vipId) => {
      let flags = 0;
      if (vip.affinity === 'sourceIp') flags |= VIP_F_SOURCE_IP_AFFINITY;
      if (vip.mode === 'l2dsr') flags |= VIP_F_MODE_L2DSR;
      if (vip.flowTable === true) flags |= VIP_F_FLOW_TABLE;
      let tableSlot = 0;
      let tableSize = 0;
      if (vip.table !== null) {
        const old = current.get(key.toString('hex'));
        tableSize = vip.table.size;
        tableSlot = old !== undefined && old.tableSize === tableSize ? old.tableSlot : this.freeSlot(taken);
        taken.add(tableSlot);
        writeTable(this.maps.tables, tableSlot, vip.table.slots);
      }
      metas.push(encodeVipMeta({ vipId, flags, tableSlot, tableSize }));
    });

    // 4. the address filter lets through old and new VIP addresses, then the
    //    VIPs, then the owner of each address/protocol's fragments
    const newAddresses = vips.map(({ key }) => vipKeyAddress(key));
    const oldAddresses = [...current.keys()].map((k) => vipKeyAddress(Buffer.from(k, 'hex')));
    this.maps.vipFilter.update(u32Key(0), encodeVipFilter([...oldAddresses, ...newAddresses]));
    vips.forEach(({ key }, i) => this.maps.vips.update(key, metas[i]!));
    const fragOwners = new Map<string, { key: Buffer; port: number; meta: Buffer }>();
    vips.forEach(({ vip, key }, i) => {
      const fragKey = Buffer.from(key);
      fragKey.writeUInt16BE(0, 16);
      const id = fragKey.toString('hex');
      const owner = fragOwners.get(id);
      if (owner === undefined || vip.port < owner.port) fragOwners.set(id, { key: fragKey, port: vip.port, meta: metas[i]! });
    });
    for (const { key, meta } of fragOwners.values()) this.maps.fragVips.update(key, meta);

    // 5. removals: fragment owners, VIPs, then the slots nothing points at
    for (const key of this.maps.fragVips.keys()) if (!fragOwners.has(key.toString('hex'))) this.maps.fragVips.delete(key);
    const wanted = new Set(vips.map(({ key }) => key.toString('hex')));
    for (const key of this.maps.vips.keys()) if (!wanted.has(key.toString('hex'))) this.maps.vips.delete(key);
    const nowUsed = new Set<number>();
    for (const meta of metas) {
      const m = decodeVipMeta(meta);
      if (m.tableSize !== 0) nowUsed.add(m.tableSlot);
    }
    for (const slot of usedSlots) if (!nowUsed.has(slot)) this.maps.tables.delete(u32Key(slot));
    this.maps.vipFilter.update(u32Key(0), encodeVipFilter(newAddresses));

    // backends past the new list: invalid, so no flow-table entry keeps using them
    const end = this.backendHighWater ?? this.scanBackendHighWater();
    for (let i = state.backends.length; i < end; i++) this.maps.backends.update(u32Key(i), Buffer.alloc(this.maps.backends.valueSize));
    this.backendHighWater = state.backends.length;
  }

  /** One past the last valid backend entry (first apply only: later applies remember it). */
  private scanBackendHighWater(): number {
    let end = 0;
    for (let i = 0; i < this.maps.backends.maxEntries; i++) {
      const v = this.maps.backends.lookup(u32Key(i));
      if (v !== undefined && v.some((b) => b !== 0)) end = i + 1;
    }
    return end;
  }

  private freeSlot(taken: Set<number>): number {
    for (let s = 0; s < this.maps.tables.maxEntries; s++) if (!taken.has(s)) return s;
    throw new XdplbError(ErrorCodes.BPF, `no free table slot among ${String(this.maps.tables.maxEntries)}`);
  }

  private validate(state: DatapathState): { vip: DatapathVip; key: Buffer }[] {
    const problems: string[] = [];
    const { mtu } = state.control;
    if (!Number.isInteger(mtu) || (mtu !== 0 && (mtu < MIN_MTU || mtu > MAX_FRAME_MTU))) problems.push(`mtu ${String(mtu)}: use 0 or ${String(MIN_MTU)}..${String(MAX_FRAME_MTU)}`);
    if (state.backends.length > this.maps.backends.maxEntries) problems.push(`${String(state.backends.length)} backends exceed ${String(this.maps.backends.maxEntries)}`);
    if (state.vips.length > this.maps.vips.maxEntries) problems.push(`${String(state.vips.length)} VIPs exceed ${String(this.maps.vips.maxEntries)}`);
    const seen = new Set<string>();
    const out: { vip: DatapathVip; key: Buffer }[] = [];
    state.vips.forEach((vip, i) => {
      const key = encodeVipKey({ address: ipBytes(vip.address), port: vip.port, proto: protoNumber(vip.proto) });
      const id = hex(key);
      if (seen.has(id)) problems.push(`VIP ${String(i)} duplicates an earlier VIP`);
      seen.add(id);
      if (!Number.isInteger(vip.port) || vip.port < 0 || vip.port > 0xffff) problems.push(`VIP ${String(i)}: port ${String(vip.port)}`);
      if (vip.table !== null) {
        if (vip.table.slots.length !== vip.table.size) problems.push(`VIP ${String(i)}: table has ${String(vip.table.slots.length)} slots, size ${String(vip.table.size)}`);
        for (const b of vip.table.slots) {
          if (b !== BACKEND_NONE && b >= state.backends.length) {
            problems.push(`VIP ${String(i)}: table names backend ${String(b)} of ${String(state.backends.length)}`);
            break;
          }
        }
      }
      out.push({ vip, key });
    });
    if (problems.length > 0) throw bad(`Datapath state rejected:\n  ${problems.join('\n  ')}`);
    return out;
  }
}

/** Converge the decap program's local-VIP set (backend side) to `addresses`. */
export function applyDecapVips(maps: DecapMaps, addresses: readonly (string | Uint8Array)[]): void {
  const wanted = new Map(addresses.map((a) => {
    const key = encodeDecapKey(ipBytes(a));
    return [key.toString('hex'), key] as const;
  }));
  if (wanted.size > maps.vips.maxEntries) throw bad(`${String(wanted.size)} decap VIPs exceed ${String(maps.vips.maxEntries)}`);
  for (const key of wanted.values()) maps.vips.update(key, u32Key(1));
  for (const key of maps.vips.keys()) if (!wanted.has(key.toString('hex'))) maps.vips.delete(key);
}
