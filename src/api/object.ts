// object.ts: reading an xdplb.io object from an informer's cache into a typed
// value: the metadata the code uses, and the spec (or status) parsed with its
// kind's schema, defaults applied as the API server applies them. An object
// that does not parse is a result, never an exception: the operator logs and
// skips it, the agent leaves it out.
import { z } from 'zod';

/** What an informer hands over (a KubernetesObject with spec and status). */
export interface RawObject {
  readonly metadata?: unknown;
  readonly spec?: unknown;
  readonly status?: unknown;
}

/** A timestamp as the API returns it (text) or as a client decoded it (Date), read as ISO text. */
const timestamp = z.union([z.string(), z.date()]).transform((t, ctx) => {
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) {
    ctx.addIssue({ code: 'custom', message: 'must be a timestamp' });
    return z.NEVER;
  }
  return d.toISOString();
});

const metadataSchema = z.object({
  namespace: z.string(),
  name: z.string(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  generation: z.number().default(0),
  // An object not yet stored (a test's) counts as created at the epoch.
  creationTimestamp: timestamp.default(new Date(0).toISOString()),
  deletionTimestamp: timestamp.optional(),
  labels: z.record(z.string(), z.string()).default({}),
});

export type ObjectMeta = z.output<typeof metadataSchema>;

export interface ApiObject<S> {
  readonly metadata: ObjectMeta;
  readonly spec: S;
}

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly key: string; readonly problem: string };

/** "namespace/name" of a raw object, for messages about one that does not parse. */
function keyOf(o: RawObject): string {
  const m = (o.metadata ?? {}) as { namespace?: unknown; name?: unknown };
  return `${String(m.namespace)}/${String(m.name)}`;
}

function problemOf(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
}

/**
 * `parse`, remembered per object. An informer replaces an object on every
 * change (it never edits one in place), so an object is parsed once however
 * many reconciles read it: with a thousand VIPs, each reconcile would
 * otherwise parse every VIP, table and report again. Callers must not edit a
 * parsed object in place either.
 */
export function parsedOnce<T>(parse: (o: RawObject) => T): (o: RawObject) => T {
  const seen = new WeakMap<RawObject, T>();
  return (o) => {
    if (seen.has(o)) return seen.get(o)!;
    const v = parse(o);
    seen.set(o, v);
    return v;
  };
}

/** A cluster-scoped object's metadata: no namespace (read as ''). */
const clusterMetadataSchema = metadataSchema.extend({ namespace: z.string().default('') });

/** A parser of one kind's objects: metadata and spec (with the spec schema given), of a namespaced or cluster-scoped kind. */
export function objectParser<S extends z.ZodType>(spec: S, scope: 'Namespaced' | 'Cluster' = 'Namespaced'): (o: RawObject) => Parsed<ApiObject<z.output<S>>> {
  const schema = z.object({ metadata: scope === 'Cluster' ? clusterMetadataSchema : metadataSchema, spec });
  return parsedOnce((o) => {
    const r = schema.safeParse(o);
    // The data is exactly this shape; TypeScript cannot resolve zod's output type through the generic S.
    return r.success ? { ok: true, value: r.data as ApiObject<z.output<S>> } : { ok: false, key: keyOf(o), problem: problemOf(r.error) };
  });
}

/** A parser of one kind's status; an object without status reads as an empty one. */
export function statusParser<S extends z.ZodType>(status: S): (o: RawObject) => Parsed<z.output<S>> {
  return parsedOnce((o) => {
    const r = status.safeParse(o.status ?? {});
    return r.success ? { ok: true, value: r.data } : { ok: false, key: keyOf(o), problem: problemOf(r.error) };
  });
}
