// crdgen.ts: the CustomResourceDefinitions of crds/ (and the chart's copy),
// generated from the kinds' zod schemas and their CRD metadata. A schema goes
// through zod's JSON Schema output and is then made structural, as the API
// server requires: no unbounded-integer limits, no `additionalProperties:
// false`, every node typed, and anything else zod may emit (anyOf, const,
// $ref...) refused rather than written. `npm run gen:crds` writes the files
// (tools/gen-crds.mjs); test/unit/crds-generated.test.ts fails when the
// committed ones differ from what this renders.
import { Document, isMap, isScalar, isSeq, stringify, visit } from 'yaml';
import { z } from 'zod';
import { backendKind } from './backend.js';
import { GROUP, VERSION } from './coordinates.js';
import type { KindDefinition } from './crd-meta.js';
import { loadBalancerVipKind } from './loadbalancervip.js';
import { nodeReportKind } from './nodereport.js';
import { vipPoolKind } from './vippool.js';
import { vipTableKind } from './viptable.js';

export const KINDS: readonly KindDefinition[] = [backendKind, loadBalancerVipKind, nodeReportKind, vipPoolKind, vipTableKind];

type Schema = Record<string, unknown>;

/** The keys a node of a generated schema may have, in the order they are written. */
const KEY_ORDER = [
  'type',
  'format',
  'enum',
  'default',
  'minimum',
  'maximum',
  'minLength',
  'maxLength',
  'minItems',
  'maxItems',
  'pattern',
  'description',
  'required',
  'properties',
  'additionalProperties',
  'items',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-validations',
] as const;

const isPlain = (v: unknown): v is Schema => typeof v === 'object' && v !== null && !Array.isArray(v);

/** One node of zod's JSON Schema output as a structural schema node (children done recursively). */
function structural(node: Schema, path: string): Schema {
  const out: Schema = {};
  const properties = isPlain(node.properties) ? node.properties : undefined;
  for (const [key, value] of Object.entries(node)) {
    switch (key) {
      case '$schema':
      case 'propertyNames': // a record's keys are strings anyway
      case 'requiredByApi': // read below, by the parent
      case 'required': // rebuilt below
        continue;
      case 'minimum':
      case 'maximum':
        // zod bounds every integer by Number.MAX_SAFE_INTEGER; a CRD leaves them open.
        if (Math.abs(value as number) === Number.MAX_SAFE_INTEGER) continue;
        out[key] = value;
        continue;
      case 'pattern':
        // RegExp.source escapes "/"; the CRDs write it plain.
        out[key] = String(value).replace(/\\\//g, '/');
        continue;
      case 'properties':
        out[key] = Object.fromEntries(Object.entries(properties!).map(([name, p]) => [name, structural(p as Schema, `${path}.${name}`)]));
        continue;
      case 'items':
        out[key] = structural(value as Schema, `${path}[]`);
        continue;
      case 'additionalProperties':
        if (value === false) continue; // zod's strict objects; the API server prunes unknown fields itself
        if (isPlain(value) && Object.keys(value).length === 0) {
          if (node['x-kubernetes-preserve-unknown-fields'] === true) continue;
          throw new Error(`${path}: a map of any value needs x-kubernetes-preserve-unknown-fields`);
        }
        out[key] = structural(value as Schema, `${path}.*`);
        continue;
      default:
        if (!(KEY_ORDER as readonly string[]).includes(key)) throw new Error(`${path}: "${key}" has no place in a structural CRD schema`);
        out[key] = value;
    }
  }
  if (properties !== undefined) {
    const zodRequired = Array.isArray(node.required) ? (node.required as string[]) : [];
    const required = Object.entries(properties)
      .filter(([name, p]) => zodRequired.includes(name) || (p as Schema).requiredByApi === true)
      .map(([name]) => name);
    if (required.length > 0) out.required = required;
  }
  if (typeof out.type !== 'string') throw new Error(`${path}: every node of a structural schema needs a type`);
  return Object.fromEntries(KEY_ORDER.filter((k) => k in out).map((k) => [k, out[k]]));
}

/** A zod schema as a structural OpenAPI v3 schema (what a CRD version's schema holds). */
export function structuralSchema(schema: z.ZodType, path: string): Schema {
  return structural(z.toJSONSchema(schema, { io: 'input', unrepresentable: 'throw' }) as Schema, path);
}

/** The CustomResourceDefinition of one kind, as an object. */
export function crdOf(k: KindDefinition): Schema {
  const root: Schema = {
    type: 'object',
    required: ['spec'],
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      spec: structuralSchema(k.spec, `${k.kind}.spec`),
      ...(k.status === undefined ? {} : { status: structuralSchema(k.status, `${k.kind}.status`) }),
    },
    ...(k.validations === undefined ? {} : { 'x-kubernetes-validations': k.validations }),
  };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${k.plural}.${GROUP}` },
    spec: {
      group: GROUP,
      scope: k.scope ?? 'Namespaced',
      names: { kind: k.kind, listKind: `${k.kind}List`, plural: k.plural, singular: k.singular, shortNames: k.shortNames, categories: k.categories },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          ...(k.statusSubresource ? { subresources: { status: {} } } : {}),
          additionalPrinterColumns: k.printerColumns,
          schema: { openAPIV3Schema: root },
        },
      ],
    },
  };
}

/** Longest line a collection is written on in flow style (`{ type: string }`); longer ones are blocks. */
const FLOW_WIDTH = 120;

const leaf = (n: unknown): boolean => isScalar(n) || ((isMap(n) || isSeq(n)) && n.items.length === 0);

/** YAML text of a CRD: blocks, with small collections of plain values on one line, as a person would write them. */
function yamlOf(crd: Schema): string {
  // YAML 1.1 quoting: kubectl and Helm read YAML 1.1, where yes/no/on/off are booleans.
  const doc = new Document(crd, { version: '1.1' });
  visit(doc, {
    Collection(key, node, path) {
      const items: unknown[] = isMap(node) ? node.items.map((p) => p.value) : node.items;
      if (node.items.length === 0 || !items.every((i) => leaf(i) || (isSeq(i) && i.items.every(leaf)))) return;
      if (isMap(node) && node.has('rule')) return; // a CEL rule and its message read best on lines of their own
      // The line it would take: indent, "key: " or "- ", then the flow text.
      const indent = 2 * path.filter((p) => isMap(p) || isSeq(p)).length;
      const lead = typeof key === 'number' ? 2 : String(isScalar(key) ? key.value : key).length + 2;
      const text = stringify(node.toJSON(), { version: '1.1', collectionStyle: 'flow', flowCollectionPadding: true, lineWidth: 0 }).trim();
      // A list of plain values (an enum, required fields) always fits on one line.
      if ((isSeq(node) && node.items.every(leaf)) || indent + lead + text.length <= FLOW_WIDTH) node.flow = true;
    },
  });
  return doc.toString({ lineWidth: 0, flowCollectionPadding: true });
}

/** The file name of a kind's CRD, as in crds/. */
export const crdFileName = (k: KindDefinition): string => `${GROUP}_${k.plural}.yaml`;

/** Every CRD, by file name: a header (generated from where, how to regenerate, what the kind is for) and the YAML. */
export function renderCrds(): Map<string, string> {
  const out = new Map<string, string>();
  for (const k of KINDS) {
    const header = [`Generated from ${k.source} by \`npm run gen:crds\`: edit the schema there, not this file.`, '', ...k.comment.split('\n')];
    out.set(crdFileName(k), `${header.map((l) => (l === '' ? '#' : `# ${l}`)).join('\n')}\n${yamlOf(crdOf(k))}`);
  }
  return out;
}
