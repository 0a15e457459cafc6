// crd-meta.ts: what a CRD says that a zod schema cannot say by itself. Field
// by field it rides on the schemas as zod metadata (`.meta({...})`, typed
// below): CEL rules, list and map types, formats, and fields the API server
// requires although readers tolerate their absence. Per kind, a KindDefinition
// holds the names, printer columns and whole-object rules. The generator
// (crdgen.ts) reads both; parsing ignores them.
import type { z } from 'zod';

/** One x-kubernetes-validations entry: a CEL rule and the message a person reads when it fails. */
export interface CelRule {
  readonly rule: string;
  readonly message: string;
  readonly fieldPath?: string;
}

declare module 'zod' {
  interface GlobalMeta {
    'x-kubernetes-validations'?: readonly CelRule[];
    'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
    'x-kubernetes-list-map-keys'?: readonly string[];
    'x-kubernetes-map-type'?: 'atomic' | 'granular';
    'x-kubernetes-preserve-unknown-fields'?: true;
    format?: 'int64' | 'date-time' | 'byte';
    /** Listed in its object's `required` in the CRD, whatever the zod schema's optionality or default. */
    requiredByApi?: true;
  }
}

export const cel = (rule: string, message: string, fieldPath?: string): CelRule => (fieldPath === undefined ? { rule, message } : { rule, message, fieldPath });

/**
 * A field the CRD requires (the API server refuses an object without it, or
 * defaults it first) that readers still accept missing, as they always have:
 * the schema keeps it optional or defaulted for parsing, the CRD lists it in
 * `required`.
 */
export function requiredByApi<T extends z.ZodType>(schema: T): T {
  return schema.meta({ requiredByApi: true });
}

export interface PrinterColumn {
  readonly name: string;
  readonly type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  readonly description?: string;
  readonly jsonPath: string;
  readonly priority?: number;
}

/** One kind of the xdplb.io group: everything its CRD is generated from. */
export interface KindDefinition {
  readonly kind: string;
  /** Absent: Namespaced. */
  readonly scope?: 'Namespaced' | 'Cluster';
  readonly plural: string;
  readonly singular: string;
  readonly shortNames: readonly string[];
  readonly categories: readonly string[];
  /** The module holding the schemas (named in the generated file's header). */
  readonly source: string;
  /** What the kind is for, a few lines: the generated file's header comment. */
  readonly comment: string;
  readonly spec: z.ZodType;
  /** The status schema; absent: the kind has no status. */
  readonly status?: z.ZodType;
  /** Whether status is written through the status subresource. */
  readonly statusSubresource: boolean;
  readonly printerColumns: readonly PrinterColumn[];
  /** CEL rules on the whole object (metadata and spec together). */
  readonly validations?: readonly CelRule[];
}
