// viptable.ts: the VipTable kind, the single source of its CRD and of what
// the operator and the agent read back: one shard of a VIP's published Maglev
// table, in the shape core/table-shards.ts encodes and assembles.
import { z } from 'zod';
import { TABLE_SIZES } from '../core/table-sizes.js';
import { PLURALS } from './coordinates.js';
import { cel, type KindDefinition } from './crd-meta.js';
import { int64, weight } from './fields.js';
import { objectParser, type ApiObject } from './object.js';

const vipName = z.string().min(1).max(253).describe('Name of the LoadBalancerVip (same namespace) this table is for.');
const generation = int64.min(1).describe('Table generation; a newer table of the VIP has a higher one.');

export const vipTableSpecSchema = z
  .object({
    vip: vipName,
    generation,
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
        .meta({ format: 'byte', description: 'Base64 of the raw-deflated little-endian slot owner indices of slots [start, end).' }),
    }),
    alternates: z
      .object({
        deflated: z
          .string()
          .max(1_400_000)
          .meta({ format: 'byte', description: "Base64 of the raw-deflated little-endian alternate owner indices of slots [start, end), in the slots' encoding; the encoding's all-ones value means no alternate." }),
      })
      .optional()
      .describe("Each slot's alternate owner: where a node sends the slot's flows while its owner is down (the slot's owner in the successor without that owner)."),
  })
  .meta({
    'x-kubernetes-validations': [
      cel('self.shard.end <= self.size', 'shard.end must not exceed the table size'),
      cel('(self.size == 0) == (size(self.backends) == 0)', 'a table has backends unless it is the empty table (size 0)'),
      cel('self == oldSelf', 'a published table generation is immutable; publish a new generation instead'),
    ],
  });

/** What identifies a shard without decoding it: its VIP and generation (cheap to read on every change). */
export const vipTableRefSchema = z.object({ vip: vipName, generation });

export type VipTableSpec = z.output<typeof vipTableSpecSchema>;
export type VipTable = ApiObject<VipTableSpec>;

export const parseVipTable = objectParser(vipTableSpecSchema);
/** A VipTable's metadata, VIP and generation only: for grouping shards before decoding any. */
export const parseVipTableRef = objectParser(vipTableRefSchema);

export const vipTableKind: KindDefinition = {
  kind: 'VipTable',
  plural: PLURALS.tables,
  singular: 'viptable',
  shortNames: ['vt'],
  categories: ['xdplb'],
  source: 'src/api/viptable.ts',
  comment: `VipTable: one shard of the Maglev lookup table the operator publishes for a
LoadBalancerVip (src/core/table-shards.ts). Every shard of a generation
carries the whole table's size, backend list and digest, plus the slot owners
of its range [start, end); an agent programs a generation only when all of
its shards are present and the assembled table has the digest. A generation
is immutable (the API server refuses a change of spec): the operator writes
a new generation beside the old one, named <vip>-g<generation>-<index>, and
removes the old one once the new one is whole. The operator
owns each VipTable through an ownerReference to its LoadBalancerVip, so the
garbage collector deletes the shards with the VIP.`,
  spec: vipTableSpecSchema,
  statusSubresource: false,
  printerColumns: [
    { name: 'VIP', type: 'string', jsonPath: '.spec.vip' },
    { name: 'Generation', type: 'integer', jsonPath: '.spec.generation' },
    { name: 'Size', type: 'integer', jsonPath: '.spec.size' },
    { name: 'Shard', type: 'integer', description: 'index of this shard', jsonPath: '.spec.shard.index' },
    { name: 'Digest', type: 'string', jsonPath: '.spec.digest', priority: 1 },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
};
