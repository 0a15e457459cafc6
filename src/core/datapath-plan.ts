// datapath-plan.ts: what to write into the datapath's maps to go from what they
// hold (an image read back from the maps) to what is wanted, in an order that
// never lets a packet see a half-made state:
//
//   1. backend entries (new or changed) - before any table refers to them;
//      then backends newly down (one write each, read by every table slot
//      naming the backend, which then takes its alternate)
//   2. tables: each changed table is written whole into a new inner map, which
//      then replaces the VIP's inner map in one update (same size), or goes
//      into a fresh outer slot (new VIP, or size change). The image does not
//      hold table slots (they live in the kernel, 512 KiB a table): it holds
//      each table's key, the digest of the desired table it was written from
//      and the backend index of each of its owners, so an unchanged table is
//      one string compare and a table is translated only to be written
//   3. VIP entries (new, or meta changed: features, table slot, size) - one hash
//      update carries table slot and size together - then fragment owners:
//      per (address, protocol), the VIP entry with the lowest port, whose
//      table non-first fragments (which carry no ports) use
//   4. removals: VIP keys and fragment owners no longer wanted, outer slots
//      no longer referenced; then the down state cleared (a backend back up,
//      or one the new tables no longer use: only once they are in place, so
//      no old table sends a packet to a dead backend meanwhile); then backend
//      entries no longer referenced (a freed index starts up)
//
// A VIP without any usable backend is still programmed, with table size 0:
// the datapath then drops its packets and counts them as no-backend.
//
// What does not fit the maps is refused before anything is planned: the VIPs
// the maps hold keep their place, new VIPs are admitted in order while they
// fit, and the rest are returned as refused (with why) instead of failing the
// whole plan on a full map.
//
// Identities are stable: a backend keeps its index while its address is
// wanted, a VIP keeps its id and table slot; freed numbers are not reused in
// the pass that frees them, so no not-yet-replaced table can point at a
// reused backend index. The maps are the agent's only state: a restarted
// agent reads the image and plans against it. Pure: no I/O.

export type Family = 4 | 6;
export type Protocol = 'TCP' | 'UDP';

export interface VipKeyImage {
  readonly address: string;
  /** 0 = every port of the protocol. */
  readonly port: number;
  readonly protocol: Protocol;
}

/**
 * How a VIP's packets reach a backend. ipip: IP in IP; gue: IP in UDP with
 * GUE, carrying each slot's second hop (docs/second-chance.md); l2dsr: the
 * destination MAC rewritten (backends on the segment).
 */
export type VipMode = 'ipip' | 'gue' | 'l2dsr';

/** Modes that encapsulate: the outer header's family is the backend's, so a backend of another family than the VIP's cannot take it. */
export const encapsulates = (mode: VipMode): boolean => mode !== 'l2dsr';

/** How the datapath treats a VIP's packets, in words; the map writer turns them into the ABI's bits. */
export interface VipFeatures {
  readonly mode: VipMode;
  /** fiveTuple: hash addresses, ports and protocol; sourceIp: the source address only. */
  readonly affinity: 'fiveTuple' | 'sourceIp';
  /** Pin established flows to their backend in the flow table. */
  readonly flowTable: boolean;
}

export function sameFeatures(a: VipFeatures, b: VipFeatures): boolean {
  return a.mode === b.mode && a.affinity === b.affinity && a.flowTable === b.flowTable;
}

export interface VipMetaImage {
  readonly vipId: number;
  readonly features: VipFeatures;
  readonly tableSlot: number;
  readonly tableSize: number;
}

export interface BackendImage {
  readonly address: string;
  readonly family: Family;
  /** Destination MAC (next hop for ipip, the backend for l2dsr), or null: unresolved. */
  readonly mac: string | null;
}

export interface VipEntryImage {
  readonly key: VipKeyImage;
  readonly meta: VipMetaImage;
}

/** A table as the maps hold it: its slots stay in the kernel. */
export interface TableImage {
  readonly size: number;
  /** tableKey() of what it was written from; null: not known (read from maps this agent did not write), rewritten by the next plan. */
  readonly key: string | null;
}

/** A desired table's slots by owner position (into `owners`); alternates and second hops NO_BACKEND_INDEX for none, absent for none at all. */
export interface TableContent {
  readonly slots: Uint32Array;
  readonly alternates?: Uint32Array;
  readonly secondHops?: Uint32Array;
}

/** A table's slots as backend indices, as a putTable writes them (alternates and second hops NO_BACKEND_INDEX for none). */
export interface TableSlots {
  readonly slots: Uint32Array;
  readonly alternates: Uint32Array;
  readonly secondHops: Uint32Array;
}

/** What a table written from a table of this digest, with these owner backend indices, holds: equal keys, equal slots. */
export function tableKey(digest: string, ownerIndices: ArrayLike<number>): string {
  return `${digest}@${Array.prototype.join.call(ownerIndices, ',')}`;
}

/** The digest part of a table key. */
export function keyDigest(key: string): string {
  return key.slice(0, key.indexOf('@'));
}

/** The datapath's maps, decoded. */
export interface DatapathImage {
  readonly backends: ReadonlyMap<number, BackendImage>;
  readonly vips: readonly VipEntryImage[];
  /** Fragment owners: key port is always 0; meta is the owning VIP entry's. */
  readonly fragVips: readonly VipEntryImage[];
  /** Outer table slot -> the table there. */
  readonly tables: ReadonlyMap<number, TableImage>;
  /** Backend indices this node's datapath routes around (their slots go to their alternates). */
  readonly down: ReadonlySet<number>;
}

/** A slot's alternate when it has none (in backend-index and in owner-position space alike). */
export const NO_BACKEND_INDEX = 0xffffffff;

export const EMPTY_IMAGE: DatapathImage = { backends: new Map(), vips: [], fragVips: [], tables: new Map(), down: new Set() };

export interface DesiredVip {
  /** Stable name (namespace/name in Kubernetes, the config name standalone). */
  readonly name: string;
  readonly keys: readonly VipKeyImage[];
  readonly features: VipFeatures;
  /**
   * The table: size, owners (the backends' addresses), the digest of the
   * table (core/digest.ts), and its slots, produced only when the table is to
   * be written (a source need not hold every table's slots); null: no
   * backend, drop.
   */
  readonly table: DesiredTable | null;
}

export interface DesiredTable {
  readonly size: number;
  readonly owners: readonly string[];
  readonly digest: string;
  readonly content: () => TableContent;
}

/** A desired table whose slots are at hand. */
export function tableWithContent(size: number, owners: readonly string[], digest: string, content: TableContent): DesiredTable {
  return { size, owners, digest, content: () => content };
}

export interface DesiredDatapath {
  readonly vips: readonly DesiredVip[];
  /** Every backend a table refers to, by address. */
  readonly backends: ReadonlyMap<string, BackendImage>;
  /** Backend addresses this node routes around now (its own probes, the operator's decisions); absent: none. */
  readonly down?: ReadonlySet<string>;
}

export type PlanOp =
  /** `fresh`: the index is newly given to this address (its counters start at 0). */
  | { readonly op: 'putBackend'; readonly index: number; readonly backend: BackendImage; readonly fresh: boolean }
  /**
   * `content` gives the desired table's slots (owner positions) when the op
   * is executed, one table at a time; `byOwner[position]` is each owner's
   * backend index (tableSlotsOf translates).
   */
  | { readonly op: 'putTable'; readonly slot: number; readonly size: number; readonly key: string; readonly byOwner: Uint32Array; readonly content: () => TableContent; readonly vip: string }
  /** One write takes a backend out of (or back into) every table that names it, here. */
  | { readonly op: 'setBackendDown'; readonly index: number; readonly down: boolean }
  | { readonly op: 'resetVipStats'; readonly vipId: number }
  | { readonly op: 'putVip'; readonly key: VipKeyImage; readonly meta: VipMetaImage; readonly vip: string }
  | { readonly op: 'deleteVip'; readonly key: VipKeyImage }
  | { readonly op: 'putFragVip'; readonly key: VipKeyImage; readonly meta: VipMetaImage }
  | { readonly op: 'deleteFragVip'; readonly key: VipKeyImage }
  | { readonly op: 'deleteTable'; readonly slot: number }
  | { readonly op: 'clearBackend'; readonly index: number };

export interface Capacities {
  readonly maxBackends: number;
  /** VIP keys (address, port, protocol): the entries of the VIP map (and of the fragment-owner map). */
  readonly maxVips: number;
  readonly maxTables: number;
  /** VIP ids (counter slots); defaults to maxVips. */
  readonly maxVipIds?: number;
}

export interface Plan {
  readonly ops: readonly PlanOp[];
  /** Per desired VIP name: its id and table slot after the plan. */
  readonly vipIds: ReadonlyMap<string, { readonly vipId: number; readonly tableSlot: number }>;
  /** Backend address -> index after the plan. */
  readonly backendIndex: ReadonlyMap<string, number>;
  /** Desired VIPs left out because they do not fit, with why. Everything else is planned. */
  readonly refused: ReadonlyMap<string, string>;
  /** True when a refused VIP may fit once this plan's removals are done: plan again after applying. */
  readonly retry: boolean;
}

export class CapacityError extends Error {
  constructor(what: string, max: number) {
    super(`the datapath holds at most ${max} ${what}`);
    this.name = 'CapacityError';
  }
}

const vipKeyId = (k: VipKeyImage): string => `${k.address}|${k.port}|${k.protocol}`;

/** tableSlot of a VIP without a table (tableSize 0); never an allocated slot. */
export const NO_TABLE_SLOT = 0;

function sameMeta(a: VipMetaImage, b: VipMetaImage): boolean {
  return a.vipId === b.vipId && sameFeatures(a.features, b.features) && a.tableSlot === b.tableSlot && a.tableSize === b.tableSize;
}

function sameBackend(a: BackendImage | undefined, b: BackendImage): boolean {
  return a !== undefined && a.address === b.address && a.family === b.family && a.mac === b.mac;
}

/** A putTable's slots as backend indices: owner position -> `byOwner[position]` (the map writer packs them in the same pass instead). */
export function tableSlotsOf(op: Extract<PlanOp, { op: 'putTable' }>): TableSlots {
  const { vip: name, size, byOwner } = op;
  const content = op.content();
  const slots = new Uint32Array(size);
  const alternates = new Uint32Array(size).fill(NO_BACKEND_INDEX);
  const secondHops = new Uint32Array(size).fill(NO_BACKEND_INDEX);
  if (content.slots.length !== size) throw new Error(`table of ${name} has ${content.slots.length} slots for size ${size}`);
  for (let s = 0; s < size; s++) {
    const i = content.slots[s]!;
    if (i >= byOwner.length) throw new Error(`table of ${name} names owner ${i} of ${byOwner.length}`);
    slots[s] = byOwner[i]!;
    for (const [what, wanted, out] of [['alternate', content.alternates, alternates], ['second hop', content.secondHops, secondHops]] as const) {
      const a = wanted?.[s] ?? NO_BACKEND_INDEX;
      if (a === NO_BACKEND_INDEX) continue;
      if (a >= byOwner.length) throw new Error(`table of ${name} names ${what} ${a} of ${byOwner.length}`);
      out[s] = byOwner[a]!;
    }
  }
  return { slots, alternates, secondHops };
}

/** Lowest numbers not in `used`, in order, below `max`. */
function* freeNumbers(used: ReadonlySet<number>, max: number, what: string): Generator<number, never> {
  for (let n = 0; n < max; n++) if (!used.has(n)) yield n;
  throw new CapacityError(what, max);
}

/**
 * Which desired VIPs fit. VIPs the maps hold now come first (a running VIP is
 * never pushed out by a new one), then new VIPs in the order given. A VIP fits
 * when its new keys, fragment owners, id, table slot and backend indices fit
 * beside everything the maps hold now (removals happen at the end of a pass,
 * so their room is only usable in the next one) and beside the VIPs admitted
 * before it. Backends that no admitted VIP's table names (drained ones) get an
 * index only while room is left.
 */
function admit(current: DatapathImage, desired: DesiredDatapath, caps: Capacities): { desired: DesiredDatapath; refused: Map<string, string>; retry: boolean } {
  const currentByKey = new Map(current.vips.map((v) => [vipKeyId(v.key), v]));
  const keys = new Set(currentByKey.keys());
  const frags = new Set(current.fragVips.map((v) => vipKeyId(v.key)));
  const freeIds = (caps.maxVipIds ?? caps.maxVips) - new Set(current.vips.map((v) => v.meta.vipId)).size;
  const freeSlots = caps.maxTables - new Set<number>([...current.tables.keys(), ...current.vips.filter((v) => v.meta.tableSize > 0).map((v) => v.meta.tableSlot)]).size;
  const held = new Set([...current.backends.values()].map((b) => b.address));
  const freeBackends = caps.maxBackends - current.backends.size;
  let ids = 0;
  let slots = 0;
  const added = new Set<string>();
  // What the admitted VIPs alone need, to tell "full for now" from "full".
  let wantedKeys = 0;

  const entryOf = new Map<DesiredVip, VipEntryImage | undefined>();
  for (const v of desired.vips) {
    let entry: VipEntryImage | undefined;
    for (const k of v.keys) if ((entry = currentByKey.get(vipKeyId(k))) !== undefined) break;
    entryOf.set(v, entry);
  }
  const programmed = (v: DesiredVip): VipEntryImage | undefined => entryOf.get(v);
  const ordered = [...desired.vips.filter((v) => programmed(v) !== undefined), ...desired.vips.filter((v) => programmed(v) === undefined)];
  const admitted = new Set<string>();
  const refused = new Map<string, string>();
  let retry = false;
  for (const vip of ordered) {
    const existing = programmed(vip);
    const newKeys = vip.keys.filter((k) => !keys.has(vipKeyId(k)));
    const newFrags = new Set(vip.keys.map((k) => vipKeyId({ address: k.address, port: 0, protocol: k.protocol })).filter((f) => !frags.has(f)));
    const needsId = existing === undefined ? 1 : 0;
    const needsSlot = vip.table !== null && !(existing !== undefined && existing.meta.tableSize === vip.table.size && current.tables.has(existing.meta.tableSlot)) ? 1 : 0;
    const newBackends = new Set((vip.table?.owners ?? []).filter((a) => !held.has(a) && !added.has(a)));
    let why: string | null = null;
    if (keys.size + newKeys.length > caps.maxVips) why = `${caps.maxVips} VIP keys (address, port, protocol)`;
    else if (frags.size + newFrags.size > caps.maxVips) why = `${caps.maxVips} fragment owners (address, protocol)`;
    else if (ids + needsId > freeIds) why = `${caps.maxVipIds ?? caps.maxVips} VIPs`;
    else if (slots + needsSlot > freeSlots) why = `${caps.maxTables} tables`;
    else if (added.size + newBackends.size > freeBackends) why = `${caps.maxBackends} backends`;
    if (why !== null) {
      refused.set(vip.name, `the datapath holds at most ${why}; this VIP does not fit beside the ones programmed`);
      if (wantedKeys + vip.keys.length <= caps.maxVips) retry = true;
      continue;
    }
    admitted.add(vip.name);
    wantedKeys += vip.keys.length;
    for (const k of newKeys) keys.add(vipKeyId(k));
    for (const f of newFrags) frags.add(f);
    ids += needsId;
    slots += needsSlot;
    for (const a of newBackends) added.add(a);
  }
  if (refused.size === 0) return { desired, refused, retry: false };
  const named = new Set(desired.vips.filter((v) => admitted.has(v.name)).flatMap((v) => v.table?.owners ?? []));
  const backends = new Map<string, BackendImage>();
  for (const [address, be] of desired.backends) {
    if (named.has(address) || held.has(address)) backends.set(address, be);
    else if (added.size < freeBackends) {
      added.add(address);
      backends.set(address, be);
    }
  }
  return { desired: { vips: desired.vips.filter((v) => admitted.has(v.name)), backends }, refused, retry };
}

export function planDatapath(current: DatapathImage, wanted: DesiredDatapath, caps: Capacities): Plan {
  const { desired, refused, retry } = admit(current, wanted, caps);
  const ops: PlanOp[] = [];

  // --- 1. backends: keep indices of wanted addresses, allocate new ones ---
  const indexByAddress = new Map<string, number>();
  for (const [index, be] of current.backends) {
    if (desired.backends.has(be.address) && !indexByAddress.has(be.address)) indexByAddress.set(be.address, index);
  }
  const newBackendIndex = freeNumbers(new Set(current.backends.keys()), caps.maxBackends, 'backends');
  for (const [address, be] of desired.backends) {
    let index = indexByAddress.get(address);
    const fresh = index === undefined;
    if (index === undefined) {
      index = newBackendIndex.next().value;
      indexByAddress.set(address, index);
    }
    if (!sameBackend(current.backends.get(index), be)) ops.push({ op: 'putBackend', index, backend: be, fresh });
  }
  // Down, before any table: a backend found dead is routed around at once. Up again: after the tables.
  const down = downOps(current, desired.down ?? new Set(), indexByAddress);
  ops.push(...down.set);

  // --- current VIPs by key, and by id ---
  const currentByKey = new Map(current.vips.map((v) => [vipKeyId(v.key), v]));
  const usedIds = new Set(current.vips.map((v) => v.meta.vipId));
  const usedSlots = new Set<number>([...current.tables.keys(), ...current.vips.filter((v) => v.meta.tableSize > 0).map((v) => v.meta.tableSlot)]);
  const newVipId = freeNumbers(usedIds, caps.maxVipIds ?? caps.maxVips, 'VIPs');
  const newTableSlot = freeNumbers(usedSlots, caps.maxTables, 'tables');

  // --- 2. tables, and 3. VIP entries ---
  const vipIds = new Map<string, { vipId: number; tableSlot: number }>();
  const keptSlots = new Set<number>();
  const keptIds = new Set<number>();
  const wantedKeys = new Set<string>();
  const vipOps: PlanOp[] = [];
  const fragOwners = new Map<string, { key: VipKeyImage; port: number; meta: VipMetaImage }>();
  for (const vip of desired.vips) {
    // A VIP is the same VIP if one of its keys already maps to an id no other desired VIP took.
    const existing = vip.keys.map((k) => currentByKey.get(vipKeyId(k))).find((v) => v !== undefined && !keptIds.has(v.meta.vipId));
    let vipId: number;
    if (existing !== undefined) {
      vipId = existing.meta.vipId;
    } else {
      vipId = newVipId.next().value;
      ops.push({ op: 'resetVipStats', vipId });
    }
    keptIds.add(vipId);
    let tableSlot = NO_TABLE_SLOT;
    if (vip.table !== null) {
      const table = vip.table;
      const byOwner = Uint32Array.from(table.owners, (owner) => {
        const index = indexByAddress.get(owner);
        if (index === undefined) throw new Error(`table of ${vip.name} refers to backend ${owner} that is not in the desired backends`);
        return index;
      });
      const key = tableKey(table.digest, byOwner);
      const reuse = existing !== undefined && existing.meta.tableSize === table.size && current.tables.has(existing.meta.tableSlot);
      tableSlot = reuse ? existing.meta.tableSlot : newTableSlot.next().value;
      keptSlots.add(tableSlot);
      if (current.tables.get(tableSlot)?.key !== key) {
        ops.push({ op: 'putTable', slot: tableSlot, size: table.size, key, byOwner, content: table.content, vip: vip.name });
      }
    }
    vipIds.set(vip.name, { vipId, tableSlot });
    const meta: VipMetaImage = { vipId, features: vip.features, tableSlot, tableSize: vip.table?.size ?? 0 };
    for (const key of vip.keys) {
      wantedKeys.add(vipKeyId(key));
      const cur = currentByKey.get(vipKeyId(key))?.meta;
      if (cur === undefined || !sameMeta(cur, meta)) vipOps.push({ op: 'putVip', key, meta, vip: vip.name });
      const fragKey: VipKeyImage = { address: key.address, port: 0, protocol: key.protocol };
      const owner = fragOwners.get(vipKeyId(fragKey));
      if (owner === undefined || key.port < owner.port) fragOwners.set(vipKeyId(fragKey), { key: fragKey, port: key.port, meta });
    }
  }
  ops.push(...vipOps);
  const currentFrag = new Map(current.fragVips.map((v) => [vipKeyId(v.key), v.meta]));
  for (const [id, owner] of fragOwners) {
    const cur = currentFrag.get(id);
    if (cur === undefined || !sameMeta(cur, owner.meta)) ops.push({ op: 'putFragVip', key: owner.key, meta: owner.meta });
  }

  // --- 4. removals ---
  for (const v of current.fragVips) if (!fragOwners.has(vipKeyId(v.key))) ops.push({ op: 'deleteFragVip', key: v.key });
  for (const v of current.vips) if (!wantedKeys.has(vipKeyId(v.key))) ops.push({ op: 'deleteVip', key: v.key });
  for (const slot of [...current.tables.keys()].sort((a, b) => a - b)) if (!keptSlots.has(slot)) ops.push({ op: 'deleteTable', slot });
  ops.push(...down.clear);
  const wantedIndices = new Set(indexByAddress.values());
  for (const index of [...current.backends.keys()].sort((a, b) => a - b)) {
    if (!wantedIndices.has(index)) ops.push({ op: 'clearBackend', index });
  }

  return { ops, vipIds, backendIndex: indexByAddress, refused, retry };
}

/**
 * The writes that make the down state of backends `down` (addresses) and
 * only those, one per backend whose state changes: `set` marks backends
 * down, `clear` brings them back. `indexByAddress` defaults to the backends
 * the image holds; an address without an entry is left to the next full plan.
 * `set` alone is the agent's fast path: a backend found dead is routed around
 * for every VIP with one write, before any other work. `clear` waits for the
 * full plan, which orders it after the tables.
 */
export function downOps(current: DatapathImage, down: ReadonlySet<string>, indexByAddress: ReadonlyMap<string, number> = backendIndexByAddress(current)): { set: PlanOp[]; clear: PlanOp[] } {
  const wanted = new Set<number>();
  for (const address of down) {
    const index = indexByAddress.get(address);
    if (index !== undefined) wanted.add(index);
  }
  const set: PlanOp[] = [...wanted].sort((a, b) => a - b).filter((i) => !current.down.has(i)).map((index) => ({ op: 'setBackendDown', index, down: true }));
  const clear: PlanOp[] = [...current.down].sort((a, b) => a - b).filter((i) => !wanted.has(i)).map((index) => ({ op: 'setBackendDown', index, down: false }));
  return { set, clear };
}

function backendIndexByAddress(image: DatapathImage): Map<string, number> {
  const out = new Map<string, number>();
  for (const [index, be] of image.backends) if (!out.has(be.address)) out.set(be.address, index);
  return out;
}

/** Applies a plan to an image: what the maps hold once every op succeeded. */
export function applyPlan(image: DatapathImage, ops: readonly PlanOp[]): DatapathImage {
  const backends = new Map(image.backends);
  const tables = new Map(image.tables);
  const down = new Set(image.down);
  const vips = new Map(image.vips.map((v) => [vipKeyId(v.key), v]));
  const fragVips = new Map(image.fragVips.map((v) => [vipKeyId(v.key), v]));
  for (const op of ops) {
    switch (op.op) {
      case 'putBackend':
        backends.set(op.index, op.backend);
        break;
      case 'clearBackend':
        backends.delete(op.index);
        break;
      case 'putTable':
        tables.set(op.slot, { size: op.size, key: op.key });
        break;
      case 'deleteTable':
        tables.delete(op.slot);
        break;
      case 'setBackendDown':
        if (op.down) down.add(op.index);
        else down.delete(op.index);
        break;
      case 'putVip':
        vips.set(vipKeyId(op.key), { key: op.key, meta: op.meta });
        break;
      case 'deleteVip':
        vips.delete(vipKeyId(op.key));
        break;
      case 'putFragVip':
        fragVips.set(vipKeyId(op.key), { key: op.key, meta: op.meta });
        break;
      case 'deleteFragVip':
        fragVips.delete(vipKeyId(op.key));
        break;
      case 'resetVipStats':
        break;
    }
  }
  return { backends, tables, down, vips: [...vips.values()], fragVips: [...fragVips.values()] };
}
