// crds-generated.test.ts: the committed CRDs (crds/ and the Helm chart's copy,
// charts/xdplb/crds/) are exactly what src/api generates, byte for byte, so
// the schemas in src/api are their one source; what the generator emits is
// structural, as the API server requires; and parsing with the same schemas
// applies the defaults the API server applies (test/control-plane/crds.test.ts
// reads them back from a real one) and reports, never throws, what does not parse.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { crdOf, KINDS, renderCrds, structuralSchema } from '../../src/api/crdgen.js';
import { parseBackend, parseNodeReport, parseVip } from '../../src/api/index.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIX = 'run `npm run gen:crds` and commit the result';

describe('generated CRDs', () => {
  const rendered = renderCrds();

  for (const dir of ['crds', 'charts/xdplb/crds']) {
    it(`${dir}/ holds exactly the CRDs generated from src/api`, () => {
      const files = readdirSync(join(ROOT, dir)).filter((f) => f.endsWith('.yaml')).sort();
      expect(files, `${dir}/ has other CRD files than src/api defines: ${FIX}`).toEqual([...rendered.keys()].sort());
      for (const [file, text] of rendered) {
        expect(readFileSync(join(ROOT, dir, file), 'utf8'), `${dir}/${file} differs from src/api: ${FIX}`).toBe(text);
      }
    });
  }

  it('say where they come from and parse back to the CRD objects', () => {
    for (const k of KINDS) {
      const text = rendered.get(`xdplb.io_${k.plural}.yaml`)!;
      expect(text.split('\n')[0]).toBe(`# Generated from ${k.source} by \`npm run gen:crds\`: edit the schema there, not this file.`);
      expect(existsSync(join(ROOT, k.source)), k.source).toBe(true);
      expect(parse(text)).toEqual(crdOf(k));
    }
  });

  it('leave integers open where zod bounds them by MAX_SAFE_INTEGER, and refuse what is not structural', () => {
    expect(structuralSchema(z.object({ n: z.number().int() }), 't')).toEqual({ type: 'object', required: ['n'], properties: { n: { type: 'integer' } } });
    expect(() => structuralSchema(z.object({ u: z.union([z.string(), z.object({ a: z.string() })]) }), 't')).toThrow(/t\.u: "anyOf"/);
    expect(() => structuralSchema(z.object({ any: z.record(z.string(), z.unknown()) }), 't')).toThrow(/preserve-unknown-fields/);
  });
});

describe('parsing with the schemas', () => {
  const metadata = { namespace: 'shop', name: 'web', creationTimestamp: new Date('2026-01-01T00:00:00Z') };
  const minimal = { address: '192.0.2.10', ports: [{ port: 80 }], backends: { selector: { matchLabels: { app: 'web' } } } };

  it('applies the defaults the API server applies', () => {
    const vip = parseVip({ metadata, spec: minimal });
    expect(vip.ok && vip.value.spec).toEqual({ ...minimal, ports: [{ port: 80, protocol: 'TCP' }], mode: 'ipip', hashing: { tableSize: 65537, affinity: 'FiveTuple' } });
    expect(vip.ok && vip.value.metadata).toMatchObject({ generation: 0, creationTimestamp: '2026-01-01T00:00:00.000Z', labels: {} });
    const full = parseVip({ metadata, spec: { ...minimal, healthCheck: {}, flowTable: {}, backends: { service: { name: 'web' } } } });
    expect(full.ok && full.value.spec).toMatchObject({
      backends: { service: { name: 'web', weight: 100 } },
      healthCheck: { type: 'TCP', path: '/', intervalMilliseconds: 100, timeoutMilliseconds: 80, healthyThreshold: 2, unhealthyThreshold: 2 },
      flowTable: { enabled: false },
    });
    const backend = parseBackend({ metadata, spec: { address: '10.0.0.11' } });
    expect(backend.ok && backend.value.spec).toEqual({ address: '10.0.0.11', weight: 100 });
  });

  it('returns what does not parse as a problem naming the object and the field', () => {
    const bad = parseVip({ metadata, spec: { ...minimal, hashing: { tableSize: 1000 } } });
    expect(bad).toMatchObject({ ok: false, key: 'shop/web' });
    expect(!bad.ok && bad.problem).toMatch(/^spec\.hashing\.tableSize: /);
    expect(parseNodeReport({ metadata: { namespace: 'xdplb-system', name: 'lb-1' } })).toMatchObject({ ok: false, problem: expect.stringMatching(/^spec: /) });
    const report = parseNodeReport({ metadata: { namespace: 'xdplb-system', name: 'lb-1' }, spec: { node: 'lb-1' } });
    expect(report.ok && report.value.status).toEqual({});
  });
});
