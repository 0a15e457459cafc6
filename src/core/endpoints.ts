// endpoints.ts: what a Service's EndpointSlice endpoint means for a VIP over
// that Service, one rule for the operator (which backends a table holds) and
// the agent (which backends its datapath routes around at once). Ready: it
// serves. Not ready but still serving while terminating: it drains (no new
// flows; established ones stay). Not ready otherwise: it is out. A missing
// condition reads as the API documents it: ready unknown is ready, serving
// unknown is the same as ready. Pure.

export interface EndpointSliceObject {
  readonly namespace: string;
  /** The kubernetes.io/service-name label. */
  readonly serviceName: string;
  readonly endpoints: readonly Endpoint[];
}

export interface Endpoint {
  readonly addresses: readonly string[];
  /** The Node the endpoint runs on, when the slice says. */
  readonly nodeName?: string;
  readonly ready?: boolean;
  readonly serving?: boolean;
  readonly terminating?: boolean;
}

export type EndpointState = 'Serving' | 'Draining' | 'Out';

export function endpointState(ep: Endpoint): EndpointState {
  if (ep.ready !== false) return 'Serving';
  return ep.serving === true && ep.terminating === true ? 'Draining' : 'Out';
}

/**
 * Addresses the Service's slices list only as out: an address some slice
 * lists as serving or draining (an endpoint moving between slices) is not.
 */
export function endpointsOut(slices: readonly EndpointSliceObject[], namespace: string, service: string): Set<string> {
  const out = new Set<string>();
  const kept = new Set<string>();
  for (const slice of slices) {
    if (slice.namespace !== namespace || slice.serviceName !== service) continue;
    for (const ep of slice.endpoints) for (const a of ep.addresses) (endpointState(ep) === 'Out' ? out : kept).add(a);
  }
  for (const a of kept) out.delete(a);
  return out;
}
