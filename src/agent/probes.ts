// probes.ts: one probe per (check type, backend address, port, HTTP path) per
// node, shared by every VIP that checks that backend the same way: 1000 VIPs
// over the same 10 backends probe 10 targets, not 10000. Where VIPs sharing a
// probe ask for different timing, the probe takes the strictest: the shortest
// interval and timeout and the lowest thresholds. Each VIP's view of a
// backend's health is the health of its probe.
import { checkId } from '../core/health.js';
import type { HealthTarget } from './health-checker.js';

export type ProbeSpec = Omit<HealthTarget, 'key'>;

/** The identity of a probe: what is probed, not who asked. */
export function probeKey(p: Pick<ProbeSpec, 'type' | 'address' | 'port' | 'path'>): string {
  return `${p.type}|${p.address}|${p.port}${p.type === 'http' ? `|${p.path}` : ''}`;
}

/** The probes a set of (VIP, backend) checks needs, and which probe answers for each pair. */
export class SharedProbes {
  readonly #targets = new Map<string, HealthTarget>();
  readonly #byPair = new Map<string, string>();

  /** The VIP `vip` checks `spec.address` this way. */
  add(vip: string, spec: ProbeSpec): void {
    const key = probeKey(spec);
    this.#byPair.set(pairKey(vip, spec.address), key);
    const had = this.#targets.get(key);
    this.#targets.set(
      key,
      had === undefined
        ? { key, ...spec }
        : {
            ...had,
            intervalMs: Math.min(had.intervalMs, spec.intervalMs),
            timeoutMs: Math.min(had.timeoutMs, spec.timeoutMs),
            healthyThreshold: Math.min(had.healthyThreshold, spec.healthyThreshold),
            unhealthyThreshold: Math.min(had.unhealthyThreshold, spec.unhealthyThreshold),
          },
    );
  }

  targets(): HealthTarget[] {
    return [...this.#targets.values()];
  }

  /** The probe that answers for `vip`'s backend at `address`, if it has one. */
  probeOf(vip: string, address: string): string | undefined {
    return this.#byPair.get(pairKey(vip, address));
  }
}

const pairKey = (vip: string, address: string): string => `${vip}|${address}`;

/** The check a probe runs, as metrics label it and reports name it (core/health.ts checkId). */
export function checkOfProbe(key: string): string {
  const [type, , port, path] = key.split('|');
  return checkId(type === 'http' ? 'http' : 'tcp', Number(port), path);
}
