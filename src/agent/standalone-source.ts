// standalone-source.ts: the desired datapath in standalone mode, from the
// config file: each VIP's table is computed here (minimal-disruption successor
// of the programmed one) over the backends that are resolved and healthy.
// Backends are probed once per distinct check, shared by the VIPs (probes.ts).
import type { StandaloneConfig } from '../config/standalone.js';
import { staticMacs, vipSpecs } from '../config/standalone.js';
import { desiredState, type DesiredMemo, type VipSpec } from '../core/desired-state.js';
import type { DesiredSource } from './engine.js';
import type { HealthTarget } from './health-checker.js';
import { SharedProbes } from './probes.js';

export class StandaloneSource implements DesiredSource {
  readonly #config: StandaloneConfig;
  readonly #specs: VipSpec[];
  readonly #statics: Map<string, string>;
  readonly #healthy: (probe: string) => boolean;
  readonly #probes: SharedProbes;
  /** VIP name -> its keys ("address|port|protocol"). */
  readonly #keys: Map<string, string[]>;

  /** `healthy`: what a probe (by its key, probes.ts) finds now. */
  constructor(config: StandaloneConfig, healthy: (probe: string) => boolean) {
    this.#config = config;
    this.#specs = vipSpecs(config);
    this.#probes = sharedProbes(config, this.#specs);
    this.#statics = staticMacs(config);
    this.#healthy = healthy;
    this.#keys = new Map(this.#specs.map((v) => [v.name, v.ports.map((p) => `${v.address}|${p.port}|${p.protocol}`)]));
  }

  addresses(): Map<string, { onLink: boolean }> {
    const out = new Map<string, { onLink: boolean }>();
    for (const v of this.#specs) {
      for (const b of v.backends) {
        // Drained (weight 0) backends too: the flow table's flows still reach them.
        if (this.#statics.has(b.address)) continue;
        out.set(b.address, { onLink: (out.get(b.address)?.onLink ?? false) || v.mode === 'l2dsr' });
      }
    }
    return out;
  }

  compute(observed: Parameters<DesiredSource['compute']>[0], memo: DesiredMemo): ReturnType<DesiredSource['compute']> {
    return desiredState(
      this.#specs,
      {
      healthy: (vip, address) => {
        const probe = this.#probes.probeOf(vip, address);
        return probe === undefined || this.#healthy(probe);
      },
      mac: (address) => {
        const mac = this.#statics.get(address);
        return mac !== undefined ? { ok: true, mac } : observed.mac(address);
      },
        currentTable: observed.currentTable,
      },
      memo,
    );
  }

  keysOf(vip: string): readonly string[] {
    return this.#keys.get(vip) ?? [];
  }

  /** Probes to run: one per distinct check of every weighted backend of every VIP with a health check. */
  healthTargets(): HealthTarget[] {
    return this.#probes.targets();
  }
}

function sharedProbes(config: StandaloneConfig, specs: readonly VipSpec[]): SharedProbes {
  const probes = new SharedProbes();
  config.vips.forEach((v, i) => {
    const hc = v.healthCheck;
    if (hc === undefined) return;
    const port = hc.port ?? v.ports.find((p) => p.port !== 0)!.port;
    for (const b of specs[i]!.backends) {
      if (b.weight === 0) continue;
      probes.add(v.name, { type: hc.type, address: b.address, port, path: hc.path, timeoutMs: hc.timeoutMs, intervalMs: hc.intervalMs, healthyThreshold: hc.healthyThreshold, unhealthyThreshold: hc.unhealthyThreshold });
    }
  });
  return probes;
}
