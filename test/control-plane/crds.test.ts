// crds.test.ts: the CRDs of crds/ against a real kube-apiserver: they install
// and become Established, their names, short names and category work, the API
// server applies their defaults and itself refuses bad objects with a message
// a person understands, printer columns and status subresources behave, and
// the operator's own table shards (src/core/table-shards.ts) fit VipTable.
// Needs the binaries of scripts/build-control-plane.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableDigest } from '../../src/core/digest.js';
import { buildTable } from '../../src/core/maglev.js';
import { assembleShards } from '../../src/core/table-shards.js';
import { assignedEntry, candidateShards, sharedTableObjects, TableIndex, type TableObject } from '../../src/api/index.js';
import { startControlPlane, type CommandResult, type ControlPlane } from '../../lab/control-plane.js';
import { HEALTH_CHECK_DEFAULTS } from '../../src/api/defaults.js';

const CRD_DIR = fileURLToPath(new URL('../../crds', import.meta.url));
const API_VERSION = 'xdplb.io/v1alpha1';
const NS = 'xdplb-crds';
const DIGEST = `sha256:${'ab'.repeat(32)}`;

type Obj = Record<string, unknown>;
interface Stored {
  metadata: { name: string; uid: string; generation: number; labels?: Record<string, string>; ownerReferences?: Obj[] };
  spec: Obj;
  status?: Obj;
}

let cp: ControlPlane | undefined;
let installed: string[] = [];
const plane = (): ControlPlane => {
  if (cp === undefined) throw new Error('control plane not started');
  return cp;
};

beforeAll(async () => {
  cp = await startControlPlane();
  installed = await cp.installCrds(CRD_DIR);
  await cp.kubectl(['create', 'namespace', NS]);
});

afterAll(async () => {
  await cp?.stop();
});

// --- manifests -------------------------------------------------------------------

const object = (kind: string, name: string, spec: Obj, extra: Obj = {}): Obj => ({
  apiVersion: API_VERSION,
  kind,
  metadata: { name, namespace: NS },
  spec,
  ...extra,
});

const vip = (name: string, spec: Obj = {}): Obj =>
  object('LoadBalancerVip', name, {
    address: '192.0.2.10',
    ports: [{ port: 80 }],
    backends: { selector: { matchLabels: { app: 'web' } } },
    ...spec,
  });

const backend = (name: string, spec: Obj = {}): Obj => object('Backend', name, { address: '10.0.0.11', ...spec });

const shard = { index: 0, count: 1, start: 0, end: 251 };
const vipTable = (name: string, spec: Obj = {}): Obj =>
  object('VipTable', name, {
    assigned: ['web@1:0b7c3d2e-5f4a-4c1b-9a8e-1d2c3b4a5f6e'],
    size: 251,
    digest: DIGEST,
    backends: [{ key: '10.0.0.11', weight: 100 }],
    shard,
    slots: { encoding: 'u8', deflated: 'AwA=' },
    ...spec,
  });

const nodeReport = (name: string, node = name): Obj => object('NodeReport', name, { node });

/** A VipPool: cluster-scoped, so no namespace. */
const vipPool = (name: string, spec: Obj = {}): Obj => ({ apiVersion: API_VERSION, kind: 'VipPool', metadata: { name }, spec: { addresses: ['192.0.2.0/28'], ...spec } });

// --- kubectl ---------------------------------------------------------------------

const apply = (o: Obj): Promise<CommandResult> => plane().kubectl(['apply', '-f', '-'], { input: JSON.stringify(o) });

/** kubectl apply of an object the API server must refuse; returns what kubectl printed. */
async function refused(o: Obj): Promise<string> {
  const r = await plane().kubectl(['apply', '-f', '-'], { input: JSON.stringify(o), allowFailure: true });
  expect(r.exitCode, `accepted: ${JSON.stringify(o)}`).not.toBe(0);
  expect(r.stderr).toMatch(/is invalid/); // the API server's verdict, not a client-side parse error
  return r.stderr;
}

async function get(resource: string, name: string): Promise<Stored> {
  const { stdout } = await plane().kubectl(['-n', NS, 'get', resource, name, '-o', 'json']);
  return JSON.parse(stdout) as Stored;
}

const patch = (resource: string, name: string, body: Obj, subresource?: 'status'): Promise<CommandResult> =>
  plane().kubectl([
    '-n', NS, 'patch', resource, name, '--type=merge', '-p', JSON.stringify(body),
    ...(subresource === undefined ? [] : [`--subresource=${subresource}`]),
  ]);

/** `kubectl get` as a header and rows of cells (no cell here holds a space), AGE left out. */
async function table(args: readonly string[]): Promise<{ header: string[]; rows: string[][] }> {
  const { stdout } = await plane().kubectl(['-n', NS, 'get', ...args]);
  const [header = [], ...rows] = stdout.trim().split('\n').map((l) => l.trim().split(/\s+/));
  const age = header.indexOf('AGE');
  expect(age).toBe(header.length - 1);
  return { header: header.slice(0, age), rows: rows.map((r) => r.slice(0, age)) };
}

// --- tests -----------------------------------------------------------------------

describe('CRDs', () => {
  it('install and become Established, under the xdplb category and their short names', async () => {
    const c = plane();
    const names = ['backends', 'loadbalancervips', 'nodereports', 'vippools', 'viptables'].map((n) => `${n}.xdplb.io`);
    expect([...installed].sort()).toEqual(names.map((n) => `customresourcedefinition.apiextensions.k8s.io/${n}`));
    const crds = JSON.parse((await c.kubectl(['get', 'crd', ...names, '-o', 'json'])).stdout) as {
      items: { metadata: { name: string }; status: { conditions: { type: string; status: string }[] } }[];
    };
    for (const crd of crds.items) {
      const established = crd.status.conditions.find((x) => x.type === 'Established');
      expect(established?.status, crd.metadata.name).toBe('True');
    }

    await apply(vip('cat'));
    await apply(backend('cat'));
    await apply(vipTable('cat'));
    await apply(nodeReport('cat'));
    await apply(vipPool('cat'));
    const want = ['backend.xdplb.io/cat', 'loadbalancervip.xdplb.io/cat', 'nodereport.xdplb.io/cat', 'vippool.xdplb.io/cat', 'viptable.xdplb.io/cat'];
    const lines = (s: string): string[] => s.trim().split('\n').filter((l) => l.endsWith('/cat')).sort();
    expect(lines((await c.kubectl(['-n', NS, 'get', 'xdplb', '-o', 'name'])).stdout)).toEqual(want);
    expect(lines((await c.kubectl(['-n', NS, 'get', 'vip,be,vt,nr,vpool', '-o', 'name'])).stdout)).toEqual(want);
    // Cluster-scoped: the same pool from any namespace.
    expect(lines((await c.kubectl(['-n', 'default', 'get', 'vpool', '-o', 'name'])).stdout)).toEqual(['vippool.xdplb.io/cat']);
  });

  it('apply their defaults: a minimal LoadBalancerVip and Backend read back complete', async () => {
    await apply(vip('minimal'));
    expect((await get('vip', 'minimal')).spec).toEqual({
      address: '192.0.2.10',
      ports: [{ port: 80, protocol: 'TCP' }],
      backends: { selector: { matchLabels: { app: 'web' } } },
      mode: 'ipip',
      hashing: { tableSize: 65537, affinity: 'FiveTuple' },
    });

    await apply(vip('defaults', { healthCheck: {}, flowTable: {}, backends: { service: { name: 'web' } } }));
    expect((await get('vip', 'defaults')).spec).toEqual({
      address: '192.0.2.10',
      ports: [{ port: 80, protocol: 'TCP' }],
      backends: { service: { name: 'web', weight: 100 } },
      mode: 'ipip',
      hashing: { tableSize: 65537, affinity: 'FiveTuple' },
      // What the API server fills in is exactly what src/api declares, the one home of the defaults.
      healthCheck: HEALTH_CHECK_DEFAULTS,
      flowTable: { enabled: false },
    });

    await apply(backend('minimal'));
    expect((await get('be', 'minimal')).spec).toEqual({ address: '10.0.0.11', weight: 100 });
  });

  it.each<[string, Obj]>([
    ['an IPv6 l2dsr VIP with SourceIP affinity and a small table', vip('ok-v6', {
      address: '2001:db8::10', mode: 'l2dsr', hashing: { tableSize: 251, affinity: 'SourceIP' },
    })],
    ['the same port for TCP and UDP', vip('ok-tcp-udp', { ports: [{ port: 53 }, { port: 53, protocol: 'UDP' }] })],
    ['every UDP port, health-checked on a named port', vip('ok-all', {
      ports: [{ protocol: 'UDP', allPorts: true }], healthCheck: { port: 8080, type: 'HTTP', path: '/healthz' },
    })],
    ['a health check timeout equal to its interval', vip('ok-hc', { healthCheck: { intervalMilliseconds: 50, timeoutMilliseconds: 50 } })],
    ['a selector with match expressions', vip('ok-sel', {
      backends: { selector: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['web'] }, { key: 'canary', operator: 'DoesNotExist' }] } },
    })],
    ['a drained IPv6 Backend', backend('ok-drained', { address: '2001:db8::11', weight: 0 })],
    ['a Backend of the largest weight', backend('ok-heavy', { weight: 1000000 })],
    ['a GUE VIP with a drain of its own', vip('ok-gue', { mode: 'gue', secondChance: { drainSeconds: 600 } })],
    ['a NodeReport named after its node', nodeReport('node-ok')],
    ['a Decap NodeReport named decap.<node>', { ...nodeReport('decap.node-ok', 'node-ok'), spec: { node: 'node-ok', role: 'Decap' } }],
    ['a VipPool of a CIDR, a range with spaces, one address and an IPv6 CIDR', vipPool('ok-pool', { addresses: ['198.51.100.0/30', '198.51.100.10 - 198.51.100.20', '198.51.100.99', '2001:db8:1::/120'] })],
  ])('accept %s', async (_, o) => {
    await apply(o);
  });

  it.each<[string, Obj, RegExp]>([
    ['a VIP address that is not IPv4', vip('bad-v4', { address: '10.0.0.256' }),
      /spec\.address: Invalid value: "10\.0\.0\.256": address must be an IPv4 or IPv6 address/],
    ['a VIP address that is garbage', vip('bad-garbage', { address: 'web.example' }),
      /spec\.address: Invalid value: "web\.example": address must be an IPv4 or IPv6 address/],
    ['port 0', vip('bad-port0', { ports: [{ port: 0 }] }),
      /spec\.ports\[0\]\.port: Invalid value: 0: .*should be greater than or equal to 1/],
    ['port 65536', vip('bad-port65536', { ports: [{ port: 65536 }] }),
      /spec\.ports\[0\]\.port: Invalid value: 65536: .*should be less than or equal to 65535/],
    ['a port entry with both port and allPorts', vip('bad-both', { ports: [{ port: 80, allPorts: true }] }),
      /spec\.ports\[0\]: Invalid value: each port entry needs exactly one of port \(1 to 65535\) or allPorts true/],
    ['a port entry with neither port nor allPorts', vip('bad-neither', { ports: [{ port: 80 }, { protocol: 'UDP' }] }),
      /spec\.ports\[1\]: Invalid value: each port entry needs exactly one of port \(1 to 65535\) or allPorts true/],
    ['a repeated port and protocol', vip('bad-dup', { ports: [{ port: 80 }, { port: 443 }, { port: 80, protocol: 'TCP' }] }),
      /spec\.ports: Invalid value: ports must not repeat a port and protocol/],
    ['allPorts twice for one protocol', vip('bad-dup-all', { ports: [{ allPorts: true }, { allPorts: true }], healthCheck: { port: 80 } }),
      /spec\.ports: Invalid value: ports must not repeat a port and protocol/],
    ['a VipPool entry that is no address', vipPool('bad-pool', { addresses: ['192.0.2.0/28', 'web'] }),
      /spec\.addresses\[1\]: Invalid value: .*each entry is an IP address, a CIDR/],
    ['a VipPool range of three addresses', vipPool('bad-range', { addresses: ['192.0.2.1-192.0.2.2-192.0.2.3'] }),
      /spec\.addresses\[0\]: Invalid value: .*a range of two addresses/],
    ['a VipPool without addresses', vipPool('bad-empty', { addresses: [] }),
      /spec\.addresses: Invalid value: 0: .*should have at least 1 items/],
    ['a table size that is not an allowed prime', vip('bad-size', { hashing: { tableSize: 65536 } }),
      /spec\.hashing\.tableSize: Unsupported value: 65536: supported values: .*"65537"/],
    ['an unknown mode', vip('bad-mode', { mode: 'nat' }),
      /spec\.mode: Unsupported value: "nat": supported values: "ipip", "gue", "l2dsr"/],
    ['second chance on an ipip VIP', vip('bad-second-chance', { secondChance: { drainSeconds: 60 } }),
      /spec: Invalid value: secondChance needs mode gue/],
    ['a drain longer than a day', vip('bad-drain', { mode: 'gue', secondChance: { drainSeconds: 86401 } }),
      /spec\.secondChance\.drainSeconds: Invalid value: 86401: .*should be less than or equal to 86400/],
    ['an unknown affinity', vip('bad-affinity', { hashing: { affinity: 'Random' } }),
      /spec\.hashing\.affinity: Unsupported value: "Random": supported values: "FiveTuple", "SourceIP"/],
    ['backends with neither selector nor service', vip('bad-backends', { backends: {} }),
      /spec\.backends: Invalid value: backends needs a selector, a service, or both/],
    ['a health check timeout above its interval', vip('bad-timeout', { healthCheck: { intervalMilliseconds: 100, timeoutMilliseconds: 200 } }),
      /spec\.healthCheck: Invalid value: healthCheck\.timeoutMilliseconds must not exceed intervalMilliseconds/],
    ['a health check interval below the default timeout', vip('bad-interval', { healthCheck: { intervalMilliseconds: 50 } }),
      /spec\.healthCheck: Invalid value: healthCheck\.timeoutMilliseconds must not exceed intervalMilliseconds \(defaults 80 and 100\)/],
    ['a health check without a port on an all-ports VIP', vip('bad-hc-port', { ports: [{ allPorts: true }], healthCheck: {} }),
      /spec: Invalid value: a VIP serving all ports needs healthCheck\.port/],
    ['an In selector expression without values', vip('bad-expr', { backends: { selector: { matchExpressions: [{ key: 'tier', operator: 'In' }] } } }),
      /spec\.backends\.selector\.matchExpressions\[0\]: Invalid value: a matchExpression with In or NotIn needs values/],
    ['a Backend address that is not an IP', backend('bad-address', { address: '10.0.0' }),
      /spec\.address: Invalid value: "10\.0\.0": address must be an IPv4 or IPv6 address/],
    ['a negative Backend weight', backend('bad-negative', { weight: -1 }),
      /spec\.weight: Invalid value: -1: .*should be greater than or equal to 0/],
    ['a Backend weight above 1000000', backend('bad-heavy', { weight: 1000001 }),
      /spec\.weight: Invalid value: 1000001: .*should be less than or equal to 1000000/],
    ['a VipTable shard index not below the count', vipTable('bad-index', { shard: { ...shard, index: 1 } }),
      /spec\.shard: Invalid value: shard\.index must be less than shard\.count/],
    ['a VipTable shard ending past the table size', vipTable('bad-end', { shard: { ...shard, end: 252 } }),
      /spec: Invalid value: shard\.end must not exceed the table size/],
    ['a VipTable shard with an empty range', vipTable('bad-range', { shard: { ...shard, start: 10, end: 10 } }),
      /spec\.shard: Invalid value: shard\.start must be less than shard\.end/],
    ['a VipTable digest that is not sha256 hex', vipTable('bad-digest', { digest: `sha256:${'AB'.repeat(32)}` }),
      /spec\.digest: Invalid value: "sha256:ABAB.*": .*should match '\^sha256:\[0-9a-f\]\{64\}\$'/],
    ['VipTable slots that are not base64', vipTable('bad-slots', { slots: { encoding: 'u8', deflated: 'not base64!' } }),
      /spec\.slots\.deflated: Invalid value: "not base64!": .*should match/],
    ['a VipTable size that is not an allowed prime', vipTable('bad-table-size', { size: 256 }),
      /spec\.size: Unsupported value: 256: supported values: "0", "251"/],
    ['a VipTable shard after the first that lists VIPs', vipTable('bad-assigned', { shard: { index: 1, count: 2, start: 0, end: 251 } }),
      /only the first shard of a shared table lists the VIPs it is published for/],
    ['a VipTable listing a VIP without its generation', vipTable('bad-entry', { assigned: ['web:0b7c3d2e'] }),
      /spec\.assigned\[0\]: Invalid value: "web:0b7c3d2e": .*should match/],
    ['a VipTable of the earlier form without its generation', vipTable('bad-legacy', { assigned: undefined, vip: 'web' }),
      /vip and generation go together/],
    ['a VipTable of size 0 (the empty table) that lists backends', vipTable('bad-empty', { size: 0, shard: { index: 0, count: 1, start: 0, end: 0 } }),
      /a table has backends unless it is the empty table \(size 0\)/],
    ['a NodeReport not named after its node', nodeReport('node-a', 'node-b'),
      /spec\.node: Invalid value: .*a NodeReport is named after its node \(decap\.<node> for the Decap role\); metadata\.name must equal spec\.node/],
  ])('refuse %s', async (_, o, message) => {
    expect(await refused(o)).toMatch(message);
  });

  it('take the empty table (size 0, no backends, one shard [0, 0)), let only its list of VIPs change, and refuse any change to the table', async () => {
    const empty = vipTable('empty-table', { size: 0, backends: [], shard: { index: 0, count: 1, start: 0, end: 0 }, slots: { encoding: 'u8', deflated: 'AwA=' } });
    await plane().kubectl(['apply', '-f', '-'], { input: JSON.stringify(empty) });
    expect((await get('viptables', 'empty-table')).spec).toMatchObject({ size: 0, backends: [] });
    const patch = (spec: Obj) => plane().kubectl(['-n', NS, 'patch', 'viptable', 'empty-table', '--type=merge', '-p', JSON.stringify({ spec })], { allowFailure: true });
    const listed = ['api@3:9d1e0f2a', 'web@1:0b7c3d2e-5f4a-4c1b-9a8e-1d2c3b4a5f6e'];
    expect((await patch({ assigned: listed })).exitCode).toBe(0);
    const r = await patch({ slots: { encoding: 'u8', deflated: 'AQA=' } });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/a published table is immutable \(only the list of VIPs it is published for changes\)/);
    expect((await get('viptables', 'empty-table')).spec).toMatchObject({ assigned: listed, slots: { deflated: 'AwA=' } });
    // The earlier, per-VIP form: its generation never changes.
    const legacy = vipTable('web-g1-0', { assigned: undefined, vip: 'web', generation: 1 });
    await plane().kubectl(['apply', '-f', '-'], { input: JSON.stringify(legacy) });
    const g = await plane().kubectl(['-n', NS, 'patch', 'viptable', 'web-g1-0', '--type=merge', '-p', JSON.stringify({ spec: { generation: 2 } })], { allowFailure: true });
    expect(g.exitCode).not.toBe(0);
    expect(g.stderr).toMatch(/a published table is immutable/);
  });

  it('print their columns, status included', async () => {
    await apply(vip('cols', { ports: [{ port: 80 }, { port: 443 }] }));
    await patch('vip', 'cols', {
      status: {
        observedGeneration: 1,
        portsSummary: '80/TCP,443/TCP',
        backendsSummary: '2/3',
        nodesSummary: '1/2',
        table: { size: 65537, generation: 4, digest: DIGEST },
        conditions: [{ type: 'Ready', status: 'True', reason: 'Programmed', message: 'Programmed on 1 of 2 nodes', lastTransitionTime: '2026-01-01T00:00:00Z' }],
      },
    }, 'status');
    expect(await table(['vip', 'cols', '-o', 'wide'])).toEqual({
      header: ['NAME', 'ADDRESS', 'PORTS', 'MODE', 'BACKENDS', 'NODES', 'READY', 'DIGEST'],
      rows: [['cols', '192.0.2.10', '80/TCP,443/TCP', 'ipip', '2/3', '1/2', 'True', DIGEST]],
    });
    expect(await table(['vip', 'cols'])).toEqual({
      header: ['NAME', 'ADDRESS', 'PORTS', 'BACKENDS', 'NODES', 'READY'],
      rows: [['cols', '192.0.2.10', '80/TCP,443/TCP', '2/3', '1/2', 'True']],
    });

    await apply(backend('cols', { address: '2001:db8::11', weight: 7 }));
    expect(await table(['be', 'cols'])).toEqual({
      header: ['NAME', 'ADDRESS', 'WEIGHT'],
      rows: [['cols', '2001:db8::11', '7']],
    });

    await apply(vipTable('cols', { assigned: undefined, vip: 'web', generation: 3, size: 509, shard: { index: 1, count: 2, start: 255, end: 509 } }));
    expect(await table(['vt', 'cols', '-o', 'wide'])).toEqual({
      header: ['NAME', 'SIZE', 'SHARD', 'DIGEST', 'VIP'],
      rows: [['cols', '509', '1', DIGEST, 'web']],
    });
    expect((await table(['vt', 'cols'])).header).toEqual(['NAME', 'SIZE', 'SHARD']);

    await apply(nodeReport('node-cols'));
    await patch('nr', 'node-cols', { status: { xdpMode: 'native', interface: 'eth0', programmedSummary: '3/3' } }, 'status');
    expect(await table(['nr', 'node-cols'])).toEqual({
      header: ['NAME', 'NODE', 'MODE', 'VIPS'],
      rows: [['node-cols', 'node-cols', 'native', '3/3']],
    });
  });

  it('keep LoadBalancerVip status a subresource: spec and status writes do not cross', async () => {
    await apply({ ...vip('sub'), status: { portsSummary: 'from the manifest' } });
    const created = await get('vip', 'sub');
    expect(created.status).toBeUndefined();
    expect(created.metadata.generation).toBe(1);

    await patch('vip', 'sub', { spec: { mode: 'l2dsr' }, status: { portsSummary: '80/TCP' } }, 'status');
    const statusWritten = await get('vip', 'sub');
    expect(statusWritten.status).toEqual({ portsSummary: '80/TCP' });
    expect(statusWritten.spec.mode).toBe('ipip');
    expect(statusWritten.metadata.generation).toBe(1);

    await patch('vip', 'sub', { spec: { mode: 'l2dsr' }, status: { portsSummary: 'from a spec write' } });
    const specWritten = await get('vip', 'sub');
    expect(specWritten.spec.mode).toBe('l2dsr');
    expect(specWritten.metadata.generation).toBe(2);
    expect(specWritten.status).toEqual({ portsSummary: '80/TCP' });
  });

  it('keep NodeReport status a subresource: spec and status writes do not cross', async () => {
    const status = {
      observedTime: '2026-01-01T00:00:00Z',
      interface: 'eth0',
      xdpMode: 'native',
      programmedSummary: '1/2',
      vips: [
        { namespace: NS, name: 'web', generation: 3, digest: DIGEST, programmed: true },
        { namespace: NS, name: 'dns', programmed: false, message: 'Waiting for shard 1 of generation 2' },
      ],
      backends: [
        { address: '10.0.0.11', vips: [`${NS}/web`, `${NS}/dns`], healthy: true, resolved: true },
        { address: '2001:db8::12', vips: [`${NS}/web`], healthy: false, resolved: false, reason: 'No route to the backend' },
      ],
    };
    await apply({ ...nodeReport('node-sub'), status: { xdpMode: 'generic' } });
    expect((await get('nr', 'node-sub')).status).toBeUndefined();

    await patch('nr', 'node-sub', { spec: { node: 'elsewhere' }, status }, 'status');
    const statusWritten = await get('nr', 'node-sub');
    expect(statusWritten.status).toEqual(status);
    expect(statusWritten.spec).toEqual({ node: 'node-sub' });

    await patch('nr', 'node-sub', { metadata: { labels: { zone: 'a' } }, spec: { node: 'node-sub' }, status: { xdpMode: 'generic' } });
    const specWritten = await get('nr', 'node-sub');
    expect(specWritten.metadata.labels).toEqual({ zone: 'a' });
    expect(specWritten.status).toEqual(status);

    // The report's lists are atomic: however many VIPs and backends it lists,
    // the API server tracks one managed field per list, not one per entry.
    const many = {
      programmed: Array.from({ length: 300 }, (_, i) => `${NS}/vip-${i}@1:0123456789abcdef`),
      vips: Array.from({ length: 300 }, (_, i) => ({ namespace: NS, name: `pending-${i}`, state: 'Pending', message: 'programming' })),
      backends: Array.from({ length: 100 }, (_, b) => ({ address: `10.0.0.${b}`, checks: [{ check: 'tcp:80', healthy: true }], resolved: true })),
    };
    const big = await plane().kubectl(['-n', NS, 'patch', 'nr', 'node-sub', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: many })]);
    expect(big.exitCode).toBe(0);
    const written = JSON.parse((await plane().kubectl(['-n', NS, 'get', 'nr', 'node-sub', '-o', 'json', '--show-managed-fields'])).stdout) as { metadata: { managedFields: unknown[] }; status: { programmed: string[] } };
    expect(written.status.programmed).toHaveLength(300);
    expect(written.metadata.managedFields.length).toBeGreaterThan(0);
    expect(JSON.stringify(written.metadata.managedFields).length).toBeLessThan(2048);
  });

  it('take the operator\'s shards of the largest table, listing a thousand VIPs, and give them back intact', async () => {
    const backends = Array.from({ length: 1000 }, (_, i) => ({ key: `10.1.${i >> 8}.${i & 255}`, weight: 1 + (i % 3) }));
    const built = buildTable({ size: 1048573, backends });
    const assigned = Array.from({ length: 1000 }, (_, i) => assignedEntry(`vip-${i}`, 1 + i, `0b7c3d2e-5f4a-4c1b-9a8e-${String(i).padStart(12, '0')}`));
    const objects = sharedTableObjects(NS, built, assigned);
    expect(objects.length).toBeGreaterThan(1);
    expect(objects[0]!.spec.slots.encoding).toBe('u16');
    // Server-side apply; client-side `kubectl apply` would copy each ~0.7 MB
    // shard into an annotation, which is capped at 256 KiB.
    await plane().kubectl(['apply', '--server-side', '--field-manager=xdplb-operator', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }),
    });

    const { stdout } = await plane().kubectl(['-n', NS, 'get', 'vt', '-o', 'json']);
    const stored = (JSON.parse(stdout) as { items: Stored[] }).items.filter((i) => objects.some((o) => o.metadata.name === i.metadata.name));
    expect(stored).toHaveLength(objects.length);
    const index = TableIndex.of(stored as unknown as TableObject[]);
    const [candidate] = index.candidates(NS, 'vip-999', '0b7c3d2e-5f4a-4c1b-9a8e-000000000999');
    expect(candidate).toMatchObject({ generation: 1000, whole: true });
    const back = assembleShards(candidateShards(candidate!, `${NS}/vip-999`));
    expect(back?.digest).toBe(tableDigest(built));
  });
});
