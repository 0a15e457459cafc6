// map-writer.ts: the load balancer's maps as the agent sees them: read back
// into a DatapathImage (core/datapath-plan.ts), and changed by executing a
// plan's ops in order. Around the ops, the VIP address filter and the
// wildcard flag are first widened to cover the old and the new VIPs and
// narrowed to the new ones after, so no VIP is ever filtered out mid-change.
// Table slots are packed (each slot's backend, alternate and second hop, abi.ts) on the
// way in and unpacked on the way out; a backend's down state is one write of
// lb_backend_down.
//
// Tables stay in the kernel: a table is written into a new mmap()able inner
// map with one memory copy, and the inner maps of a pass are swapped into
// lb_tables with one batch update (one RCU wait for all of them, not one
// each; removals still wait one each: an array has no batch delete). The writer remembers, per inner map it created, the key of what it
// wrote (datapath-plan.ts tableKey): reading the image back is one batch
// lookup of lb_tables, and a table is read only when asked for. VIPs whose
// tables have the same key (one shared table over the same backends) point
// at one inner map: the kernel holds each distinct table once.
import { ErrorCodes, XdplbError } from '../core/errors.js';
import {
  applyPlan,
  type BackendImage,
  type Capacities,
  type DatapathImage,
  type PlanOp,
  type Protocol,
  type TableContent,
  type TableImage,
  type TableSlots,
  type VipEntryImage,
  type VipFeatures,
  type VipKeyImage,
  type VipMetaImage,
} from '../core/datapath-plan.js';
import { ipBytes, ipText, macBytes } from '../core/net.js';
import {
  BACKEND_F_VALID,
  CTL_F_WILDCARD_VIPS,
  decodeBackend,
  decodeTableSlots,
  decodeVipKey,
  decodeVipMeta,
  encodeBackend,
  encodeLbCtl,
  packTableInto,
  encodeVipFilter,
  encodeVipKey,
  encodeVipMeta,
  IPPROTO_TCP,
  IPPROTO_UDP,
  lbCounterLayout,
  MIN_MTU,
  SLOT_BYTES,
  SLOT_NONE,
  u32Key,
  VIP_F_FLOW_TABLE,
  VIP_F_MODE_GUE,
  VIP_F_MODE_L2DSR,
  VIP_F_SOURCE_IP_AFFINITY,
} from './abi.js';
import type { LbMaps } from './datapath.js';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createMap, mapInfo, MapFlags, MapType, numPossibleCpus, openMapById, openPinnedMap, unpin, type BpfMap } from './loader.js';

/** Values of lb_ctl that come from the node's configuration. */
export interface ControlSettings {
  /** Source MAC of transmitted frames: the interface's own. */
  readonly srcMac: string | Uint8Array;
  /** L3 MTU toward backends: 0 = no check, else >= 1280. */
  readonly mtu: number;
  /** Outer IPv4 source prefix for IPIP, e.g. "172.16.0.0/16". */
  readonly v4SrcPrefix: string;
  /** Outer IPv6 source prefix for IPIP, a /96. */
  readonly v6SrcPrefix: string;
}

function bad(message: string): XdplbError {
  return new XdplbError(ErrorCodes.BAD_CONFIG, message);
}

function prefix(text: string, family: 4 | 6): { address: Uint8Array; bits: number } {
  const [addr, bitsText, ...rest] = text.split('/');
  const address = ipBytes(addr ?? '');
  const bits = Number(bitsText);
  const max = family === 4 ? 32 : 128;
  if (rest.length > 0 || address.length !== (family === 4 ? 4 : 16) || !Number.isInteger(bits) || bits < 0 || bits > max) {
    throw bad(`not an IPv${String(family)} prefix: ${JSON.stringify(text)}`);
  }
  if (family === 6 && bits > 96) throw bad(`the IPv6 outer source prefix must be /96 or shorter: ${text}`);
  return { address, bits };
}

function netmask(bits: number): Uint8Array {
  const m = new Uint8Array(4);
  for (let i = 0; i < bits; i++) m[i >> 3]! |= 0x80 >> (i & 7);
  return m;
}

/** The lb_ctl value for these settings. Throws BAD_CONFIG on a bad prefix or MTU. */
export function encodeControl(c: ControlSettings, wildcard: boolean): Buffer {
  if (!Number.isInteger(c.mtu) || (c.mtu !== 0 && (c.mtu < MIN_MTU || c.mtu > 0xffff))) {
    throw bad(`mtu ${String(c.mtu)}: use 0 (no check) or ${String(MIN_MTU)}..65535`);
  }
  const v4 = prefix(c.v4SrcPrefix, 4);
  const v6 = prefix(c.v6SrcPrefix, 6);
  return encodeLbCtl({
    srcMac: macBytes(c.srcMac),
    mtu: c.mtu,
    v4SrcPrefix: v4.address,
    v4SrcMask: netmask(v4.bits),
    v6SrcPrefix: v6.address,
    flags: wildcard ? CTL_F_WILDCARD_VIPS : 0,
  });
}

/** Inner maps swapped into lb_tables per batch update: bounds the tables held twice in the kernel at once. */
const SWAP_BATCH = 128;

/** A new inner map written, waiting to be swapped into its outer slot. */
interface PendingSwap {
  readonly slot: number;
  readonly inner: BpfMap;
}

/**
 * A new inner map holding a whole table: each slot's backend index, its
 * alternate's and its second hop's (none: SLOT_NONE) packed into the slot's
 * u64 (abi.ts), laid out
 * and translated from owner positions in one pass, then written with one
 * memory copy. The caller swaps it in and closes it.
 */
export function newTableMap(content: TableContent, byOwner: Uint32Array): BpfMap {
  const size = content.slots.length;
  const inner = createMap({ type: MapType.ARRAY, name: 'lb_table', keySize: 4, valueSize: SLOT_BYTES, maxEntries: size, flags: MapFlags.INNER_MAP | MapFlags.MMAPABLE });
  try {
    inner.writeMappedWith((laid, stride) => packTableInto(content.slots, content.alternates, byOwner, new Uint32Array(laid.buffer, laid.byteOffset, laid.length / 4), stride / 4, content.secondHops));
  } catch (e) {
    inner.close();
    throw e;
  }
  return inner;
}

/** The slots of an inner map, unpacked: backend indices, BACKEND_NONE for none. Closes it. */
function readTableOf(inner: BpfMap): TableSlots {
  try {
    // An inner map of an older build (before BPF_F_MMAPABLE, read as an upgrade's seed) is read with a batch lookup.
    const values = (mapInfo(inner.fd).flags & MapFlags.MMAPABLE) !== 0 ? inner.readMapped() : inner.readArray();
    // An inner map of a build before second hops (u32 slots) is read as such on an upgrade.
    const { primaries, alternates, secondHops } = decodeTableSlots(new Uint32Array(values.buffer, values.byteOffset, values.length / 4), inner.valueSize === 4 ? 1 : 2);
    return { slots: primaries, alternates, secondHops };
  } finally {
    inner.close();
  }
}

const protoNumber = (p: Protocol): number => (p === 'TCP' ? IPPROTO_TCP : IPPROTO_UDP);
const protoName = (n: number): Protocol | null => (n === IPPROTO_TCP ? 'TCP' : n === IPPROTO_UDP ? 'UDP' : null);

function encodeKey(k: VipKeyImage): Buffer {
  return encodeVipKey({ address: ipBytes(k.address), port: k.port, proto: protoNumber(k.protocol) });
}

/** The ABI's vip_meta.flags of a VIP's features: the one place words become bits. */
export function featureBits(f: VipFeatures): number {
  const mode = f.mode === 'l2dsr' ? VIP_F_MODE_L2DSR : f.mode === 'gue' ? VIP_F_MODE_GUE : 0;
  return (f.affinity === 'sourceIp' ? VIP_F_SOURCE_IP_AFFINITY : 0) | mode | (f.flowTable ? VIP_F_FLOW_TABLE : 0);
}

/** The features a vip_meta.flags value says. */
export function featuresOfBits(flags: number): VipFeatures {
  return {
    mode: (flags & VIP_F_MODE_L2DSR) !== 0 ? 'l2dsr' : (flags & VIP_F_MODE_GUE) !== 0 ? 'gue' : 'ipip',
    affinity: (flags & VIP_F_SOURCE_IP_AFFINITY) !== 0 ? 'sourceIp' : 'fiveTuple',
    flowTable: (flags & VIP_F_FLOW_TABLE) !== 0,
  };
}

function encodeMeta(m: VipMetaImage): Buffer {
  return encodeVipMeta({ vipId: m.vipId, flags: featureBits(m.features), tableSlot: m.tableSlot, tableSize: m.tableSize });
}

function decodeMeta(b: Buffer): VipMetaImage {
  const m = decodeVipMeta(b);
  return { vipId: m.vipId, features: featuresOfBits(m.flags), tableSlot: m.tableSlot, tableSize: m.tableSize };
}

function readVipMap(map: BpfMap): VipEntryImage[] {
  const out: VipEntryImage[] = [];
  for (const keyBytes of map.keys()) {
    const value = map.lookup(keyBytes);
    if (value === undefined) continue; // removed meanwhile
    const key = decodeVipKey(keyBytes);
    const protocol = protoName(key.proto);
    if (protocol === null) continue;
    out.push({ key: { address: ipText(key.address), port: key.port, protocol }, meta: decodeMeta(value) });
  }
  return out;
}

const ZERO_MAC = '00:00:00:00:00:00';

export class MapWriter {
  readonly #maps: LbMaps;
  /**
   * What this writer put in each inner map it created, by inner map id. A
   * table is never written after its inner map is swapped in (a change is a
   * new inner map), so the id names its content.
   */
  readonly #written = new Map<number, TableImage>();
  /**
   * Table key -> the id of an inner map this writer wrote with it. VIPs with
   * the same table over the same backend indices (a shared table) point at
   * one inner map: the kernel holds each distinct table once.
   */
  readonly #byKey = new Map<string, number>();
  /** Where each inner map this writer creates is pinned, by id (undefined: not pinned; tests). */
  readonly #tablePins: string | undefined;

  /**
   * `tablePins`: a bpffs directory for the inner maps (one pin per table, by
   * map id), so the agent can open them again, after a restart too, without
   * CAP_SYS_ADMIN.
   */
  constructor(maps: LbMaps, tablePins?: string) {
    this.#maps = maps;
    this.#tablePins = tablePins;
  }

  /** Backend indices stop below SLOT_NONE: a table slot holds them in 16 bits, SLOT_NONE meaning none. */
  capacities(): Capacities {
    return {
      maxBackends: Math.min(this.#maps.backends.maxEntries, SLOT_NONE),
      maxVips: this.#maps.vips.maxEntries,
      maxTables: this.#maps.tables.maxEntries,
      maxVipIds: this.#maps.vipStats.maxEntries,
    };
  }

  /**
   * The backend address at each of `indices` (every index when absent), read
   * from the kernel; free entries are left out. With indices, one lookup each:
   * what a read-back of a few tables needs, not the whole array.
   */
  readBackendAddresses(indices?: Iterable<number>): Map<number, string> {
    if (indices === undefined) return new Map([...this.#readBackends()].map(([i, be]) => [i, be.address]));
    const out = new Map<number, string>();
    for (const i of indices) {
      const entry = this.#maps.backends.lookup(u32Key(i));
      if (entry === undefined || entry.every((b) => b === 0)) continue;
      out.set(i, ipText(decodeBackend(entry).address));
    }
    return out;
  }

  /** Every backend entry the kernel holds (all-zero entries are free), decoded. */
  #readBackends(): Map<number, BackendImage> {
    const out = new Map<number, BackendImage>();
    const raw = this.#maps.backends.readArray();
    const size = this.#maps.backends.valueSize;
    for (let i = 0; i < this.#maps.backends.maxEntries; i++) {
      const entry = raw.subarray(i * size, (i + 1) * size);
      if (entry.every((b) => b === 0)) continue;
      const be = decodeBackend(entry);
      const mac = Array.from(be.mac, (b) => b.toString(16).padStart(2, '0')).join(':');
      out.set(i, {
        address: ipText(be.address),
        family: be.address.length === 4 ? 4 : 6,
        mac: (be.flags & BACKEND_F_VALID) !== 0 && mac !== ZERO_MAC ? mac : null,
      });
    }
    return out;
  }

  /**
   * What the kernel holds for one VIP key: its entry's table size and the
   * table's slots and alternates (backend indices, BACKEND_NONE for none;
   * null without a table), or null when the key is not in the map. Reads the
   * table (one memory copy).
   */
  readVipTable(key: VipKeyImage): { tableSize: number; table: TableSlots | null } | null {
    const meta = this.readVipMeta(key);
    if (meta === null) return null;
    if (meta.tableSize === 0) return { tableSize: 0, table: null };
    return { tableSize: meta.tableSize, table: this.readTable(meta.tableSlot) };
  }

  /** The VIP entry the kernel holds for one VIP key (its table slot and size), or null when the key is not in the map. */
  readVipMeta(key: VipKeyImage): { tableSlot: number; tableSize: number } | null {
    const value = this.#maps.vips.lookup(encodeKey(key));
    if (value === undefined) return null;
    const meta = decodeVipMeta(value);
    return { tableSlot: meta.tableSlot, tableSize: meta.tableSize };
  }

  /** The table in outer slot `slot` (one memory copy), or null when the slot is empty. */
  readTable(slot: number): TableSlots | null {
    const id = this.#maps.tables.lookup(u32Key(slot));
    return id === undefined ? null : readTableOf(this.#openInner(id.readUInt32LE(0)));
  }

  /**
   * Outer slot -> the inner map id there and what this writer wrote into it
   * (null: an inner map it did not write). One batch lookup of lb_tables;
   * no table is read.
   */
  tableIds(): Map<number, { id: number; table: TableImage | null }> {
    const out = new Map<number, { id: number; table: TableImage | null }>();
    for (const [slot, id] of this.#maps.tables.presentU32()) out.set(slot, { id, table: this.#written.get(id) ?? null });
    return out;
  }

  /**
   * Forgets what it wrote into the inner map at `slot`: the next image has a
   * null key there, so the next plan writes the table again (after a check
   * found its slots are not what was written).
   */
  distrust(slot: number): void {
    const id = this.#maps.tables.lookup(u32Key(slot));
    if (id !== undefined) this.#written.delete(id.readUInt32LE(0));
  }

  /** What the maps hold now (no table is read: see tableIds). */
  readImage(): DatapathImage {
    const backends = this.#readBackends();
    const vips = readVipMap(this.#maps.vips);
    const fragVips = readVipMap(this.#maps.fragVips);
    // A table this writer did not write is sized by the VIP entries that use it (no inner map is opened).
    const sizeOf = new Map<number, number>();
    for (const v of [...vips, ...fragVips]) if (v.meta.tableSize > 0) sizeOf.set(v.meta.tableSlot, v.meta.tableSize);
    const tables = new Map<number, TableImage>();
    const live = new Set<number>();
    for (const [slot, { id, table }] of this.tableIds()) {
      live.add(id);
      tables.set(slot, table ?? { size: sizeOf.get(slot) ?? 0, key: null });
    }
    for (const id of [...this.#written.keys()]) if (!live.has(id)) this.#written.delete(id);
    for (const [key, id] of [...this.#byKey]) if (!live.has(id)) this.#byKey.delete(key);
    this.#unpinDead(live);
    const down = new Set<number>();
    const flags = this.#maps.backendDown.readArray();
    for (let i = 0; i < this.#maps.backendDown.maxEntries; i++) if (flags.readUInt32LE(i * 4) !== 0) down.add(i);
    return { backends, tables, down, vips, fragVips };
  }

  /**
   * The inner map with this id, opened: by its pin when this writer's tables
   * are pinned (bpf_obj_get needs no privilege beyond the file), else by id
   * (bpf_map_get_fd_by_id, which the kernel allows only with CAP_SYS_ADMIN:
   * the chart's agent does not have it).
   */
  #openInner(id: number): BpfMap {
    const pin = this.#tablePins === undefined ? undefined : join(this.#tablePins, String(id));
    if (pin !== undefined && existsSync(pin)) return openPinnedMap(pin);
    return openMapById(id);
  }

  /** Pins the new inner map `inner` (id `id`) in this writer's table pin directory, if it has one. */
  #pin(inner: BpfMap, id: number): void {
    if (this.#tablePins === undefined) return;
    mkdirSync(this.#tablePins, { recursive: true });
    inner.pin(join(this.#tablePins, String(id)));
  }

  /** Removes the pins of inner maps no outer slot holds any more (the kernel frees them then). */
  #unpinDead(live: ReadonlySet<number>): void {
    if (this.#tablePins === undefined || !existsSync(this.#tablePins)) return;
    for (const name of readdirSync(this.#tablePins)) if (!live.has(Number(name))) unpin(join(this.#tablePins, name));
  }

  /**
   * Executes `ops` (planned against `before`) in order. Returns the image the
   * maps now hold. A failure part-way leaves a consistent state (the order
   * guarantees it); the caller re-reads the maps and plans again.
   */
  apply(before: DatapathImage, ops: readonly PlanOp[], control: ControlSettings): DatapathImage {
    const after = applyPlan(before, ops);
    const addresses = (img: DatapathImage): Uint8Array[] => img.vips.map((v) => ipBytes(v.key.address));
    const wildcard = (img: DatapathImage): boolean => img.vips.some((v) => v.key.port === 0);
    const zeroKey = u32Key(0);

    // Widen: both old and new VIPs pass the filter; the wildcard lookup is on if either needs it.
    this.#maps.ctl.update(zeroKey, encodeControl(control, wildcard(before) || wildcard(after)));
    this.#maps.vipFilter.update(zeroKey, encodeVipFilter([...addresses(before), ...addresses(after)]));

    // New tables wait to be swapped in one batch, until an op that must follow them.
    const pending: PendingSwap[] = [];
    try {
      for (const op of ops) {
        if (op.op !== 'putTable' && op.op !== 'resetVipStats') this.#swapIn(pending);
        this.#execute(op, pending);
      }
      this.#swapIn(pending);
    } finally {
      for (const p of pending) p.inner.close();
    }

    this.#maps.vipFilter.update(zeroKey, encodeVipFilter(addresses(after)));
    this.#maps.ctl.update(zeroKey, encodeControl(control, wildcard(after)));
    // Tables replaced or removed: their pins go now, so the kernel frees them (not at the next read-back).
    if (ops.some((op) => op.op === 'putTable' || op.op === 'deleteTable')) this.#unpinDead(new Set(this.#maps.tables.presentU32().values()));
    return after;
  }

  #execute(op: PlanOp, pending: PendingSwap[]): void {
    const m = this.#maps;
    switch (op.op) {
      case 'putBackend': {
        const mac = op.backend.mac;
        m.backends.update(
          u32Key(op.index),
          encodeBackend({ address: ipBytes(op.backend.address), flags: mac === null ? 0 : BACKEND_F_VALID, mac: mac === null ? new Uint8Array(6) : macBytes(mac) }),
        );
        if (op.fresh) m.backendStats.update(u32Key(op.index), this.#zeroCounters());
        return;
      }
      case 'clearBackend':
        // The plan cleared its down state already; an index freed here starts up whatever the image said.
        m.backendDown.update(u32Key(op.index), u32Key(0));
        m.backends.update(u32Key(op.index), Buffer.alloc(m.backends.valueSize));
        return;
      case 'setBackendDown':
        m.backendDown.update(u32Key(op.index), u32Key(op.down ? 1 : 0));
        return;
      case 'putTable': {
        const shared = this.#sharedInner(op.key);
        if (shared !== undefined) {
          pending.push({ slot: op.slot, inner: shared });
          if (pending.length >= SWAP_BATCH) this.#swapIn(pending);
          return;
        }
        const content = op.content();
        if (content.slots.length !== op.size) throw new XdplbError(ErrorCodes.BPF, `table of ${op.vip}: ${String(content.slots.length)} slots for size ${String(op.size)}`);
        const inner = newTableMap(content, op.byOwner);
        pending.push({ slot: op.slot, inner });
        const id = mapInfo(inner.fd).id;
        this.#pin(inner, id);
        this.#written.set(id, { size: op.size, key: op.key });
        this.#byKey.set(op.key, id);
        if (pending.length >= SWAP_BATCH) this.#swapIn(pending);
        return;
      }
      case 'deleteTable':
        // One at a time: an array of maps has no batch delete; each waits for an RCU grace period.
        m.tables.delete(u32Key(op.slot));
        return;
      case 'resetVipStats':
        m.vipStats.update(u32Key(op.vipId), this.#zeroCounters());
        return;
      case 'putVip':
        m.vips.update(encodeKey(op.key), encodeMeta(op.meta));
        return;
      case 'deleteVip':
        m.vips.delete(encodeKey(op.key));
        return;
      case 'putFragVip':
        m.fragVips.update(encodeKey(op.key), encodeMeta(op.meta));
        return;
      case 'deleteFragVip':
        m.fragVips.delete(encodeKey(op.key));
        return;
    }
  }

  /**
   * An inner map this writer wrote with `key`, opened again, if it still
   * exists and is trusted (a table check that distrusts it, or an inner map
   * no longer in any slot, ends its sharing).
   */
  #sharedInner(key: string): BpfMap | undefined {
    const id = this.#byKey.get(key);
    if (id === undefined) return undefined;
    if (this.#written.get(id)?.key !== key) {
      this.#byKey.delete(key);
      return undefined;
    }
    try {
      return this.#openInner(id);
    } catch {
      this.#byKey.delete(key); // freed (no slot held it any more), or not to be opened here
      return undefined;
    }
  }

  /** Swaps the pending inner maps into their outer slots (one batch update) and empties `pending`. */
  #swapIn(pending: PendingSwap[]): void {
    if (pending.length === 0) return;
    const puts = pending.splice(0);
    try {
      const keys = Uint32Array.from(puts, (p) => p.slot);
      const fds = Uint32Array.from(puts, (p) => p.inner.fd);
      this.#maps.tables.updateBatch(new Uint8Array(keys.buffer), new Uint8Array(fds.buffer), puts.length);
    } finally {
      for (const p of puts) p.inner.close();
    }
  }

  #zeroCounters(): Buffer {
    return Buffer.alloc(((lbCounterLayout.size + 7) & ~7) * numPossibleCpus());
  }
}
