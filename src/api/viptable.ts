// viptable.ts: the VipTable kind, the single source of its CRD and of what
// the operator and the agent read back: one shard of a published Maglev
// table, in the shape core/table-shards.ts encodes and assembles. A table is
// content-addressed: its shards are named after its digest and shared by
// every VIP of the namespace that has that table; the first shard lists the
// VIPs (name, table generation, uid) it is published for. The earlier form,
// one set of shards per VIP and generation (`vip`, `generation`), is still
// read, so tables published before an upgrade keep serving.
import { z } from 'zod';
import type { Table } from '../core/maglev.js';
import { encodeTable, tableObjectName, type TableContentSpec } from '../core/table-shards.js';
import { TABLE_SIZES } from '../core/table-sizes.js';
import { API_VERSION, PLURALS } from './coordinates.js';
import { cel, type KindDefinition } from './crd-meta.js';
import { int64, weight } from './fields.js';
import { objectParser, type ApiObject } from './object.js';

const vipName = z.string().min(1).max(253).describe('Earlier form only: name of the LoadBalancerVip (same namespace) this table is for.');
const generation = int64.min(1).describe('Earlier form only: table generation; a newer table of the VIP has a higher one.');

/**
 * Base64 text. A pattern, not OpenAPI's `format: byte`: the API server's CEL
 * fails to convert a large byte-formatted field of the stored object
 * (`illegal base64 data`), which broke the immutability rule on every update.
 * The API server checks it; the readers do not scan a megabyte of text again
 * (a table whose slots do not decode fails its digest).
 */
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** How many VIPs one table may be published for (one namespace's VIPs sharing a pool). */
export const MAX_ASSIGNED = 20_000;

/**
 * One VIP a table is published for: `<vip name>@<generation>:<uid>`. The
 * generation orders a VIP's tables (a newer one is higher); the uid keeps a
 * VIP deleted and created again under the same name from taking the old
 * one's tables.
 */
export function assignedEntry(name: string, generation: number, uid: string): string {
  return `${name}@${generation}:${uid}`;
}

const ASSIGNED = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)@([1-9][0-9]{0,15}):([^@:\s]{1,64})$/;

/** An `assigned` entry read back; null when it is not one. */
export function parseAssignedEntry(entry: string): { name: string; generation: number; uid: string } | null {
  const m = ASSIGNED.exec(entry);
  return m === null ? null : { name: m[1]!, generation: Number(m[3]), uid: m[4]! };
}

export const vipTableSpecSchema = z
  .object({
    vip: vipName.optional(),
    generation: generation.optional(),
    assigned: z
      .array(z.string().max(340).regex(ASSIGNED, 'must be <vip name>@<generation>:<uid>'))
      .max(MAX_ASSIGNED)
      .optional()
      .meta({
        description: 'First shard only: the LoadBalancerVips of this namespace the table is published for, each as <name>@<generation>:<uid>. A VIP programs the whole table of its highest generation. The only field that changes after creation.',
        'x-kubernetes-list-type': 'atomic',
      }),
    size: z
      .literal([0, ...TABLE_SIZES])
      .meta({
        type: 'integer',
        description: 'Number of slots M of the whole table (a prime), or 0: the empty table, published when no backend takes new flows (nodes drop the VIP\'s packets, counted as no-backend).',
      }),
    digest: z
      .string()
      .regex(/^sha256:[0-9a-f]{64}$/)
      .describe('SHA-256 of the whole table (src/core/digest.ts), "sha256:" and 64 lower-case hex digits.'),
    backends: z
      .array(z.object({ key: z.string().min(1).max(253), weight }))
      .min(0)
      .max(65536)
      .meta({
        description: 'The whole table\'s backends in canonical (key) order; a slot owner index i names backends[i]. Empty only in the empty table.',
        // Order is meaningful (slot owners index into it): replaced whole, never merged.
        'x-kubernetes-list-type': 'atomic',
      }),
    shard: z
      .object({
        index: z.number().int().min(0),
        count: z.number().int().min(1),
        start: z.number().int().min(0),
        end: z.number().int().min(0),
      })
      .meta({
        description: 'Which shard this is, and the slot range [start, end) it carries.',
        'x-kubernetes-validations': [
          cel('self.index < self.count', 'shard.index must be less than shard.count'),
          cel('self.start < self.end || (self.start == 0 && self.end == 0 && self.count == 1)', "shard.start must be less than shard.end (only the empty table's single shard is [0, 0))"),
        ],
      }),
    slots: z.object({
      encoding: z.enum(['u8', 'u16']).describe('Width of each slot owner index: u8 (at most 255 backends) or u16.'),
      deflated: z
        .string()
        .max(1_400_000)
        .meta({ pattern: BASE64.source, description: 'Base64 of the raw-deflated little-endian slot owner indices of slots [start, end).' }),
    }),
    alternates: z
      .object({
        deflated: z
          .string()
          .max(1_400_000)
          .meta({ pattern: BASE64.source, description: "Base64 of the raw-deflated little-endian alternate owner indices of slots [start, end), in the slots' encoding; the encoding's all-ones value means no alternate." }),
      })
      .optional()
      .describe("Each slot's alternate owner: where a node sends the slot's flows while its owner is down (the slot's owner in the successor without that owner)."),
    secondHops: z
      .object({
        deflated: z
          .string()
          .max(1_400_000)
          .meta({ pattern: BASE64.source, description: "Base64 of the raw-deflated little-endian second-hop indices of slots [start, end), in the slots' encoding; the encoding's all-ones value means none." }),
      })
      .optional()
      .describe("Each slot's second hop (second chance): its previous owner, to which the owner's host forwards packets of flows it does not know, while the slot's drain period runs."),
  })
  .meta({
    'x-kubernetes-validations': [
      cel('self.shard.end <= self.size', 'shard.end must not exceed the table size'),
      cel('(self.size == 0) == (size(self.backends) == 0)', 'a table has backends unless it is the empty table (size 0)'),
      cel('has(self.vip) == has(self.generation)', 'vip and generation go together (the earlier, per-VIP form)'),
      cel('!has(self.assigned) || (!has(self.vip) && self.shard.index == 0)', 'only the first shard of a shared table lists the VIPs it is published for'),
      // Everything but the list of VIPs is the table: immutable, as its name (the digest) says.
      cel(
        'self.size == oldSelf.size && self.digest == oldSelf.digest && self.shard == oldSelf.shard && self.slots == oldSelf.slots && self.backends == oldSelf.backends && has(self.alternates) == has(oldSelf.alternates) && (!has(self.alternates) || self.alternates == oldSelf.alternates) && has(self.secondHops) == has(oldSelf.secondHops) && (!has(self.secondHops) || self.secondHops == oldSelf.secondHops) && has(self.vip) == has(oldSelf.vip) && (!has(self.vip) || (self.vip == oldSelf.vip && self.generation == oldSelf.generation))',
        'a published table is immutable (only the list of VIPs it is published for changes); publish a new table instead',
      ),
    ],
  });

/** What identifies a shard without decoding its slots: the table (digest, shard), its VIPs, or the earlier form's VIP and generation. */
export const vipTableRefSchema = z.object({
  vip: vipName.optional(),
  generation: generation.optional(),
  digest: z.string(),
  shard: z.object({ index: z.number().int().min(0), count: z.number().int().min(1) }),
  assigned: z.array(z.string()).optional(),
});

export type VipTableSpec = z.output<typeof vipTableSpecSchema>;
export type VipTable = ApiObject<VipTableSpec>;

export const parseVipTable = objectParser(vipTableSpecSchema);

/**
 * The VipTable objects of a shared table in `namespace`, in shard order, the
 * first listing `assigned` (assignedEntry). Written in reverse order, so a
 * table that lists a VIP is whole.
 */
export function sharedTableObjects(namespace: string, table: Table, assigned: readonly string[]): { apiVersion: string; kind: 'VipTable'; metadata: { name: string; namespace: string }; spec: TableContentSpec & { readonly assigned?: readonly string[] } }[] {
  return encodeTable(table).map((shard, index) => ({
    apiVersion: API_VERSION,
    kind: 'VipTable',
    metadata: { name: tableObjectName(shard.digest, index), namespace },
    spec: index === 0 ? { ...shard, assigned: [...assigned] } : { ...shard },
  }));
}
/** A VipTable's metadata, table identity and VIPs only: for grouping shards before decoding any. */
export const parseVipTableRef = objectParser(vipTableRefSchema);

export const vipTableKind: KindDefinition = {
  kind: 'VipTable',
  plural: PLURALS.tables,
  singular: 'viptable',
  shortNames: ['vt'],
  categories: ['xdplb'],
  source: 'src/api/viptable.ts',
  comment: `VipTable: one shard of a Maglev lookup table the operator publishes for
LoadBalancerVips (src/core/table-shards.ts). A table is content-addressed:
its shards are named xdplb-<first 16 hex digits of its digest>-<index> and
shared by every VIP of the namespace that has that very table, so a change
of a backend shared by a thousand VIPs writes one table, not a thousand.
Every shard carries the whole table's size, backend list and digest, plus
the slot owners of its range [start, end); the first shard lists the VIPs
the table is published for (<name>@<generation>:<uid>). An agent programs,
for each VIP, the table of its highest generation whose shards are all
present and whose assembled digest matches. Only that list ever changes
(the API server refuses any other change): a new table is written beside
the old, and the operator deletes a table once no VIP it lists still
programs it (the VIPs' finalizer makes sure it runs). Shards of the earlier
form (<vip>-g<generation>-<index>, spec.vip and spec.generation, owned by
their VIP) are still read, and removed once their VIP has a newer table.`,
  spec: vipTableSpecSchema,
  statusSubresource: false,
  printerColumns: [
    { name: 'Size', type: 'integer', jsonPath: '.spec.size' },
    { name: 'Shard', type: 'integer', description: 'index of this shard', jsonPath: '.spec.shard.index' },
    { name: 'Digest', type: 'string', jsonPath: '.spec.digest', priority: 1 },
    { name: 'VIP', type: 'string', description: 'earlier, per-VIP form only', jsonPath: '.spec.vip', priority: 1 },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
};
