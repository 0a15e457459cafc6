// table-index.ts: which tables each LoadBalancerVip is published with, read
// from the VipTable objects an informer holds. A shared (content-addressed)
// table's first shard lists its VIPs with the generation it is for each;
// shards of the earlier form name their VIP and generation themselves. The
// operator keeps one index up to date from the informer's events; the agent
// builds one from the informer's list on every pass (objects are parsed once
// each: see object.ts). Nothing here decodes slots.
import type { TableShardSpec } from '../core/table-shards.js';
import { parseAssignedEntry, parseVipTable, parseVipTableRef } from './viptable.js';
import type { RawObject } from './object.js';

/** A VipTable as an informer hands it over. */
export type TableObject = RawObject & { readonly metadata?: { readonly name?: string; readonly namespace?: string; readonly resourceVersion?: string; readonly creationTimestamp?: unknown } };

/** One table a VIP is published with, at one generation of that VIP. */
export interface TableCandidate {
  readonly generation: number;
  readonly digest: string;
  /** Earlier form: shards of this VIP alone (named after it and the generation). */
  readonly legacy: boolean;
  /** The shard objects present (complete or not: assembling says). */
  readonly shards: readonly { readonly name: string; readonly object: TableObject }[];
  /** Whether every shard is present (the digest is checked on assembling). */
  readonly whole: boolean;
  /** Identifies what the shards hold: equal signatures, equal table (shared shards are immutable but for their VIP list). */
  readonly signature: string;
}

/** A shared table of a namespace: its shards present and the VIPs its first shard lists. */
export interface SharedTable {
  readonly namespace: string;
  readonly digest: string;
  readonly names: readonly string[];
  /** Parsed `assigned` entries of the first shard (empty without it). */
  readonly assigned: readonly { readonly name: string; readonly generation: number; readonly uid: string }[];
  /** The first shard's object (undefined while it is missing). */
  readonly head: TableObject | undefined;
  /** Whether every shard is present. */
  readonly whole: boolean;
}

interface Shared {
  readonly shards: Map<number, { name: string; object: TableObject }>;
  count: number;
  head: TableObject | undefined;
  /** The first shard's `assigned` as written. */
  headEntries: readonly string[] | undefined;
  assigned: { name: string; generation: number; uid: string }[];
}

interface Legacy {
  readonly vip: string;
  readonly generation: number;
  readonly digest: string;
  readonly count: number;
  readonly object: TableObject;
}

export class TableIndex {
  /** Shared tables by "namespace/digest". */
  readonly #shared = new Map<string, Shared>();
  /** Per object "namespace/name": the shared table it is a shard of, or its earlier-form entry. */
  readonly #objects = new Map<string, { shared: string; index: number } | { legacy: Legacy }>();
  /** Per VIP "namespace/name": the shared tables whose first shard lists it (keys of #shared). */
  readonly #sharedByVip = new Map<string, Set<string>>();
  /** Per VIP "namespace/name": its earlier-form shards by object name. */
  readonly #legacyByVip = new Map<string, Map<string, Legacy>>();

  static of(objects: Iterable<TableObject>): TableIndex {
    const index = new TableIndex();
    for (const o of objects) index.note(o, false);
    return index;
  }

  /**
   * An object was added, changed (`gone` false) or removed: the index
   * follows. Returns the keys ("namespace/name") of the VIPs whose tables
   * this may change: the VIPs it listed before and lists now.
   */
  note(o: TableObject, gone: boolean): string[] {
    const namespace = o.metadata?.namespace;
    const name = o.metadata?.name;
    if (namespace === undefined || name === undefined) return [];
    const key = `${namespace}/${name}`;
    // An update of a first shard already held: only its list of VIPs can have changed.
    const held = this.#objects.get(key);
    const before = !gone && held !== undefined && 'shared' in held && held.index === 0 ? this.#shared.get(held.shared)?.headEntries : undefined;
    const affected = this.#forget(key, namespace);
    if (gone) return affected;
    const ref = parseVipTableRef(o);
    if (!ref.ok) return affected;
    const s = ref.value.spec;
    if (s.vip !== undefined && s.generation !== undefined) {
      const legacy: Legacy = { vip: s.vip, generation: s.generation, digest: s.digest, count: s.shard.count, object: o };
      this.#objects.set(key, { legacy });
      const vipKey = `${namespace}/${s.vip}`;
      const mine = this.#legacyByVip.get(vipKey) ?? new Map<string, Legacy>();
      mine.set(name, legacy);
      this.#legacyByVip.set(vipKey, mine);
      affected.push(vipKey);
      return affected;
    }
    const tableKey = `${namespace}/${s.digest}`;
    const table = this.#shared.get(tableKey) ?? { shards: new Map(), count: s.shard.count, head: undefined, headEntries: undefined, assigned: [] };
    this.#shared.set(tableKey, table);
    table.count = s.shard.count;
    table.shards.set(s.shard.index, { name, object: o });
    this.#objects.set(key, { shared: tableKey, index: s.shard.index });
    if (s.shard.index === 0) {
      table.head = o;
      table.headEntries = s.assigned ?? [];
      table.assigned = (s.assigned ?? []).flatMap((e) => {
        const a = parseAssignedEntry(e);
        return a === null ? [] : [a];
      });
      for (const a of table.assigned) {
        const vipKey = `${namespace}/${a.name}`;
        const set = this.#sharedByVip.get(vipKey) ?? new Set<string>();
        set.add(tableKey);
        this.#sharedByVip.set(vipKey, set);
      }
      // The first shard's list changed: only the VIPs whose entry came, went or changed.
      if (before !== undefined) {
        const was = new Set(before);
        const now = new Set((s.assigned ?? []));
        return [...new Set([...before.filter((e) => !now.has(e)), ...(s.assigned ?? []).filter((e) => !was.has(e))].flatMap((e) => {
          const a = parseAssignedEntry(e);
          return a === null ? [] : [`${namespace}/${a.name}`];
        }))];
      }
    }
    // Every VIP the table lists: a shard arriving can make the table whole for each.
    for (const a of table.assigned) affected.push(`${namespace}/${a.name}`);
    return [...new Set(affected)];
  }

  /** Drops what the index holds for object `key`; returns the VIPs it concerned. */
  #forget(key: string, namespace: string): string[] {
    const held = this.#objects.get(key);
    if (held === undefined) return [];
    this.#objects.delete(key);
    if ('legacy' in held) {
      const vipKey = `${namespace}/${held.legacy.vip}`;
      const mine = this.#legacyByVip.get(vipKey);
      mine?.delete(key.slice(namespace.length + 1));
      if (mine?.size === 0) this.#legacyByVip.delete(vipKey);
      return [vipKey];
    }
    const table = this.#shared.get(held.shared);
    if (table === undefined) return [];
    table.shards.delete(held.index);
    const affected = table.assigned.map((a) => `${namespace}/${a.name}`);
    if (held.index === 0) {
      for (const a of table.assigned) {
        const vipKey = `${namespace}/${a.name}`;
        const set = this.#sharedByVip.get(vipKey);
        set?.delete(held.shared);
        if (set?.size === 0) this.#sharedByVip.delete(vipKey);
      }
      table.head = undefined;
      table.headEntries = undefined;
      table.assigned = [];
    }
    if (table.shards.size === 0) this.#shared.delete(held.shared);
    return affected;
  }

  /**
   * The tables VIP `namespace/name` (with `uid`) is published with, any
   * generation, newest first. Entries of another VIP that had the same name
   * (another uid) are not its own.
   */
  candidates(namespace: string, name: string, uid: string): TableCandidate[] {
    const vipKey = `${namespace}/${name}`;
    const out: TableCandidate[] = [];
    for (const tableKey of this.#sharedByVip.get(vipKey) ?? []) {
      const table = this.#shared.get(tableKey)!;
      const shards = [...table.shards.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
      const digest = tableKey.slice(namespace.length + 1);
      for (const a of table.assigned) {
        if (a.name !== name || a.uid !== uid) continue;
        out.push({ generation: a.generation, digest, legacy: false, shards, whole: table.head !== undefined && shards.length === table.count, signature: `${digest}@${a.generation}#${shards.map((s) => s.name).join(',')}` });
      }
    }
    const byGeneration = new Map<number, Legacy[]>();
    for (const l of this.#legacyByVip.get(vipKey)?.values() ?? []) byGeneration.set(l.generation, [...(byGeneration.get(l.generation) ?? []), l]);
    for (const [generation, list] of byGeneration) {
      const shards = list.map((l) => ({ name: l.object.metadata!.name!, object: l.object })).sort((a, b) => (a.name < b.name ? -1 : 1));
      out.push({ generation, digest: list[0]!.digest, legacy: true, shards, whole: shards.length === list[0]!.count, signature: `legacy@${generation}#${shards.map((s) => `${s.name}@${s.object.metadata?.resourceVersion ?? ''}`).join(',')}` });
    }
    return out.sort((a, b) => b.generation - a.generation);
  }

  /** The highest generation any table lists VIP `namespace/name` with (uid-blind: a new VIP of the name counts on from there), 0 when none. */
  highestGeneration(namespace: string, name: string): number {
    const vipKey = `${namespace}/${name}`;
    let highest = 0;
    for (const tableKey of this.#sharedByVip.get(vipKey) ?? []) for (const a of this.#shared.get(tableKey)!.assigned) if (a.name === name) highest = Math.max(highest, a.generation);
    for (const l of this.#legacyByVip.get(vipKey)?.values() ?? []) highest = Math.max(highest, l.generation);
    return highest;
  }

  /** The earlier-form shards of VIP `namespace/name`: object names and generations. */
  legacyShards(namespace: string, name: string): { name: string; generation: number }[] {
    return [...(this.#legacyByVip.get(`${namespace}/${name}`) ?? new Map<string, Legacy>()).entries()].map(([n, l]) => ({ name: n, generation: l.generation }));
  }

  /** The shared table with `digest` in `namespace`, if any shard of it is held. */
  shared(namespace: string, digest: string): SharedTable | undefined {
    const table = this.#shared.get(`${namespace}/${digest}`);
    return table === undefined ? undefined : this.#view(namespace, digest, table);
  }

  /** Every shared table held. */
  sharedTables(): SharedTable[] {
    return [...this.#shared.entries()].map(([key, table]) => {
      const at = key.indexOf('/');
      return this.#view(key.slice(0, at), key.slice(at + 1), table);
    });
  }

  /** Creation times (ms since the epoch) of the shards held of shared table `digest` in `namespace`. */
  creationTimes(namespace: string, digest: string): number[] {
    const table = this.#shared.get(`${namespace}/${digest}`);
    return [...(table?.shards.values() ?? [])].flatMap((s) => {
      const t = s.object.metadata?.creationTimestamp;
      const ms = t instanceof Date ? t.getTime() : typeof t === 'string' ? Date.parse(t) : NaN;
      return Number.isNaN(ms) ? [] : [ms];
    });
  }

  #view(namespace: string, digest: string, table: Shared): SharedTable {
    return { namespace, digest, names: [...table.shards.values()].map((s) => s.name), assigned: table.assigned, head: table.head, whole: table.head !== undefined && table.shards.size === table.count };
  }
}

/**
 * A candidate's shards as generation `generation` of VIP `vip` (what
 * core/table-shards.ts assembles). Throws when a shard does not parse: the
 * set is then inconsistent.
 */
export function candidateShards(candidate: TableCandidate, vip: string): TableShardSpec[] {
  return candidate.shards.map(({ object }) => {
    const t = parseVipTable(object);
    if (!t.ok) throw new Error(`VipTable ${t.key} does not parse: ${t.problem}`);
    return { ...t.value.spec, vip, generation: candidate.generation };
  });
}
