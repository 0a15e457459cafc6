// vippool.ts: the VipPool kind, the single source of its CRD and of what the
// operator reads: a cluster-wide set of addresses that Services of type
// LoadBalancer (class xdplb.io/xdp) get their external address from, and
// the status the operator writes back (addresses in use, and why a pool is
// refused).
import { z } from 'zod';
import { PLURALS } from './coordinates.js';
import { cel, type KindDefinition } from './crd-meta.js';
import { condition, int64, labelSelector } from './fields.js';
import { objectParser, type ApiObject } from './object.js';

/** An address, a CIDR, or a range of two addresses of one family (checked further by core/address-pools.ts parseRange). */
const ADDRESS_ENTRY = "isIP(self) || isCIDR(self) || (self.split('-').size() == 2 && isIP(self.split('-')[0].trim()) && isIP(self.split('-')[1].trim()))";

export const vipPoolSpecSchema = z.object({
  addresses: z
    .array(
      z
        .string()
        .max(100)
        .meta({ 'x-kubernetes-validations': [cel(ADDRESS_ENTRY, 'each entry is an IP address, a CIDR (10.0.0.0/28, 2001:db8::/120) or a range of two addresses (10.0.0.10-10.0.0.20)')] }),
    )
    .min(1)
    .max(64)
    .describe('The addresses the pool gives: IPv4 and IPv6 CIDRs, ranges (first-last) or single addresses.'),
  serviceSelector: labelSelector('Only Services with these labels get addresses from this pool (absent: every Service).').optional(),
  namespaceSelector: labelSelector("Only Services in namespaces with these labels get addresses from this pool (absent: every namespace).").optional(),
  autoAssign: z.boolean().default(true).describe('False: only Services that name this pool (annotation xdplb.io/address-pool) or request one of its addresses get them.'),
});

const familyUsage = z.object({
  total: int64.min(0).describe('Addresses of this family in the pool (at most 2^53-1 shown).'),
  used: int64.min(0),
  free: int64.min(0),
});

export const vipPoolStatusSchema = z.object({
  observedGeneration: int64.optional(),
  ipv4: familyUsage.optional(),
  ipv6: familyUsage.optional(),
  /** "used/total" per family, for kubectl get. */
  usage: z.string().optional(),
  conditions: z
    .array(condition)
    .optional()
    .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] }),
});

export type VipPoolSpec = z.output<typeof vipPoolSpecSchema>;
export type VipPoolStatus = z.output<typeof vipPoolStatusSchema>;
export type VipPool = ApiObject<VipPoolSpec>;

export const parseVipPool = objectParser(vipPoolSpecSchema, 'Cluster');

export const vipPoolKind: KindDefinition = {
  kind: 'VipPool',
  scope: 'Cluster',
  plural: PLURALS.pools,
  singular: 'vippool',
  shortNames: ['vpool'],
  categories: ['xdplb'],
  source: 'src/api/vippool.ts',
  comment: `VipPool: addresses that Services of type LoadBalancer with the class
xdplb.io/xdp get their external address from. Cluster-scoped. The API server
refuses an entry that is not an address, CIDR or range; the operator reports
in status what it could not use (host bits set, a pool overlapping an older
one) and how many addresses are in use.`,
  spec: vipPoolSpecSchema,
  status: vipPoolStatusSchema,
  statusSubresource: true,
  printerColumns: [
    { name: 'Addresses', type: 'string', jsonPath: '.spec.addresses' },
    { name: 'Used', type: 'string', description: 'used/total per family', jsonPath: '.status.usage' },
    { name: 'Auto', type: 'boolean', jsonPath: '.spec.autoAssign', priority: 1 },
    { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
};
