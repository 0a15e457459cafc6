// engine.ts: the agent's reconcile loop. Level-triggered: anything that may
// change the desired state (config, a health flip, a neighbour change, the
// resync timer) only calls trigger(); one pass at a time then reads the
// observations, asks the source for the desired datapath, plans against the
// maps' image and applies. Triggers during a pass coalesce into one more pass.
// A failed pass re-reads the maps and retries with backoff. What does not fit
// the maps is refused by the plan (logged once, counted in a metric, reported)
// while everything else is programmed. The agent holds no table's slots: they
// live in the kernel, and the image holds what each inner map was written
// from. After writing, lb_tables is read back (one batch lookup): a VIP's
// programmed digest is that of the table in the inner map its outer slot
// holds. Each resync re-reads a few tables in turn and digests their slots,
// so a table changed behind the agent's back is found and written again.
import type { Logger } from 'pino';
import { EMPTY_FAILOVER_MODEL, type FailoverModel } from '../core/failover-model.js';
import { applyPlan, downOps, keyDigest, planDatapath, type DatapathImage, type DesiredDatapath, type DesiredVip, type VipEntryImage } from '../core/datapath-plan.js';
import { programmedDigest } from '../core/digest.js';
import { DesiredMemo, tableFromImage, type MacResolution, type VipStatus } from '../core/desired-state.js';
import type { Table } from '../core/maglev.js';
import type { ControlSettings, MapWriter } from '../bpf/map-writer.js';
import type { AgentMetrics } from './metrics.js';
import type { NeighborResolver } from './neighbors.js';

/** What the agent programs, from its observations; standalone or Kubernetes. */
export interface DesiredSource {
  /** Backend addresses whose MACs are needed, and whether they must be on-link (l2dsr). */
  addresses(): Map<string, { onLink: boolean }>;
  compute(
    observed: {
      mac: (address: string) => MacResolution | undefined;
      currentTable: (vip: string) => Table | undefined;
    },
    memo: DesiredMemo,
  ): {
    desired: DesiredDatapath;
    status: VipStatus[];
  };
  /** The VIP's keys as "address|port|protocol", to find the table it has now. */
  keysOf(vip: string): readonly string[];
  /** The backends to route around now, computed without the tables (the fast path); absent: only full passes. */
  down?(): ReadonlySet<string>;
  /** What the failover thread needs to route around on its own (failover-model.ts); absent: it never does. */
  failover?(): Pick<FailoverModel, 'enabled' | 'vips'>;
}

export interface EngineDeps {
  readonly writer: MapWriter;
  readonly control: ControlSettings;
  readonly resolver: Pick<NeighborResolver, 'resolve'>;
  readonly metrics: AgentMetrics;
  readonly log: Logger;
  /** Re-resolve known MACs this often, unresolved ones every second. */
  readonly neighborRefreshMs?: number;
  /** Called after every successful pass (Kubernetes mode reports from it). */
  readonly onPass?: () => void;
  /** Tables whose slots a resync re-reads and digests (in turn, all of them over successive resyncs). */
  readonly checkPerResync?: number;
  /** Called after a pass that wrote many tables: return the memory it freed to the system. */
  readonly releaseMemory?: () => void;
}

/** Tables written in one pass from which its freed memory is worth returning. */
const MANY_TABLES = 32;

/** On an upgrade: the old program's maps, whose tables the first tables continue from. */
export interface Seed {
  readonly image: DatapathImage;
  readonly writer: MapWriter;
}

interface Neighbor {
  resolution: MacResolution;
  at: number;
  inFlight: boolean;
}

export class Engine {
  readonly #d: EngineDeps;
  #source: DesiredSource | null = null;
  #image: DatapathImage;
  #neighbors = new Map<string, Neighbor>();
  #pendingSince: number | null = null;
  #running: Promise<void> | null = null;
  #dirty = false;
  #failures = 0;
  #stopped = false;
  #retry: NodeJS.Timeout | null = null;
  /** Per VIP: tables programmed for it since the agent started, and when the last was (ms since the epoch). */
  readonly #programmings = new Map<string, { count: number; at: number }>();
  #lastStatus: VipStatus[] = [];
  #vipIds = new Map<string, number>();
  /** Per VIP: the digest of its table read back from the kernel after programming (null: not in the maps). */
  readonly #programmed = new Map<string, string | null>();
  /** Per VIP left out because it does not fit: why. */
  #refused = new Map<string, string>();
  readonly #memo = new DesiredMemo();
  #verifyAll = false;
  /** Whether the status metrics were exported once (after that, only when what they show changed). */
  #exported = false;
  /** Where the next resync's slot check starts, in the VIPs' order. */
  #checkFrom = 0;
  /** Backend address -> its last down spell in this datapath (until null: down now). */
  readonly #lastDown = new Map<string, { since: number; until: number | null }>();

  #seed: Seed | null;

  /**
   * `image`: what the maps hold. `seed`: on an upgrade, the old program's maps,
   * whose tables the first tables continue from (the new maps start empty).
   */
  constructor(deps: EngineDeps, image: DatapathImage, seed: Seed | null = null) {
    this.#d = deps;
    this.#image = image;
    this.#seed = seed;
    // MACs the maps already hold count as resolved: an adopted datapath keeps forwarding
    // while they are re-checked, instead of losing every backend for a moment.
    const stale = performance.now() - (deps.neighborRefreshMs ?? 10_000);
    for (const be of [...image.backends.values(), ...(seed?.image.backends.values() ?? [])]) {
      if (be.mac !== null) this.#neighbors.set(be.address, { resolution: { ok: true, mac: be.mac }, at: stale, inFlight: false });
    }
  }

  get image(): DatapathImage {
    return this.#image;
  }

  get status(): readonly VipStatus[] {
    return this.#lastStatus;
  }

  /** VIP name -> digest of the table the kernel holds for it, read back after programming (null: none programmed). */
  get programmed(): ReadonlyMap<string, string | null> {
    return this.#programmed;
  }

  /** VIP name -> tables programmed for it since the agent started, and when the last one was written (ms since the epoch). */
  get programmings(): ReadonlyMap<string, { readonly count: number; readonly at: number }> {
    return this.#programmings;
  }

  /**
   * Backend address -> its last time down in this datapath: when the write that
   * marked it completed and when the one that cleared it did (null: down now),
   * for backends the maps hold. A down spell shorter than a poll still shows here.
   */
  get lastDown(): ReadonlyMap<string, { readonly since: number; readonly until: number | null }> {
    return this.#lastDown;
  }

  /** Backend address -> when the write that routes around it completed (ms since the epoch), for those down now. */
  get downSince(): ReadonlyMap<string, number> {
    return new Map([...this.#lastDown].flatMap(([a, d]) => (d.until === null ? [[a, d.since] as const] : [])));
  }

  /** VIP name -> why it is left out of the datapath (it does not fit), as of the last pass. */
  get refused(): ReadonlyMap<string, string> {
    return this.#refused;
  }

  /** VIP name -> its id (counter index), as of the last pass. */
  get vipIds(): ReadonlyMap<string, number> {
    return this.#vipIds;
  }

  setSource(source: DesiredSource): void {
    this.#source = source;
    // An endpoint turning not ready is routed around before the pass, like a failed probe.
    this.routeAround('source');
  }

  /** Something may have changed: reconcile soon (coalesced). */
  trigger(reason: string): void {
    if (this.#stopped) return;
    this.#pendingSince ??= performance.now();
    this.#d.log.trace({ reason }, 'Reconcile triggered');
    if (this.#running !== null) {
      this.#dirty = true;
      return;
    }
    this.#running = this.#loop().finally(() => {
      this.#running = null;
    });
  }

  /**
   * The fast path of a health change: marks down the backends the source
   * wants down that the maps hold (one write per backend), at once, without a
   * pass over the tables; then a pass follows for everything else.
   * The event loop is single-threaded and a pass applies its plan without
   * yielding, so this never interleaves with a pass's writes.
   */
  routeAround(reason: string): void {
    const down = this.#source?.down?.();
    if (down !== undefined && !this.#stopped) {
      // Only backends going down: one coming back waits for the pass (after its tables).
      const ops = downOps(this.#image, down).set;
      if (ops.length > 0) {
        try {
          this.#setImage(this.#d.writer.apply(this.#image, ops, this.#d.control));
          this.#d.log.info({ reason, down: [...down].sort() }, 'Routed around backends');
        } catch (e) {
          this.#d.log.error({ err: e }, 'Writing the down state failed; the pass will retry');
          try {
            this.#image = this.#d.writer.readImage();
          } catch {
            // the pass re-reads the maps on its own failure
          }
        }
      }
    }
    this.trigger(reason);
  }

  /**
   * The failover thread marked these backends down (it writes the map
   * itself): the image follows, so the next pass plans from what the maps
   * hold, and a pass follows. An index that no longer holds that address is
   * marked too: the pass then clears it if nothing wants it down.
   */
  noteDown(writes: readonly { readonly index: number; readonly at: number }[]): void {
    const ops = writes.filter((w) => !this.#image.down.has(w.index)).map((w) => ({ op: 'setBackendDown' as const, index: w.index, down: true }));
    if (ops.length === 0) return;
    const at = new Map(writes.map((w) => [this.#image.backends.get(w.index)?.address ?? '', w.at]));
    this.#setImage(applyPlan(this.#image, ops), at);
    this.trigger('failover');
  }

  /** What the failover thread needs now: the source's VIPs, and the maps' backend indices and down state. */
  failoverModel(): FailoverModel {
    const f = this.#source?.failover?.();
    if (f === undefined) return EMPTY_FAILOVER_MODEL;
    const indexOf: [string, number][] = [];
    for (const [index, be] of this.#image.backends) indexOf.push([be.address, index]);
    return { ...f, indexOf: indexOf.sort((a, b) => a[1] - b[1]), down: [...this.#image.down].sort((a, b) => a - b) };
  }

  /** Resolves when no pass is running or pending. */
  async settled(): Promise<void> {
    while (this.#running !== null) await this.#running;
  }

  /** Re-reads the maps (periodic resync: anything changed behind the agent's back is repaired). */
  resync(): void {
    this.#verifyAll = true; // check every VIP's outer slot, and a few tables' slots, on the next pass
    try {
      this.#image = this.#d.writer.readImage();
    } catch (e) {
      this.#d.log.error({ err: e }, 'Reading the maps failed');
    }
    this.trigger('resync');
  }

  stop(): void {
    this.#stopped = true;
    if (this.#retry !== null) clearTimeout(this.#retry);
  }

  async #loop(): Promise<void> {
    do {
      this.#dirty = false;
      const since = this.#pendingSince ?? performance.now();
      this.#pendingSince = null;
      try {
        const changed = await this.#pass();
        this.#failures = 0;
        this.#d.onPass?.();
        this.#d.metrics.reconciles.inc({ result: 'ok' });
        if (changed) this.#d.metrics.programmingSeconds.observe((performance.now() - since) / 1000);
      } catch (e) {
        this.#failures++;
        this.#d.metrics.reconciles.inc({ result: 'error' });
        this.#d.log.error({ err: e, failures: this.#failures }, 'Reconcile failed; re-reading the maps and retrying');
        try {
          this.#image = this.#d.writer.readImage();
        } catch (readError) {
          this.#d.log.error({ err: readError }, 'Reading the maps failed');
        }
        const wait = Math.min(30_000, 100 * 2 ** Math.min(this.#failures, 9));
        if (this.#retry !== null) clearTimeout(this.#retry);
        this.#retry = setTimeout(() => this.trigger('retry'), wait);
      }
      // Let probes, /status and watch events run between passes.
      if (this.#dirty) await new Promise((r) => setImmediate(r));
    } while (this.#dirty && !this.#stopped);
  }

  /** One pass; true when maps were written. */
  async #pass(): Promise<boolean> {
    const source = this.#source;
    if (source === null) return false;
    await this.#resolveNeighbors(source.addresses());
    const image = this.#image;
    const held = vipIndex(image);
    const seed = this.#seed;
    const seedHeld = seed === null ? null : vipIndex(seed.image);
    const { desired, status } = source.compute(
      {
        mac: (a) => this.#neighbors.get(a)?.resolution,
        currentTable: (vip) =>
          readCurrentTable(this.#d.writer, image, held, source.keysOf(vip)) ??
          (seed === null || seedHeld === null ? undefined : readCurrentTable(seed.writer, seed.image, seedHeld, source.keysOf(vip))),
      },
      this.#memo,
    );
    const plan = planDatapath(image, desired, this.#d.writer.capacities());
    this.#lastStatus = status;
    this.#vipIds = new Map([...plan.vipIds].map(([name, ids]) => [name, ids.vipId]));
    const refusedChanged = this.#noteRefused(plan.refused);
    let touched: Set<string>;
    if (plan.ops.length === 0) {
      touched = new Set();
    } else {
      const started = performance.now();
      this.#setImage(this.#d.writer.apply(image, plan.ops, this.#d.control));
      this.#seed = null;
      touched = new Set(plan.ops.flatMap((o) => (o.op === 'putTable' || o.op === 'putVip' ? [o.vip] : [])));
      if (plan.ops.filter((o) => o.op === 'putTable').length >= MANY_TABLES) this.#d.releaseMemory?.();
      for (const s of status) {
        if (touched.has(s.name)) {
          this.#programmings.set(s.name, { count: (this.#programmings.get(s.name)?.count ?? 0) + 1, at: Date.now() });
          this.#d.log.info(
            { vip: s.name, digest: s.digest, moved: s.moved, size: s.tableSize, serving: s.backends.filter((b) => b.slots > 0).length, panic: s.panic },
            'Programmed VIP',
          );
        }
      }
      this.#d.log.debug({ ops: plan.ops.length, ms: performance.now() - started }, 'Applied plan');
    }
    const reread = this.#readBack(desired.vips, status, touched, plan.refused);
    // The status metrics change only with what the maps hold (and what is refused): an idle pass leaves them.
    if (plan.ops.length > 0 || reread || refusedChanged || !this.#exported) this.#exportStatus(status);
    // Room freed by this pass's removals may fit a VIP refused in it.
    if (plan.retry && plan.ops.length > 0) this.trigger('capacity');
    return plan.ops.length > 0;
  }

  /** The maps now hold `next`; notes when backends went down (at `at`'s time, else now) or came back. */
  #setImage(next: DatapathImage, at: ReadonlyMap<string, number> = new Map()): void {
    const now = Date.now();
    const down = new Set([...next.down].map((i) => next.backends.get(i)?.address).filter((a): a is string => a !== undefined));
    for (const a of down) {
      if (this.#lastDown.get(a)?.until === null) continue;
      this.#lastDown.set(a, { since: at.get(a) ?? now, until: null });
      this.#d.metrics.routedAround.inc();
      this.#d.metrics.backendDown.set({ backend: a }, 1);
    }
    for (const [a, last] of this.#lastDown) {
      if (last.until !== null || down.has(a)) continue;
      last.until = now;
      this.#d.metrics.backendDown.remove({ backend: a });
    }
    const present = new Set([...next.backends.values()].map((b) => b.address));
    for (const a of [...this.#lastDown.keys()]) if (!present.has(a)) this.#lastDown.delete(a);
    this.#image = next;
  }

  /**
   * What the kernel holds for the VIPs changed or never checked (all of them
   * on a resync): the VIP entry's outer slot, the inner map there, and the
   * digest of what was written into it. A table this writer did not write
   * (or distrusts) is read and digested. On a resync, a few tables' slots are
   * read and digested too (in turn): one that differs from what was written
   * is reported, distrusted and written again by the next pass. True when
   * a VIP's programmed digest changed.
   */
  #readBack(vips: readonly DesiredVip[], status: readonly VipStatus[], touched: ReadonlySet<string>, refused: ReadonlyMap<string, string>): boolean {
    const before = new Map(this.#programmed);
    this.#readBackInto(vips, status, touched, refused);
    if (before.size !== this.#programmed.size) return true;
    for (const [name, digest] of this.#programmed) if (before.get(name) !== digest) return true;
    return false;
  }

  #readBackInto(vips: readonly DesiredVip[], status: readonly VipStatus[], touched: ReadonlySet<string>, refused: ReadonlyMap<string, string>): void {
    const listed = new Map(status.map((s) => [s.name, s.listed]));
    const wanted = new Set(vips.map((v) => v.name));
    const verifyAll = this.#verifyAll;
    this.#verifyAll = false;
    const due = vips.filter((v) => !refused.has(v.name) && (verifyAll || touched.has(v.name) || !this.#programmed.has(v.name)));
    for (const v of vips) if (refused.has(v.name)) this.#programmed.set(v.name, null);
    if (due.length > 0) {
      const writer = this.#d.writer;
      const ids = writer.tableIds();
      const addresses = new Map<number, string>();
      const digestOfSlots = (name: string, size: number, slot: number): string | null => {
        const t = writer.readTable(slot);
        if (t === null) return null;
        const named = new Set<number>();
        for (const a of [t.slots, t.alternates, t.secondHops]) for (let s = 0; s < a.length; s++) named.add(a[s]!);
        for (const [i, address] of writer.readBackendAddresses([...named].filter((i) => !addresses.has(i)))) addresses.set(i, address);
        return programmedDigest(size, t.slots, (i) => addresses.get(i), listed.get(name) ?? [], t.alternates, t.secondHops);
      };
      const check = verifyAll ? this.#checkedThisResync(due) : new Set<string>();
      let distrusted = false;
      for (const vip of due) {
        const first = vip.keys[0];
        const meta = first === undefined ? null : writer.readVipMeta(first);
        if (meta === null) {
          this.#programmed.set(vip.name, null);
          continue;
        }
        if (meta.tableSize === 0) {
          this.#programmed.set(vip.name, programmedDigest(0, null, () => undefined, []));
          continue;
        }
        const held = ids.get(meta.tableSlot);
        if (held === undefined) {
          this.#programmed.set(vip.name, null);
          continue;
        }
        // The digest written into that inner map; null: not written by this writer (or distrusted).
        const key = held.table?.key ?? null;
        const written = key === null ? null : keyDigest(key);
        if (written === null || check.has(vip.name)) {
          const read = digestOfSlots(vip.name, meta.tableSize, meta.tableSlot);
          if (written !== null && read !== written) {
            this.#d.log.error({ vip: vip.name, slot: meta.tableSlot, written, read }, 'A table in the kernel differs from what was written; writing it again');
            this.#d.metrics.tableCheckFailures.inc();
            writer.distrust(meta.tableSlot);
            distrusted = true;
          }
          this.#programmed.set(vip.name, read);
        } else {
          this.#programmed.set(vip.name, written);
        }
      }
      if (distrusted) {
        this.#image = writer.readImage();
        this.trigger('table check');
      }
    }
    for (const name of [...this.#programmed.keys()]) if (!wanted.has(name)) this.#programmed.delete(name);
  }

  /** The VIPs whose slots this resync reads and digests: the next few, in turn. */
  #checkedThisResync(vips: readonly DesiredVip[]): Set<string> {
    const n = Math.min(vips.length, this.#d.checkPerResync ?? 8);
    const out = new Set<string>();
    for (let i = 0; i < n; i++) out.add(vips[(this.#checkFrom + i) % vips.length]!.name);
    this.#checkFrom = vips.length === 0 ? 0 : (this.#checkFrom + n) % vips.length;
    return out;
  }

  /** Logs VIPs newly refused or fitting again; true when the refused set changed. */
  #noteRefused(refused: ReadonlyMap<string, string>): boolean {
    const changed = refused.size !== this.#refused.size || [...refused].some(([vip, reason]) => this.#refused.get(vip) !== reason);
    for (const [vip, reason] of refused) {
      if (this.#refused.get(vip) !== reason) this.#d.log.error({ vip, reason }, 'Left VIP out of the datapath: it does not fit');
    }
    for (const vip of this.#refused.keys()) {
      if (!refused.has(vip)) this.#d.log.info({ vip }, 'VIP fits the datapath again');
    }
    this.#refused = new Map(refused);
    return changed;
  }

  async #resolveNeighbors(wanted: Map<string, { onLink: boolean }>): Promise<void> {
    const now = performance.now();
    const refresh = this.#d.neighborRefreshMs ?? 10_000;
    const firstTime: Promise<void>[] = [];
    for (const [address, { onLink }] of wanted) {
      const n = this.#neighbors.get(address);
      if (n !== undefined && (n.inFlight || now - n.at < (n.resolution.ok ? refresh : 1000))) continue;
      const run = this.#resolve(address, onLink);
      // Never seen: wait for it (bounded by the resolver's timeout) so a new
      // backend is programmed with its MAC. Known: refresh in the background.
      if (n === undefined) firstTime.push(run);
    }
    for (const a of this.#neighbors.keys()) if (!wanted.has(a)) this.#neighbors.delete(a);
    await Promise.all(firstTime);
  }

  async #resolve(address: string, onLink: boolean): Promise<void> {
    const previous = this.#neighbors.get(address);
    const entry: Neighbor = previous ?? { resolution: { ok: false, reason: 'resolving' }, at: 0, inFlight: true };
    entry.inFlight = true;
    this.#neighbors.set(address, entry);
    const r = await this.#d.resolver.resolve(address, onLink);
    entry.inFlight = false;
    entry.at = performance.now();
    const before = entry.resolution;
    entry.resolution = r.ok ? { ok: true, mac: r.mac } : { ok: false, reason: r.reason };
    const changed = before.ok !== entry.resolution.ok || (before.ok && entry.resolution.ok && before.mac !== entry.resolution.mac);
    if (changed && previous !== undefined) {
      this.#d.log.info({ backend: address, resolution: entry.resolution }, 'Neighbour of backend changed');
      this.trigger('neighbour');
    }
  }

  #exportStatus(status: VipStatus[]): void {
    this.#exported = true;
    const m = this.#d.metrics;
    m.tableInfo.reset();
    m.backendServing.reset();
    m.vipRefused.reset();
    for (const vip of this.#refused.keys()) m.vipRefused.set({ vip }, 1);
    for (const s of status) {
      m.tableGeneration.set({ vip: s.name }, this.#programmings.get(s.name)?.count ?? 0);
      const held = this.#programmed.get(s.name);
      if (held !== undefined && held !== null) m.tableInfo.set({ vip: s.name, digest: held }, 1);
      for (const b of s.backends) m.backendServing.set({ vip: s.name, backend: b.address }, b.slots > 0 ? 1 : 0);
    }
  }
}

/** The image's VIP entries by "address|port|protocol". */
function vipIndex(image: DatapathImage): Map<string, VipEntryImage> {
  return new Map(image.vips.map((v) => [`${v.key.address}|${v.key.port}|${v.key.protocol}`, v]));
}

/** The entry of the VIP with these keys ("address|port|protocol"), if the image holds one. */
function entryOf(held: ReadonlyMap<string, VipEntryImage>, vipKeys: readonly string[]): VipEntryImage | undefined {
  for (const k of vipKeys) {
    const e = held.get(k);
    if (e !== undefined) return e;
  }
  return undefined;
}

/** The table the maps hold for the VIP with these keys, read from the kernel (owners by address), if any. */
function readCurrentTable(writer: MapWriter, image: DatapathImage, held: ReadonlyMap<string, VipEntryImage>, vipKeys: readonly string[]): Table | undefined {
  const entry = entryOf(held, vipKeys);
  if (entry === undefined || entry.meta.tableSize === 0) return undefined;
  const t = writer.readTable(entry.meta.tableSlot);
  if (t === null) return undefined;
  return tableFromImage(t.slots.length, t.slots, (i) => image.backends.get(i)?.address);
}
