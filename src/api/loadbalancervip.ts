// loadbalancervip.ts: the LoadBalancerVip kind, the single source of its CRD
// and of what the operator and the agent read: a virtual IP that xdplb
// load-balances at layer 4 with direct server return. The spec as a person
// writes it (defaults from defaults.ts), the status as the operator writes it.
import { z } from 'zod';
import { TABLE_SIZES } from '../core/table-sizes.js';
import { PLURALS } from './coordinates.js';
import { cel, requiredByApi, type KindDefinition } from './crd-meta.js';
import { DEFAULT_AFFINITY, DEFAULT_BACKEND_WEIGHT, DEFAULT_DRAIN_SECONDS, DEFAULT_FLOW_TABLE, DEFAULT_MODE, DEFAULT_PROTOCOL, DEFAULT_TABLE_SIZE, HEALTH_CHECK_DEFAULTS as HC } from './defaults.js';
import { condition, int64, ipAddress, labelSelector, portNumber, stringMap, weight } from './fields.js';
import { objectParser, statusParser, type ApiObject } from './object.js';

const port = z
  .object({
    // Defaulted before it is validated, so always present in a stored object.
    protocol: requiredByApi(z.enum(['TCP', 'UDP']).default(DEFAULT_PROTOCOL)),
    port: portNumber.optional().describe('The port, 1 to 65535.'),
    allPorts: z.boolean().optional().describe('Serve every port of this protocol (instead of port).'),
  })
  .meta({ 'x-kubernetes-validations': [cel('has(self.port) != (has(self.allPorts) && self.allPorts)', 'each port entry needs exactly one of port (1 to 65535) or allPorts true')] });

const backendSources = z
  .object({
    selector: labelSelector('A label selector over Backend objects in this namespace.').optional(),
    service: z
      .object({
        name: z.string().max(63),
        weight: weight.default(DEFAULT_BACKEND_WEIGHT).describe('Weight of each endpoint.'),
        delivery: z
          .enum(['Pods', 'Nodes'])
          .optional()
          .describe("Pods (default): the endpoints' addresses are the backends (hostNetwork pods, or pods on the load balancer's L2 segment running the decap program). Nodes: the Nodes running xdplb's decap role are the backends, and each node's service proxy (kube-proxy) delivers to the pods."),
        externalTrafficPolicy: z
          .enum(['Local', 'Cluster'])
          .optional()
          .describe('With delivery Nodes. Local (default): the nodes with ready endpoints of the Service, weighted by how many. Cluster: every node of the decap role, while the Service has a ready endpoint.'),
      })
      .optional()
      .describe('A Service in this namespace whose EndpointSlices supply backends.'),
  })
  .meta({
    description: 'Where the backends come from; Backends selected by label and/or the ready endpoints of a Service.',
    'x-kubernetes-validations': [cel('has(self.selector) || has(self.service)', 'backends needs a selector, a service, or both')],
  });

export const vipHealthCheckSchema = z
  .object({
    type: z.enum(['TCP', 'HTTP']).default(HC.type),
    port: portNumber.optional().describe("Default the VIP's first port."),
    path: z.string().regex(/^\//).default(HC.path),
    intervalMilliseconds: z.number().int().min(10).max(300_000).default(HC.intervalMilliseconds),
    timeoutMilliseconds: z.number().int().min(5).max(60_000).default(HC.timeoutMilliseconds),
    healthyThreshold: z.number().int().min(1).max(100).default(HC.healthyThreshold),
    unhealthyThreshold: z.number().int().min(1).max(100).default(HC.unhealthyThreshold),
  })
  .meta({
    // Both fields have defaults, so both are always set here.
    'x-kubernetes-validations': [
      cel('self.timeoutMilliseconds <= self.intervalMilliseconds', `healthCheck.timeoutMilliseconds must not exceed intervalMilliseconds (defaults ${HC.timeoutMilliseconds} and ${HC.intervalMilliseconds})`),
    ],
  });

export const vipSpecSchema = z
  .object({
    address: ipAddress('The virtual IP, IPv4 or IPv6.', '192.0.2.10 or 2001:db8::10'),
    ports: z
      .array(port)
      .min(1)
      .max(64)
      .meta({
        description: 'Ports served. A port entry with allPorts serves every port of its protocol.',
        'x-kubernetes-validations': [
          cel('self.all(p, self.exists_one(q, q.protocol == p.protocol && (has(q.port) ? q.port : 0) == (has(p.port) ? p.port : 0)))', 'ports must not repeat a port and protocol'),
        ],
      }),
    mode: z
      .enum(['ipip', 'gue', 'l2dsr'])
      .default(DEFAULT_MODE)
      .describe('ipip: IPv4-in-IPv4 / IPv6-in-IPv6 to the backend (any network). gue: IP in UDP (GUE, port 6080) carrying each slot\'s previous owner, so backends running xdplb\'s decap pass on what they do not know and a planned change breaks no connection (docs/second-chance.md). l2dsr: rewrite the MAC (backends on the same L2 segment, VIP on lo).'),
    hashing: z
      .object({
        tableSize: z
          .literal(TABLE_SIZES)
          .default(DEFAULT_TABLE_SIZE)
          .meta({ type: 'integer', description: 'Maglev lookup-table size, a prime; at least 100 x the number of backends is recommended.' }),
        affinity: z
          .enum(['FiveTuple', 'SourceIP'])
          .default(DEFAULT_AFFINITY)
          .describe('FiveTuple: each connection hashed on addresses, ports and protocol. SourceIP: every connection of a client to the VIP goes to one backend.'),
      })
      .prefault({}),
    // The API server requires it; readers take a missing one as no source (no backends), as they always have.
    backends: requiredByApi(backendSources.optional()),
    nodeSelector: stringMap.optional().describe('Labels of the load-balancer nodes that serve this VIP (default every node running the agent).'),
    healthCheck: vipHealthCheckSchema.optional(),
    flowTable: z
      .object({ enabled: z.boolean().default(DEFAULT_FLOW_TABLE) })
      .optional()
      .describe("Remember each flow's backend on the node so established flows survive table changes."),
    secondChance: z
      .object({
        drainSeconds: z
          .number()
          .int()
          .min(0)
          .max(86_400)
          .default(DEFAULT_DRAIN_SECONDS)
          .describe('How long a slot whose owner changed keeps its previous owner as second hop (default 300): the established connections of the previous owner have this long to end.'),
      })
      .optional()
      .describe('Second chance (mode gue): each table slot carries its previous owner, to which the new owner\'s host passes the packets of connections it does not know.'),
  })
  .meta({
    'x-kubernetes-validations': [
      cel('!has(self.healthCheck) || has(self.healthCheck.port) || self.ports.exists(p, has(p.port))', 'a VIP serving all ports needs healthCheck.port'),
      cel("!has(self.secondChance) || self.mode == 'gue'", 'secondChance needs mode gue: ipip has no room for the second hop, and l2dsr keeps its flows with flowTable'),
    ],
  });

/** The status the operator writes (core/vip-decision.ts's VipStatusDoc), and reads back. */
export const vipStatusSchema = z.object({
  observedGeneration: int64.optional(),
  portsSummary: z.string().optional(),
  backendsSummary: z.string().optional(),
  nodesSummary: z.string().optional(),
  backends: z.object({ ready: z.number().int().optional(), total: z.number().int().optional() }).optional(),
  table: z.object({ size: z.number().int().optional(), generation: int64.optional(), digest: z.string().optional() }).optional(),
  nodes: z.object({ programmed: z.number().int().optional(), expected: z.number().int().optional() }).optional(),
  conditions: z
    .array(condition)
    .optional()
    .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] }),
});

export type VipSpec = z.output<typeof vipSpecSchema>;
export type VipHealthCheck = z.output<typeof vipHealthCheckSchema>;
export type VipStatus = z.output<typeof vipStatusSchema>;
export type LoadBalancerVip = ApiObject<VipSpec>;

/** A LoadBalancerVip's metadata and spec, defaults applied (its status is read apart: only the operator needs it). */
export const parseVip = objectParser(vipSpecSchema);
export const parseVipStatus = statusParser(vipStatusSchema);

export const loadBalancerVipKind: KindDefinition = {
  kind: 'LoadBalancerVip',
  plural: PLURALS.vips,
  singular: 'loadbalancervip',
  shortNames: ['vip'],
  categories: ['xdplb'],
  source: 'src/api/loadbalancervip.ts',
  comment: `LoadBalancerVip: a virtual IP that xdplb load-balances at layer 4 with
direct server return. The API server validates it (schema + CEL), so a bad
VIP is refused at \`kubectl apply\` with a message a person understands.`,
  spec: vipSpecSchema,
  status: vipStatusSchema,
  statusSubresource: true,
  printerColumns: [
    { name: 'Address', type: 'string', jsonPath: '.spec.address' },
    { name: 'Ports', type: 'string', jsonPath: '.status.portsSummary' },
    { name: 'Mode', type: 'string', jsonPath: '.spec.mode', priority: 1 },
    { name: 'Backends', type: 'string', description: 'ready/total', jsonPath: '.status.backendsSummary' },
    { name: 'Nodes', type: 'string', description: 'programmed/expected', jsonPath: '.status.nodesSummary' },
    { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
    { name: 'Digest', type: 'string', jsonPath: '.status.table.digest', priority: 1 },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
};
