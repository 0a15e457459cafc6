// examples.test.ts: every manifest in examples/ against a real kube-apiserver
// with the CRDs of crds/: each file says first what it shows, the set covers
// what the docs point users to (a VIP over Backends, over a Service, an l2dsr
// VIP, a drained backend), and each applies server-side, is accepted by the
// schema and CEL rules, and reads back with what it declared.
// Needs the binaries of scripts/build-control-plane.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { startControlPlane, type ControlPlane } from '../../lab/control-plane.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const EXAMPLES = join(ROOT, 'examples');

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
}

const files = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml')).sort();
const text = (f: string): string => readFileSync(join(EXAMPLES, f), 'utf8');
const manifests = (f: string): Manifest[] =>
  parseAllDocuments(text(f))
    .map((d) => d.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null);
const all = files.flatMap((f) => manifests(f).map((m) => ({ file: f, m })));
const vips = all.filter(({ m }) => m.kind === 'LoadBalancerVip');
const backends = all.filter(({ m }) => m.kind === 'Backend');

let cp: ControlPlane | undefined;
const plane = (): ControlPlane => {
  if (cp === undefined) throw new Error('control plane not started');
  return cp;
};

beforeAll(async () => {
  cp = await startControlPlane({ crdDir: join(ROOT, 'crds') });
  const namespaces = new Set(all.map(({ m }) => m.metadata.namespace).filter((n): n is string => n !== undefined));
  for (const ns of namespaces) await cp.kubectl(['create', 'namespace', ns]);
});

afterAll(async () => {
  await cp?.stop();
});

describe('examples/', () => {
  it('has the examples the docs point to', () => {
    expect(files.length).toBeGreaterThanOrEqual(4);
    // A VIP over Backend objects (two or three of them, selected by label).
    expect(
      vips.some(({ file, m }) => {
        const sel = (m.spec?.backends as { selector?: { matchLabels?: Record<string, string> } }).selector?.matchLabels;
        const n = backends.filter((b) => b.file === file && sel !== undefined && Object.entries(sel).every(([k, v]) => b.m.metadata.labels?.[k] === v)).length;
        return n >= 2 && n <= 3;
      }),
    ).toBe(true);
    // A VIP over a Service's EndpointSlices, with the Service in the same file.
    expect(
      vips.some(({ file, m }) => {
        const svc = (m.spec?.backends as { service?: { name: string } }).service?.name;
        return svc !== undefined && all.some((o) => o.file === file && o.m.kind === 'Service' && o.m.metadata.name === svc);
      }),
    ).toBe(true);
    expect(vips.some(({ m }) => m.spec?.mode === 'l2dsr')).toBe(true);
    expect(backends.some(({ m }) => m.spec?.weight === 0)).toBe(true);
  });

  it.each(files)('%s starts with a comment saying what it shows', (f) => {
    const head = text(f).split('\n').slice(0, 2);
    expect(head[0]).toMatch(/^# \S.{10,}/);
    expect(head[1]).toMatch(/^#/);
  });

  it.each(files)('%s applies server-side and reads back', async (f) => {
    const c = plane();
    const r = await c.kubectl(['apply', '--server-side', '--field-manager=xdplb-examples', '-f', join(EXAMPLES, f), '-o', 'name']);
    const items = manifests(f);
    expect(r.stdout.trim().split('\n')).toHaveLength(items.length);
    for (const m of items) {
      const kind = m.apiVersion.includes('/') ? `${m.kind.toLowerCase()}.${m.apiVersion.split('/')[0]}` : m.kind.toLowerCase();
      const { stdout } = await c.kubectl(['get', kind, m.metadata.name, '-o', 'json', ...(m.metadata.namespace === undefined ? [] : ['-n', m.metadata.namespace])]);
      const stored = JSON.parse(stdout) as Manifest;
      expect(stored.metadata.labels ?? {}).toMatchObject(m.metadata.labels ?? {});
      if (m.spec !== undefined) expect(stored.spec, `${f}: ${m.kind}/${m.metadata.name}`).toMatchObject(m.spec);
    }
  });

  it('accepts every example again unchanged (a second apply changes nothing)', async () => {
    const c = plane();
    const versions = async (): Promise<string[]> =>
      Promise.all(
        vips.map(async ({ m }) => (await c.kubectl(['get', 'loadbalancervips.xdplb.io', m.metadata.name, '-n', m.metadata.namespace!, '-o', 'jsonpath={.metadata.resourceVersion}'])).stdout),
      );
    const before = await versions();
    for (const f of files) await c.kubectl(['apply', '--server-side', '--field-manager=xdplb-examples', '-f', join(EXAMPLES, f)]);
    expect(await versions()).toEqual(before);
  });
});
