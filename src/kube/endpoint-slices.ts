// endpoint-slices.ts: the EndpointSlices xdplb follows, for the operator and
// the agent alike. Only the slices of Services some VIP references are
// watched (label kubernetes.io/service-name), so the set of names is derived
// from the VIPs and the informer is replaced when it changes. A slice is read
// into the core's EndpointSliceObject once, here.
import type { EndpointSliceObject } from '../core/endpoints.js';
import type { Cached, Obj } from './k8s.js';

/** A cache that holds nothing (no VIP references a Service). */
export const emptySlices = {
  list: () => [],
  get: () => undefined,
  on: () => undefined,
  off: () => undefined,
  start: async () => undefined,
  stop: async () => undefined,
} as unknown as Cached<Obj>;

const SERVICE_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** The Services the VIPs reference by name (backends.service.name), sorted; a name that is not one is left out. */
export function referencedServices(vips: readonly Obj[]): string[] {
  const names = vips.map((v) => (v.spec?.backends as { service?: { name?: unknown } } | undefined)?.service?.name);
  return [...new Set(names.filter((n): n is string => typeof n === 'string' && SERVICE_NAME.test(n)))].sort();
}

type Loose = Record<string, unknown>;

export function parseEndpointSlice(o: Obj): EndpointSliceObject {
  const endpoints = ((o as unknown as { endpoints?: Loose[] }).endpoints ?? []).map((e) => {
    const c = (e.conditions ?? {}) as Loose;
    const flag = (v: unknown): boolean | undefined => (typeof v === 'boolean' ? v : undefined);
    return {
      addresses: Array.isArray(e.addresses) ? e.addresses.filter((a): a is string => typeof a === 'string') : [],
      ...(typeof e.nodeName === 'string' ? { nodeName: e.nodeName } : {}),
      ready: flag(c.ready),
      serving: flag(c.serving),
      terminating: flag(c.terminating),
    };
  });
  return { namespace: o.metadata?.namespace ?? '', serviceName: o.metadata?.labels?.['kubernetes.io/service-name'] ?? '', endpoints };
}
