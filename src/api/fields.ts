// fields.ts: field schemas several kinds share: addresses, ports, weights,
// 64-bit counters, timestamps, and status conditions as apimachinery writes them.
import { z } from 'zod';
import { MAX_WEIGHT } from '../core/backends.js';
import { cel } from './crd-meta.js';

/** An IPv4 or IPv6 address in text, checked by the API server (CEL isIP). */
export const ipAddress = (description: string, example: string) =>
  z
    .string()
    .max(45)
    .meta({ description, 'x-kubernetes-validations': [cel('isIP(self)', `address must be an IPv4 or IPv6 address, like ${example}`)] });

export const portNumber = z.number().int().min(1).max(65535);

export const weight = z.number().int().min(0).max(MAX_WEIGHT);

/** An integer the API server stores as int64 (generations). */
export const int64 = z.number().int().meta({ format: 'int64' });

/** RFC 3339 text; the API server checks the format, readers take the text. */
export const dateTime = z.string().meta({ format: 'date-time' });

/** A string-to-string map (labels, selectors). */
export const stringMap = z.record(z.string(), z.string());

/** A status condition, the shape of apimachinery's metav1.Condition. */
export const condition = z.object({
  type: z.string().max(316),
  status: z.enum(['True', 'False', 'Unknown']),
  observedGeneration: int64.min(0).optional(),
  lastTransitionTime: dateTime,
  reason: z
    .string()
    .max(1024)
    .regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/),
  message: z.string().max(32768),
});

/** A Kubernetes label selector (matchLabels and matchExpressions), described for where it is used. */
export const labelSelector = (description: string) =>
  z
    .object({
      matchLabels: stringMap.optional(),
      matchExpressions: z
        .array(
          z
            .object({
              key: z.string().max(317),
              operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
              values: z.array(z.string().max(63)).max(256).optional(),
            })
            .meta({
              'x-kubernetes-validations': [
                cel(
                  "self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0 : !has(self.values) || size(self.values) == 0",
                  'a matchExpression with In or NotIn needs values; one with Exists or DoesNotExist takes none',
                ),
              ],
            }),
        )
        .max(64)
        .optional(),
    })
    .meta({ description, 'x-kubernetes-map-type': 'atomic' });
