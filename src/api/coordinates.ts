// coordinates.ts: where xdplb's resources live in the Kubernetes API: the
// group and version, each kind's plural, and the finalizer the operator puts
// on LoadBalancerVips.
// The operator, the agent, the lab and the CRD generator all take them here.

export const GROUP = 'xdplb.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}` as const;

/** Held on a LoadBalancerVip until the operator has removed its published tables. */
export const FINALIZER = 'xdplb.io/cleanup';

export const PLURALS = {
  vips: 'loadbalancervips',
  backends: 'backends',
  tables: 'viptables',
  reports: 'nodereports',
  pools: 'vippools',
} as const;
