// standalone.ts: the agent's standalone configuration file (YAML or JSON),
// also read by `xdplb simulate`. It declares VIPs and their backends the way
// the LoadBalancerVip and Backend resources do, for running the datapath
// without Kubernetes. Parsed once with zod; every problem is reported at once.

import { isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { HEALTH_CHECK_DEFAULTS as HC } from '../api/defaults.js';
import type { VipSpec } from '../core/desired-state.js';
import { ErrorCodes, XdplbError } from '../core/errors.js';
import { canonicalIp } from '../core/net.js';
import { MAX_WEIGHT } from '../core/backends.js';
import { DEFAULT_TABLE_SIZE, isTableSize, TABLE_SIZES } from '../core/table-sizes.js';

const ipAddress = z.string().refine((s) => isIP(s) !== 0, { message: 'must be an IPv4 or IPv6 address' });

const cidr = (family: 4 | 6, minPrefix: number, maxPrefix: number) =>
  z.string().refine(
    (s) => {
      const [addr, len, ...rest] = s.split('/');
      const n = Number(len);
      return rest.length === 0 && isIP(addr ?? '') === family && Number.isInteger(n) && n >= minPrefix && n <= maxPrefix;
    },
    { message: `must be an IPv${family} prefix ADDRESS/LEN with LEN from ${minPrefix} to ${maxPrefix}` },
  );

/** Outer source prefixes of IPIP packets when none is configured. */
export const DEFAULT_IPIP_SOURCE_V4 = '172.16.0.0/16';
export const DEFAULT_IPIP_SOURCE_V6 = 'fd00:7864:6c62::/96';

export const protocolSchema = z.enum(['TCP', 'UDP']);

export const portSchema = z.object({
  /** 0 means every port of the protocol. */
  port: z.number().int().min(0).max(65535),
  protocol: protocolSchema.default('TCP'),
});

export const healthCheckSchema = z
  .object({
    // Defaults: the LoadBalancerVip's (src/api/defaults.ts), in this file's spelling.
    type: z.enum(['tcp', 'http']).default(HC.type === 'TCP' ? 'tcp' : 'http'),
    /** Port probed on each backend; default: the VIP's first non-zero port. */
    port: z.number().int().min(1).max(65535).optional(),
    /** HTTP path (type http); a 2xx or 3xx answer is healthy. */
    path: z.string().startsWith('/').default(HC.path),
    intervalMs: z.number().int().min(10).max(300_000).default(HC.intervalMilliseconds),
    timeoutMs: z.number().int().min(5).max(60_000).default(HC.timeoutMilliseconds),
    healthyThreshold: z.number().int().min(1).max(100).default(HC.healthyThreshold),
    unhealthyThreshold: z.number().int().min(1).max(100).default(HC.unhealthyThreshold),
  })
  .strict()
  .refine((h) => h.timeoutMs <= h.intervalMs, { message: 'timeoutMs must not exceed intervalMs', path: ['timeoutMs'] });

export const backendSchema = z
  .object({
    address: ipAddress,
    weight: z.number().int().min(0).max(MAX_WEIGHT).default(1),
    /** Static destination MAC (next hop for ipip, the backend for l2dsr): skips neighbour resolution. */
    mac: z
      .string()
      .regex(/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/, { message: 'must be a MAC address like 02:00:00:00:00:01' })
      .transform((m) => m.toLowerCase())
      .optional(),
  })
  .strict();

export const vipSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, { message: 'must be a DNS-style name (lower case, digits, - and .)' }),
    address: ipAddress,
    ports: z.array(portSchema).min(1),
    mode: z.enum(['ipip', 'gue', 'l2dsr']).default('ipip'),
    affinity: z.enum(['fiveTuple', 'sourceIp']).default('fiveTuple'),
    tableSize: z
      .number()
      .int()
      .refine(isTableSize, { message: `must be one of ${TABLE_SIZES.join(', ')}` })
      .default(DEFAULT_TABLE_SIZE),
    flowTable: z.boolean().default(false),
    healthCheck: healthCheckSchema.optional(),
    backends: z.array(backendSchema),
  })
  .strict()
  .superRefine((vip, ctx) => {
    const family = isIP(vip.address);
    vip.backends.forEach((b, i) => {
      if (vip.mode === 'ipip' && isIP(b.address) !== family) {
        ctx.addIssue({ code: 'custom', path: ['backends', i, 'address'], message: 'ipip needs backends of the VIP address family' });
      }
    });
    const seenBackends = new Set<string>();
    vip.backends.forEach((b, i) => {
      if (seenBackends.has(b.address)) ctx.addIssue({ code: 'custom', path: ['backends', i, 'address'], message: `duplicate backend ${b.address}` });
      seenBackends.add(b.address);
    });
    const seenPorts = new Set<string>();
    vip.ports.forEach((p, i) => {
      const key = `${p.port}/${p.protocol}`;
      if (seenPorts.has(key)) ctx.addIssue({ code: 'custom', path: ['ports', i], message: `duplicate port ${key}` });
      seenPorts.add(key);
    });
    if (vip.healthCheck !== undefined && vip.healthCheck.port === undefined && vip.ports.every((p) => p.port === 0)) {
      ctx.addIssue({ code: 'custom', path: ['healthCheck', 'port'], message: 'a VIP on all ports needs an explicit health check port' });
    }
  });

export const standaloneConfigSchema = z
  .object({
    /** Outer IPv4 source addresses of IPIP packets are drawn from this prefix per flow. */
    ipipSourceV4: cidr(4, 8, 30).default(DEFAULT_IPIP_SOURCE_V4),
    /** Outer IPv6 source addresses: the first 96 bits of this prefix, then per-flow bits. */
    ipipSourceV6: cidr(6, 96, 96).default(DEFAULT_IPIP_SOURCE_V6),
    /** L3 MTU toward backends; encapsulated packets above it get ICMP too-big. Default: the interface's. */
    mtu: z.number().int().min(1280).max(65535).optional(),
    vips: z.array(vipSchema).default([]),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    const names = new Set<string>();
    const claims = new Map<string, string>();
    cfg.vips.forEach((vip, i) => {
      if (names.has(vip.name)) ctx.addIssue({ code: 'custom', path: ['vips', i, 'name'], message: `duplicate VIP name ${vip.name}` });
      names.add(vip.name);
      for (const p of vip.ports) {
        const key = `${vip.address} ${p.port}/${p.protocol}`;
        const other = claims.get(key);
        if (other !== undefined && other !== vip.name) {
          ctx.addIssue({ code: 'custom', path: ['vips', i, 'ports'], message: `${key} is already claimed by VIP ${other}` });
        }
        claims.set(key, vip.name);
      }
    });
  });

export type StandaloneConfig = z.infer<typeof standaloneConfigSchema>;
export type VipConfig = z.infer<typeof vipSchema>;
export type HealthCheckConfig = z.infer<typeof healthCheckSchema>;

/** The VIPs of a config as the desired-state computation takes them (canonical addresses). */
export function vipSpecs(config: StandaloneConfig): VipSpec[] {
  return config.vips.map((v) => ({
    name: v.name,
    address: canonicalIp(v.address),
    ports: v.ports.map((p) => ({ port: p.port, protocol: p.protocol })),
    mode: v.mode,
    affinity: v.affinity,
    flowTable: v.flowTable,
    tableSize: v.tableSize,
    backends: v.backends.map((b) => ({ address: canonicalIp(b.address), weight: b.weight })),
  }));
}

/** Static MACs of the config's backends, by canonical address. */
export function staticMacs(config: StandaloneConfig): Map<string, string> {
  const out = new Map<string, string>();
  for (const v of config.vips) for (const b of v.backends) if (b.mac !== undefined) out.set(canonicalIp(b.address), b.mac);
  return out;
}

/** Formats zod issues as one line each: `vips.0.backends.1.weight: must be ...`. */
export function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : '(root)'}: ${i.message}`);
}

/**
 * Parses a standalone config file's text (YAML, which includes JSON). Throws
 * BAD_CONFIG whose message lists every problem, one per line.
 */
export function parseStandaloneConfig(text: string, source = 'config'): StandaloneConfig {
  // An empty file is far more often a write caught half-way than a wish to
  // serve nothing: that takes an explicit `vips: []`.
  if (text.trim() === '') throw new XdplbError(ErrorCodes.BAD_CONFIG, `${source} is empty; write "vips: []" to serve no VIP`);
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true, uniqueKeys: true });
  } catch (e) {
    throw new XdplbError(ErrorCodes.BAD_CONFIG, `${source} is not valid YAML: ${(e as Error).message.split('\n')[0]}`, { cause: e });
  }
  const parsed = standaloneConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = formatIssues(parsed.error);
    throw new XdplbError(ErrorCodes.BAD_CONFIG, `${source} is invalid (${problems.length} problem${problems.length > 1 ? 's' : ''}):\n  ${problems.join('\n  ')}`);
  }
  return Object.freeze(parsed.data);
}
