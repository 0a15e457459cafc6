// table-publisher.ts: writes shared tables. A reconcile asks for a VIP's new
// generation to be published with a table; the publisher gathers such asks
// for a moment (every VIP over a changed pool asks within a second) and then
// writes each table once: the list of VIPs of its first shard patched, or,
// for a table not there, every shard created (the first, which lists the
// VIPs, last, so a listed table is whole). So a backend shared by a thousand VIPs
// costs one table write, not a thousand. Entries of VIPs gone, or of VIPs
// whose newer table is whole, are dropped whenever a list is written; a
// table no VIP programs any more is deleted (sweep), on the condition that
// its list is still the one judged (the cache may lag this publisher's own
// writes). The informer's events tell each VIP its table is out (the
// reconciler waits for them).
import type { Logger } from 'pino';
import { assignedEntry, parseAssignedEntry, PLURALS, sharedTableObjects, type SharedTable, type TableIndex } from '../api/index.js';
import { ErrorCodes, XdplbError } from '../core/errors.js';
import type { Table } from '../core/maglev.js';
import { digestOf } from '../core/table-memo.js';
import { tableObjectName } from '../core/table-shards.js';
import { statusCode, type Kube, type Obj } from '../kube/k8s.js';

export interface PublisherDeps {
  readonly kube: Kube;
  /** The operator's index of the VipTable informer's cache (rebuilt on resyncs: read it anew each time). */
  readonly index: () => TableIndex;
  /** The uid of VIP `namespace/name` if it exists and is not being deleted. */
  readonly liveVip: (namespace: string, name: string) => string | undefined;
  readonly log: Logger;
  /** Called once per VIP generation written. */
  readonly published?: (count: number) => void;
  /** Called once per table write that failed and is tried again. */
  readonly retried?: () => void;
}

/** How long asks gather after the last one, and at most after the first. */
export const GATHER_MS = 100;
export const GATHER_MAX_MS = 1000;
/** A table whose first shard never came (its writer died half way) is deleted after this long. */
export const ORPHAN_GRACE_MS = 60_000;
/** After a failed write, the next try. */
const RETRY_MS = 1000;
/** Conditional patches of a table's list tried in one round before the round gives up on it. */
const PATCH_TRIES = 4;

interface Ask {
  readonly namespace: string;
  /** Null for an ask that only takes VIPs off a table (it exists already). */
  readonly table: Table | null;
  readonly digest: string;
  /** VIP name -> its generation and uid. */
  readonly vips: Map<string, { generation: number; uid: string }>;
  /** VIPs to take off the table's list. */
  readonly withdrawn: Set<string>;
}

export class TablePublisher {
  readonly #d: PublisherDeps;
  /** "namespace/digest" -> what is asked of that table and not yet written. */
  #asks = new Map<string, Ask>();
  #timer: NodeJS.Timeout | undefined;
  #firstAsk = 0;
  #running: Promise<void> | undefined;

  constructor(deps: PublisherDeps) {
    this.#d = deps;
  }

  /** Publish generation `generation` of VIP `namespace/name` (uid `uid`) with `table`, soon. */
  publish(namespace: string, name: string, uid: string, generation: number, table: Table): void {
    const digest = digestOf(table);
    const key = `${namespace}/${digest}`;
    // An older ask of this VIP for another table is void.
    for (const [k, ask] of this.#asks) if (k !== key && ask.namespace === namespace) ask.vips.delete(name);
    let ask = this.#asks.get(key);
    if (ask === undefined || ask.table === null) ask = { namespace, table, digest, vips: ask?.vips ?? new Map(), withdrawn: ask?.withdrawn ?? new Set() };
    ask.vips.set(name, { generation, uid });
    ask.withdrawn.delete(name);
    this.#asks.set(key, ask);
    this.#schedule(GATHER_MS);
  }

  /**
   * Takes VIP `namespace/name` off every table that lists it (it lost its
   * address to an older claim): the lists are written in the next round,
   * and a table left unused goes at the next sweep.
   */
  withdraw(namespace: string, name: string): void {
    for (const ask of this.#asks.values()) if (ask.namespace === namespace) ask.vips.delete(name);
    for (const t of this.#d.index().sharedTables()) {
      if (t.namespace !== namespace || !t.assigned.some((a) => a.name === name)) continue;
      const key = `${namespace}/${t.digest}`;
      const ask = this.#asks.get(key) ?? { namespace, table: null, digest: t.digest, vips: new Map(), withdrawn: new Set<string>() };
      ask.withdrawn.add(name);
      this.#asks.set(key, ask);
    }
    this.#schedule(GATHER_MS);
  }

  /** Whether a publication of this table (namespace and digest) is asked and not yet written. */
  asked(namespace: string, digest: string): boolean {
    return (this.#asks.get(`${namespace}/${digest}`)?.vips.size ?? 0) > 0;
  }


  /** Drops what is asked and unwritten (this replica stopped leading: the next leader's reconciles ask again). */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#asks = new Map();
  }

  #schedule(ms: number): void {
    const now = performance.now();
    if (this.#timer === undefined) this.#firstAsk = now;
    clearTimeout(this.#timer);
    const wait = Math.max(0, Math.min(ms, this.#firstAsk + GATHER_MAX_MS - now));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#run();
    }, wait);
  }

  /** One round: every asked table written, one at a time (a round in progress is waited for). */
  async #run(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
    if (this.#asks.size === 0) return;
    const asks = this.#asks;
    this.#asks = new Map();
    this.#running = (async () => {
      let failed = false;
      for (const ask of asks.values()) {
        if (ask.vips.size === 0 && ask.withdrawn.size === 0) continue;
        try {
          await this.#write(ask);
          if (ask.vips.size > 0) this.#d.published?.(ask.vips.size);
        } catch (e) {
          failed = true;
          this.#d.retried?.();
          this.#d.log.warn({ err: e, namespace: ask.namespace, digest: ask.digest, vips: ask.vips.size }, 'Table not published; trying again');
          // Asked again meanwhile: the newer ask of each VIP wins.
          const again = this.#asks.get(`${ask.namespace}/${ask.digest}`) ?? { ...ask, vips: new Map(), withdrawn: new Set<string>() };
          for (const [name, v] of ask.vips) if (!again.vips.has(name) && !again.withdrawn.has(name)) again.vips.set(name, v);
          for (const name of ask.withdrawn) if (!again.vips.has(name)) again.withdrawn.add(name);
          this.#asks.set(`${ask.namespace}/${ask.digest}`, again);
        }
      }
      if (failed) this.#schedule(RETRY_MS);
    })();
    try {
      await this.#running;
    } finally {
      this.#running = undefined;
    }
    if (this.#asks.size > 0 && this.#timer === undefined) this.#schedule(GATHER_MS);
  }

  /** Writes one table with its VIPs: its list patched if it exists, or else its shards created (the first last). */
  async #write(ask: Ask): Promise<void> {
    const { kube } = this.#d;
    const { namespace, digest } = ask;
    const held = this.#d.index().shared(namespace, digest);
    const head = held?.head;
    const assigned = this.#assigned(held?.assigned ?? [], ask);
    const headName = tableObjectName(digest, 0);
    // Only VIPs taken off: the list of a table that exists (one gone lists nobody).
    if (ask.table === null) {
      if (head !== undefined) await this.#patchList(namespace, headName, head.metadata?.resourceVersion, assigned, ask);
      return;
    }
    // A table the cache holds: its list patched. False if a sweep deleted it
    // and the cache does not show it yet: it is written anew below.
    if (head !== undefined && (await this.#patchList(namespace, headName, head.metadata?.resourceVersion, assigned, ask))) return;
    const objects = sharedTableObjects(namespace, ask.table, assigned);
    // Every shard, whatever the cache says: one it still shows may be deleted
    // already. Creating a shard that exists is a no-op (createImmutable).
    for (const o of objects.slice(1).reverse()) await kube.createImmutable(PLURALS.tables, namespace, o as unknown as Obj);
    try {
      await kube.createImmutable(PLURALS.tables, namespace, objects[0] as unknown as Obj);
      return;
    } catch (e) {
      // There already with another list (the cache is behind): its list is read from the server and patched.
      if (!(e instanceof XdplbError && e.code === ErrorCodes.CONFLICT)) throw e;
    }
    if (!(await this.#patchList(namespace, headName, null, assigned, ask))) {
      throw new XdplbError(ErrorCodes.CONFLICT, `VipTable ${namespace}/${headName} was deleted while its VIPs were written`);
    }
  }

  /**
   * Patches the first shard's list, on the condition that it is still at
   * `version` (null: read it first). The informer may lag this publisher's own last write: on a
   * conflict the list is read from the API server, merged again and
   * patched at once (a few tries), not a round later. False if the table is gone.
   */
  async #patchList(namespace: string, headName: string, version: string | null | undefined, assigned: string[], ask: Ask): Promise<boolean> {
    const { kube } = this.#d;
    for (let attempt = 1; ; attempt++) {
      try {
        if (version !== null) {
          await kube.mergePatch(PLURALS.tables, namespace, headName, { metadata: version === undefined ? {} : { resourceVersion: version }, spec: { assigned } });
          return true;
        }
      } catch (e) {
        if (statusCode(e) === 404) return false;
        if (statusCode(e) !== 409 || attempt >= PATCH_TRIES) throw e;
      }
      let fresh: Obj;
      try {
        fresh = await kube.getObject(PLURALS.tables, namespace, headName);
      } catch (e) {
        if (statusCode(e) === 404) return false;
        throw e;
      }
      version = fresh.metadata?.resourceVersion;
      const listed = ((fresh as { spec?: { assigned?: unknown } }).spec?.assigned ?? []) as unknown[];
      assigned = this.#assigned(listed.flatMap((x) => (typeof x === 'string' && parseAssignedEntry(x) !== null ? [parseAssignedEntry(x)!] : [])), ask);
    }
  }

  /** The list to write: the table's current entries still in use, with the asked VIPs' entries in place of their others. */
  #assigned(current: SharedTable['assigned'], ask: Ask): string[] {
    const out = new Map<string, string>();
    for (const a of current) {
      if (ask.vips.has(a.name) || ask.withdrawn.has(a.name) || !this.#inUse(ask.namespace, a)) continue;
      out.set(a.name, assignedEntry(a.name, a.generation, a.uid));
    }
    for (const [name, v] of ask.vips) out.set(name, assignedEntry(name, v.generation, v.uid));
    return [...out.keys()].sort().map((n) => out.get(n)!);
  }

  /** Whether a table's entry may still be what its VIP programs: the VIP lives, and no newer table of it is whole. */
  #inUse(namespace: string, a: { name: string; generation: number; uid: string }): boolean {
    if (this.#d.liveVip(namespace, a.name) !== a.uid) return false;
    return !this.#d.index().candidates(namespace, a.name, a.uid).some((c) => c.generation > a.generation && c.whole);
  }

  /**
   * Deletes the shared tables no VIP programs any more: every entry's VIP is
   * gone or has a newer whole table, and nothing is asked of it. A table
   * without its first shard is deleted once it is older than ORPHAN_GRACE_MS.
   */
  async sweep(now: number = Date.now()): Promise<number> {
    // Never beside a round of writes: a table asked for meanwhile must not go.
    while (this.#running !== undefined) await this.#running;
    let release!: () => void;
    this.#running = new Promise<void>((res) => (release = res));
    try {
      return await this.#sweep(now);
    } finally {
      this.#running = undefined;
      release();
    }
  }

  async #sweep(now: number): Promise<number> {
    let deleted = 0;
    for (const t of this.#d.index().sharedTables()) {
      if (this.asked(t.namespace, t.digest)) continue;
      if (t.head === undefined) {
        const created = this.#oldestCreation(t);
        if (created === undefined || now - created < ORPHAN_GRACE_MS) continue;
      } else if (t.assigned.some((a) => this.#inUse(t.namespace, a))) continue;
      // The first shard first, and only if its list is still the one judged
      // here: the cache may not show this publisher's last write to it yet,
      // and a table just listed for a VIP must stay. A half-deleted table is
      // then one no VIP lists.
      const headName = tableObjectName(t.digest, 0);
      if (t.head !== undefined) {
        try {
          await this.#d.kube.delete(PLURALS.tables, t.namespace, headName, t.head.metadata?.resourceVersion);
        } catch (e) {
          if (!(e instanceof XdplbError && e.code === ErrorCodes.CONFLICT)) throw e;
          this.#d.log.debug({ namespace: t.namespace, digest: t.digest }, 'Kept table listed again since the cache was read');
          continue;
        }
      }
      for (const name of t.names) if (name !== headName) await this.#d.kube.delete(PLURALS.tables, t.namespace, name);
      deleted++;
      this.#d.log.debug({ namespace: t.namespace, digest: t.digest }, 'Deleted table no VIP programs');
    }
    return deleted;
  }

  #oldestCreation(t: SharedTable): number | undefined {
    // Shard objects of a table without its head: read their creation times from the index's objects.
    let oldest: number | undefined;
    for (const c of this.#d.index().creationTimes(t.namespace, t.digest)) oldest = oldest === undefined ? c : Math.min(oldest, c);
    return oldest;
  }
}
