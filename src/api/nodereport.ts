// nodereport.ts: the NodeReport kind, the single source of its CRD and of
// what the operator reads: what the agent on one load-balancer node reports
// (its status, written through the status subresource).
import { z } from 'zod';
import { PLURALS } from './coordinates.js';
import { cel, type KindDefinition } from './crd-meta.js';
import { shortDigest } from '../core/digest.js';
import { dateTime, int64 } from './fields.js';
import { objectParser, parsedOnce, statusParser, type ApiObject, type Parsed, type RawObject } from './object.js';

export const nodeReportSpecSchema = z.object({
  node: z.string().min(1).max(253).describe("Name of the Node this report is about (also the report's name)."),
  role: z
    .enum(['LoadBalancer', 'Decap'])
    .optional()
    .describe('LoadBalancer (default): the XDP load balancer, named after its node. Decap: the decap role on a worker node that takes Services\' traffic for its pods, named decap.<node>.'),
});

// The lists are atomic: the agent rewrites each whole (a merge patch replaces
// lists anyway), and the API server then tracks one managed field per list
// instead of one per entry (a report of a thousand VIPs kept a thousand).
const reportedVip = z.object({
  namespace: z.string().max(63),
  name: z.string().max(253),
  generation: int64.optional().describe('Table generation programmed (present only when the kernel holds the published table).'),
  digest: z.string().optional().describe("Digest of the table read back from the kernel after programming (the empty table's digest when the VIP has none); absent until read."),
  programmed: z.boolean().optional().describe("The kernel holds the VIP's published table (read-back digest equals the published one)."),
  state: z
    .enum(['Programmed', 'Pending', 'Refused'])
    .optional()
    .describe("Programmed: the kernel holds the published table. Pending: not yet, or no table published. Refused: left out because it does not fit the datapath's capacities (message says which)."),
  message: z.string().max(32768).optional().describe('Why not programmed, when it is not.'),
});

const reportedCheck = z.object({
  check: z.string().max(300).describe('What is probed: "tcp:<port>" or "http:<port><path>"; every VIP checking the backend this way shares it.'),
  healthy: z.boolean().describe('The check passes (true) or fails (false) from this node.'),
});

const reportedBackend = z.object({
  address: z.string().max(45),
  checks: z
    .array(reportedCheck)
    .optional()
    .meta({ description: "This node's health checks of the backend, one per distinct check (a VIP's check is its healthCheck type, port and path).", 'x-kubernetes-list-type': 'atomic' }),
  vips: z
    .array(z.string().max(317))
    .optional()
    .meta({ description: 'Written by agents before checks: the VIPs this backend serves, as "namespace/name", which `healthy` applies to. Read when present.', 'x-kubernetes-list-type': 'atomic' }),
  healthy: z.boolean().optional().describe('Written by agents before checks, with vips: all their checks pass (true) or one fails (false).'),
  resolved: z.boolean().optional().describe('The next hop (MAC, or tunnel route) is known.'),
  reason: z.string().max(1024).optional().describe('Why unhealthy or unresolved.'),
});

export const nodeReportStatusSchema = z.object({
  observedTime: dateTime.optional().describe('When the agent last observed its datapath for this report.'),
  interface: z.string().max(15).optional().describe('The network interface the XDP program is attached to.'),
  xdpMode: z
    .enum(['native', 'generic', 'offload', 'unknown'])
    .optional()
    .describe("As read back from the interface. native: in the driver. generic: in the kernel's generic XDP path (slower; the driver has no XDP). offload: in the NIC. unknown: not attached yet, or a mode xdplb does not know."),
  reportIntervalSeconds: z
    .number()
    .optional()
    .describe('The agent rewrites this report at least this often (a heartbeat); the operator stops counting a node whose report has not changed for three intervals.'),
  programmedSummary: z.string().max(64).optional().describe('VIPs programmed / VIPs assigned to this node, like "3/3" (for kubectl get).'),
  decap: z
    .object({
      vips: z.array(z.string().max(45)).max(4096).optional().meta({ description: 'The VIP addresses the decap program takes.', 'x-kubernetes-list-type': 'atomic' }),
      packets: z.record(z.string(), int64).optional().describe('Packets by outcome, as the decap program counts them (decapsulated, passed, dropped and why).'),
    })
    .optional()
    .describe('The decap role (role Decap): what it decapsulates for, and its counters.'),
  programmed: z
    .array(z.string().max(340))
    .optional()
    .meta({
      description:
        'The VIPs whose published table the kernel holds (read-back digest equals the published one), one entry each: "namespace/name@generation:digest", the digest cut to its first 16 hex digits. One string per VIP keeps a report of a thousand VIPs small.',
      'x-kubernetes-list-type': 'atomic',
    }),
  vips: z
    .array(reportedVip)
    .optional()
    .meta({
      description:
        'The VIPs assigned to this node whose published table it does not hold (programming, refused, a table that does not verify), and why; a VIP with no table published yet is not listed. Agents before `programmed` listed every VIP here, programmed or not; both are read.',
      'x-kubernetes-list-type': 'atomic',
    }),
  backends: z
    .array(reportedBackend)
    .optional()
    .meta({ description: "The backends of the node's VIPs, one entry per address.", 'x-kubernetes-list-type': 'atomic' }),
});

export type NodeReportSpec = z.output<typeof nodeReportSpecSchema>;
export type NodeReportStatus = z.output<typeof nodeReportStatusSchema>;
export interface NodeReport extends ApiObject<NodeReportSpec> {
  readonly status: NodeReportStatus;
}

/** One entry of `programmed`: "namespace/name@generation:digest" (the digest short, core/digest.ts). */
export function programmedEntry(key: string, generation: number, digest: string): string {
  return `${key}@${generation}:${shortDigest(digest)}`;
}

/** An entry of `programmed` read back: the VIP key, generation and (short) digest; null when malformed. */
export function parseProgrammedEntry(entry: string): { key: string; generation: number; digest: string } | null {
  const at = entry.lastIndexOf('@');
  const colon = entry.indexOf(':', at);
  if (at <= 0 || colon < 0) return null;
  const generation = Number(entry.slice(at + 1, colon));
  const digest = entry.slice(colon + 1);
  if (!Number.isSafeInteger(generation) || generation < 0 || digest.length === 0) return null;
  return { key: entry.slice(0, at), generation, digest };
}

const parseReportObject = objectParser(nodeReportSpecSchema);
const parseReportStatus = statusParser(nodeReportStatusSchema);

/**
 * A NodeReport's metadata, spec and status (empty until its agent first
 * writes it). The same object parses to the same value, so what is derived
 * from a report (to-core.ts's index) is derived once per report version.
 */
export const parseNodeReport = parsedOnce((o: RawObject): Parsed<NodeReport> => {
  const object = parseReportObject(o);
  if (!object.ok) return object;
  const status = parseReportStatus(o);
  if (!status.ok) return status;
  return { ok: true, value: { ...object.value, status: status.value } };
});

export const nodeReportKind: KindDefinition = {
  kind: 'NodeReport',
  plural: PLURALS.reports,
  singular: 'nodereport',
  shortNames: ['nr'],
  categories: ['xdplb'],
  source: 'src/api/nodereport.ts',
  comment: `NodeReport: what the agent on one load-balancer node reports: the interface
and XDP mode it attached in, which VIP tables it has programmed, and what it
knows of each backend. One per node, in the operator's namespace, named after
the node. The agent writes status (the status subresource); the operator
reads it to fill each LoadBalancerVip's nodes summary.`,
  spec: nodeReportSpecSchema,
  status: nodeReportStatusSchema,
  statusSubresource: true,
  printerColumns: [
    { name: 'Node', type: 'string', jsonPath: '.spec.node' },
    { name: 'Mode', type: 'string', description: 'XDP attach mode', jsonPath: '.status.xdpMode' },
    { name: 'VIPs', type: 'string', description: 'programmed/total', jsonPath: '.status.programmedSummary' },
    { name: 'Interface', type: 'string', jsonPath: '.status.interface', priority: 1 },
    { name: 'Observed', type: 'date', jsonPath: '.status.observedTime', priority: 1 },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  validations: [
    cel(
      "has(self.spec.role) && self.spec.role == 'Decap' ? self.metadata.name == 'decap.' + self.spec.node : self.metadata.name == self.spec.node",
      'a NodeReport is named after its node (decap.<node> for the Decap role); metadata.name must equal spec.node',
      '.spec.node',
    ),
  ],
};
