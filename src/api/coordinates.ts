// coordinates.ts: where xdplb's resources live in the Kubernetes API: the
// group and version, each kind's plural, the finalizer the operator puts on
// LoadBalancerVips, and the label that ties a published VipTable to its VIP.
// The operator, the agent, the lab and the CRD generator all take them here.

export const GROUP = 'xdplb.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}` as const;

/** Held on a LoadBalancerVip until the operator has removed its published tables. */
export const FINALIZER = 'xdplb.io/cleanup';
/** On each VipTable: the name of its LoadBalancerVip. */
export const VIP_LABEL = 'xdplb.io/vip';

export const PLURALS = {
  vips: 'loadbalancervips',
  backends: 'backends',
  tables: 'viptables',
  reports: 'nodereports',
} as const;
