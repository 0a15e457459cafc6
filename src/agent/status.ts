// status.ts: the agent's state as /status serves it (JSON), for operators
// debugging a node and for tests, which wait on it instead of on log text.
// Everything in it is observed: the datapath as the agent found it at start
// (fresh, adopted from pins, or upgraded), the XDP mode read back from the
// interface, the backends routed around (down in this node's datapath) and
// when each write completed, each backend's last spell down, per VIP the
// tables programmed since start, when the last was written, the digest read
// back from the kernel, the backends holding slots and their probed health,
// VIPs left out for lack of room, and rejected config files.
import type { Engine } from './engine.js';

export interface AgentStatus {
  readonly datapath: 'fresh' | 'adopt' | 'upgrade';
  readonly xdpMode: string;
  readonly rejectedConfigs: number;
  readonly lastRejection: readonly string[] | null;
  /** Backend addresses this node's datapath routes around now (their slots take their alternates). */
  readonly down: readonly string[];
  /** For each of them: when the write that routes around it completed (ms since the epoch). */
  readonly downSince: Readonly<Record<string, number>>;
  /** Per backend the maps hold: its last spell down here (ms since the epoch; until null: still down). */
  readonly lastDown: Readonly<Record<string, { readonly since: number; readonly until: number | null }>>;
  readonly vips: readonly {
    readonly name: string;
    /** Tables programmed for the VIP since the agent started. */
    readonly programmings: number;
    /** When the last one was written (ms since the epoch), or null. */
    readonly programmedAt: number | null;
    /** Digest of the table read back from the kernel; null: none. */
    readonly digest: string | null;
    readonly refused: string | null;
    /** Backends holding slots. */
    readonly serving: number;
    readonly backends: readonly { readonly address: string; readonly weight: number; readonly healthy: boolean | null; readonly slots: number }[];
  }[];
}

export interface StatusSources {
  readonly datapath: AgentStatus['datapath'];
  xdpMode: string;
  rejectedConfigs: number;
  lastRejection: string[] | null;
}

export function agentStatus(engine: Engine, s: StatusSources): AgentStatus {
  return {
    datapath: s.datapath,
    xdpMode: s.xdpMode,
    rejectedConfigs: s.rejectedConfigs,
    lastRejection: s.lastRejection,
    down: [...engine.image.down].map((i) => engine.image.backends.get(i)?.address ?? `index ${i}`).sort(),
    downSince: Object.fromEntries(engine.downSince),
    lastDown: Object.fromEntries([...engine.lastDown].map(([a, d]) => [a, { ...d }])),
    vips: engine.status.map((v) => ({
      name: v.name,
      programmings: engine.programmings.get(v.name)?.count ?? 0,
      programmedAt: engine.programmings.get(v.name)?.at ?? null,
      digest: engine.programmed.get(v.name) ?? null,
      refused: engine.refused.get(v.name) ?? null,
      serving: v.backends.filter((b) => b.slots > 0).length,
      backends: v.backends.map((b) => ({ address: b.address, weight: b.weight, healthy: b.healthy, slots: b.slots })),
    })),
  };
}
