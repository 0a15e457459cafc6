// defaults.ts: every default of the xdplb.io API, in one place. The schemas
// (src/api/*) apply them when they parse an object and write them into the
// generated CRDs (so the API server applies the same ones); the standalone
// configuration (src/config/standalone.ts) takes its health-check defaults here.
import { DEFAULT_TABLE_SIZE } from '../core/table-sizes.js';

export { DEFAULT_TABLE_SIZE };

export const DEFAULT_PROTOCOL = 'TCP';
export const DEFAULT_MODE = 'ipip';
export const DEFAULT_AFFINITY = 'FiveTuple';
/** Weight of a Backend, and of each endpoint of a VIP's Service. */
export const DEFAULT_BACKEND_WEIGHT = 100;
export const DEFAULT_FLOW_TABLE = false;
/** A GUE VIP's second hops are kept this long after a change (spec.secondChance.drainSeconds). */
export const DEFAULT_DRAIN_SECONDS = 300;

/** A VIP's health check: the fields a `healthCheck: {}` gets. */
export const HEALTH_CHECK_DEFAULTS = {
  type: 'TCP',
  path: '/',
  intervalMilliseconds: 100,
  timeoutMilliseconds: 80,
  healthyThreshold: 2,
  unhealthyThreshold: 2,
} as const;
