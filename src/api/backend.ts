// backend.ts: the Backend kind, the single source of its CRD and of what the
// operator reads: one server behind LoadBalancerVips, selected by its labels.
import { z } from 'zod';
import { PLURALS } from './coordinates.js';
import type { KindDefinition } from './crd-meta.js';
import { DEFAULT_BACKEND_WEIGHT } from './defaults.js';
import { ipAddress, portNumber, weight } from './fields.js';
import { objectParser, type ApiObject } from './object.js';

export const backendSpecSchema = z.object({
  address: ipAddress("The backend's address, IPv4 or IPv6 (the VIP's family for ipip).", '10.0.0.11 or 2001:db8::11'),
  weight: weight.default(DEFAULT_BACKEND_WEIGHT).describe('Relative share of new flows; 0 drains the backend.'),
  healthCheck: z
    .object({
      port: portNumber.optional(),
      path: z.string().regex(/^\//).optional(),
    })
    .optional()
    .describe("Overrides of the VIP's health check for this backend."),
});

/** Nothing writes it yet; kept open so a later version can. */
export const backendStatusSchema = z.record(z.string(), z.unknown()).meta({ 'x-kubernetes-preserve-unknown-fields': true });

export type BackendSpec = z.output<typeof backendSpecSchema>;
export type Backend = ApiObject<BackendSpec>;

export const parseBackend = objectParser(backendSpecSchema);

export const backendKind: KindDefinition = {
  kind: 'Backend',
  plural: PLURALS.backends,
  singular: 'backend',
  shortNames: ['be'],
  categories: ['xdplb'],
  source: 'src/api/backend.ts',
  comment: `Backend: one server behind LoadBalancerVips, selected by its labels. The
API server validates it (schema + CEL): a bad address or weight is refused.`,
  spec: backendSpecSchema,
  status: backendStatusSchema,
  statusSubresource: true,
  printerColumns: [
    { name: 'Address', type: 'string', jsonPath: '.spec.address' },
    { name: 'Weight', type: 'integer', jsonPath: '.spec.weight' },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
};
