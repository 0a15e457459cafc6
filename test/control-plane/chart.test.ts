// chart.test.ts: the Helm chart charts/xdplb against a real kube-apiserver:
// it lints, its rendering passes a server-side dry run, install / upgrade /
// uninstall create, change and remove every object (the CRDs stay, as Helm
// does), bad values are refused by the schema naming the field, the RBAC
// grants exactly what the operator and the agent need (checked by
// impersonation with `kubectl auth can-i`), and the pods' security settings are
// what the docs promise. No scheduler or kubelet runs: pods never start here.
// Needs the binaries of scripts/build-control-plane.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { type ControlPlane } from '../../lab/control-plane.js';
import { usePlane } from '../support/plane.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHART = join(ROOT, 'charts/xdplb');
const NS = 'xdplb-system';
const RELEASE = 'xdplb';
const OPERATOR_SA = `system:serviceaccount:${NS}:xdplb-operator`;
const AGENT_SA = `system:serviceaccount:${NS}:xdplb-agent`;
const CRDS = ['backends.xdplb.io', 'loadbalancervips.xdplb.io', 'nodereports.xdplb.io', 'viptables.xdplb.io'];

// Every object the chart creates with default values, as kubectl names them.
const OBJECTS: Array<[kind: string, name: string, namespaced: boolean]> = [
  ['serviceaccount', 'xdplb-operator', true],
  ['serviceaccount', 'xdplb-agent', true],
  ['clusterrole.rbac.authorization.k8s.io', 'xdplb-operator', false],
  ['clusterrole.rbac.authorization.k8s.io', 'xdplb-agent', false],
  ['clusterrolebinding.rbac.authorization.k8s.io', 'xdplb-operator', false],
  ['clusterrolebinding.rbac.authorization.k8s.io', 'xdplb-agent', false],
  ['role.rbac.authorization.k8s.io', 'xdplb-operator', true],
  ['role.rbac.authorization.k8s.io', 'xdplb-agent', true],
  ['rolebinding.rbac.authorization.k8s.io', 'xdplb-operator', true],
  ['rolebinding.rbac.authorization.k8s.io', 'xdplb-agent', true],
  ['deployment.apps', 'xdplb-operator', true],
  ['poddisruptionbudget.policy', 'xdplb-operator', true],
  ['daemonset.apps', 'xdplb-agent', true],
  ['service', 'xdplb-agent-metrics', true],
  ['service', 'xdplb-operator-metrics', true],
];

interface Container {
  args: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>;
  securityContext: {
    privileged?: boolean;
    runAsNonRoot?: boolean;
    runAsUser?: number;
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    capabilities?: { add?: string[]; drop?: string[] };
    seccompProfile?: { type: string };
  };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  livenessProbe?: unknown;
  volumeMounts?: Array<{ name: string; mountPath: string; mountPropagation?: string }>;
}
interface Workload {
  spec: {
    replicas?: number;
    updateStrategy?: { type: string; rollingUpdate?: { maxUnavailable: number | string } };
    template: {
      spec: {
        hostNetwork?: boolean;
        dnsPolicy?: string;
        nodeSelector?: Record<string, string>;
        serviceAccountName: string;
        containers: Container[];
        volumes?: Array<{ name: string; hostPath?: { path: string; type: string } }>;
      };
    };
  };
}

const plane = usePlane();

const kinds = (rendered: string): string[] =>
  parseAllDocuments(rendered)
    .map((d) => d.toJS() as { kind?: string } | null)
    .filter((o): o is { kind: string } => o !== null && typeof o.kind === 'string')
    .map((o) => o.kind);

async function get<T>(kind: string, name: string, namespaced = true): Promise<T> {
  const { stdout } = await plane().kubectl(['get', kind, name, '-o', 'json', ...(namespaced ? ['-n', NS] : [])]);
  return JSON.parse(stdout) as T;
}

async function exists(kind: string, name: string, namespaced: boolean): Promise<boolean> {
  const r = await plane().kubectl(['get', kind, name, '-o', 'name', ...(namespaced ? ['-n', NS] : [])], { allowFailure: true });
  if (r.exitCode !== 0 && !/NotFound|not found/.test(r.stderr)) throw new Error(`kubectl get ${kind} ${name}: ${r.stderr}`);
  return r.exitCode === 0;
}

/** `kubectl auth can-i` as a ServiceAccount: true for yes, false for no. */
async function canI(user: string, args: string[]): Promise<boolean> {
  const r = await plane().kubectl(['auth', 'can-i', `--as=${user}`, ...args], { allowFailure: true });
  const answer = r.stdout.trim().split('\n').at(-1);
  if (answer !== 'yes' && answer !== 'no') throw new Error(`kubectl auth can-i ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return answer === 'yes';
}

describe('charts/xdplb', () => {
  // That its crds/ are crds/, byte for byte (both generated from src/api), is test/unit/crds-generated.test.ts.

  it('passes helm lint', async () => {
    const r = await plane().helm(['lint', CHART]);
    expect(r.stdout).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  it('renders objects the API server accepts (server-side dry run)', async () => {
    const c = plane();
    await c.kubectl(['create', 'namespace', 'xdplb-dry-run']);
    const { stdout } = await c.helm(['template', RELEASE, CHART, '--namespace', 'xdplb-dry-run']);
    expect(kinds(stdout).sort()).toEqual(
      ['ClusterRole', 'ClusterRole', 'ClusterRoleBinding', 'ClusterRoleBinding', 'DaemonSet', 'DaemonSet', 'Deployment', 'PodDisruptionBudget',
        'Role', 'Role', 'RoleBinding', 'RoleBinding', 'Service', 'Service', 'ServiceAccount', 'ServiceAccount'],
    );
    const r = await c.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: stdout });
    expect(r.stdout).toMatch(/deployment\.apps\/xdplb-operator created \(server dry run\)/);
    expect(r.stdout).toMatch(/daemonset\.apps\/xdplb-agent created \(server dry run\)/);
    expect(r.stdout).toMatch(/daemonset\.apps\/xdplb-decap created \(server dry run\)/);
  });

  it('renders the ServiceMonitor only when serviceMonitor.enabled', async () => {
    const c = plane();
    expect(kinds((await c.helm(['template', RELEASE, CHART, '-n', NS])).stdout)).not.toContain('ServiceMonitor');
    const on = (await c.helm(['template', RELEASE, CHART, '-n', NS, '--set', 'serviceMonitor.enabled=true'])).stdout;
    expect(kinds(on).filter((k) => k === 'ServiceMonitor')).toHaveLength(2); // agents and operator
    expect(on).toContain('apiVersion: monitoring.coreos.com/v1');
  });

  it('renders the decap role unless decap.enabled is false: a second DaemonSet off the load-balancer nodes, interface auto, the agent ServiceAccount, its owner check allowed', async () => {
    const c = plane();
    expect((await c.helm(['template', RELEASE, CHART, '-n', NS, '--set', 'decap.enabled=false'])).stdout).not.toContain('xdplb-decap');
    const on = (await c.helm(['template', RELEASE, CHART, '--namespace', 'xdplb-dry-run'])).stdout;
    expect(kinds(on).filter((k) => k === 'DaemonSet')).toHaveLength(2);
    expect(on).toMatch(/- agent\n\s+- --role\n\s+- decap\n\s+- --kubernetes\n\s+- --interface\n\s+- "auto"/);
    expect(on).toMatch(/resourceNames: \[xdplb-agent, xdplb-decap\]/);
    const decap = on.split(/^---$/m).find((d) => d.includes('name: xdplb-decap') && d.includes('kind: DaemonSet'))!;
    expect(decap).toMatch(/- key: xdplb\.io\/load-balancer\n\s+operator: DoesNotExist/);
  });

  it.each([
    ['decap.interface=', /decap\/interface/],
    ['decap.statusPort=0', /decap\/statusPort/],
    ['operator.replicas=0', /operator\/replicas/],
    ['operator.heapMiB=16', /operator\/heapMiB/],
    ['operator.replicas=-1', /operator\/replicas/],
    ['agent.interface=', /agent\/interface/],
    ['agent.metricsPort=70000', /agent\/metricsPort/],
    ['agent.metricsPort=0', /agent\/metricsPort/],
    ['agent.xdpMode=turbo', /agent\/xdpMode/],
    ['agent.pinDir=/tmp/pins', /agent\/pinDir/],
  ])('refuses --set %s, naming the field', async (set, field) => {
    const r = await plane().helm(['template', RELEASE, CHART, '-n', NS, '--set', set], { allowFailure: true });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/values don't meet the specifications of the schema/);
    expect(r.stderr).toMatch(field);
  });

  it('refuses a value the schema does not know (a typo)', async () => {
    const r = await plane().helm(['template', RELEASE, CHART, '-n', NS, '--set', 'operator.replica=3'], { allowFailure: true });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/replica/);
  });

  describe('installed', () => {
    beforeAll(async () => {
      const r = await plane().helm(['install', RELEASE, CHART, '--namespace', NS, '--create-namespace']);
      expect(r.stdout).toMatch(/kubectl label node <node> xdplb\.io\/load-balancer=true/);
    });

    it('creates the CRDs and every object', async () => {
      for (const crd of CRDS) expect(await exists('customresourcedefinition', crd, false), crd).toBe(true);
      for (const [kind, name, namespaced] of OBJECTS) expect(await exists(kind, name, namespaced), `${kind}/${name}`).toBe(true);
    });

    it('runs the operator leader-elected, non-root with a read-only root filesystem', async () => {
      const d = await get<Workload>('deployment', 'xdplb-operator');
      expect(d.spec.replicas).toBe(2);
      const pod = d.spec.template.spec;
      expect(pod.serviceAccountName).toBe('xdplb-operator');
      const c = pod.containers[0]!;
      expect(c.args.slice(0, 3)).toEqual(['operator', '--namespace', NS]);
      expect(c.args.join(' ')).toContain('--leader-elect true');
      expect(c.env?.find((e) => e.name === 'POD_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name');
      expect(c.env?.find((e) => e.name === 'POD_NAMESPACE')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.namespace');
      // Regression: a second `env:` key in the template dropped the heap cap from the object the API server stored.
      expect(c.env?.find((e) => e.name === 'NODE_OPTIONS')).toEqual({ name: 'NODE_OPTIONS', value: '--max-old-space-size=768' });
      expect(c.securityContext).toMatchObject({
        runAsNonRoot: true,
        runAsUser: 65532,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(c.securityContext.capabilities?.add).toBeUndefined();
      expect(c.livenessProbe).toMatchObject({ httpGet: { path: '/healthz', port: 'health' } });
      expect((c as { readinessProbe?: unknown }).readinessProbe).toMatchObject({ httpGet: { path: '/readyz', port: 'health' } });
      expect(c.args.join(' ')).toContain('--health-address 0.0.0.0:8081');
      expect(c.resources?.requests).toBeDefined();
      expect(c.resources?.limits).toBeDefined();
      const pdb = await get<{ spec: { minAvailable: number } }>('poddisruptionbudget', 'xdplb-operator');
      expect(pdb.spec.minAvailable).toBe(1);
    });

    it('runs the agent unprivileged on the host network with exactly BPF, NET_ADMIN and PERFMON', async () => {
      const ds = await get<Workload>('daemonset', 'xdplb-agent');
      expect(ds.spec.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } });
      const pod = ds.spec.template.spec;
      expect(pod.hostNetwork).toBe(true);
      expect(pod.dnsPolicy).toBe('ClusterFirstWithHostNet');
      expect(pod.nodeSelector).toEqual({ 'xdplb.io/load-balancer': 'true' });
      expect(pod.serviceAccountName).toBe('xdplb-agent');
      const c = pod.containers[0]!;
      expect(c.args.join(' ')).toContain(`agent --kubernetes --interface eth0 --xdp-mode auto --node-name $(NODE_NAME) --namespace ${NS} --owner-daemonset xdplb-agent --metrics-address 0.0.0.0:9477`);
      expect(c.env?.find((e) => e.name === 'NODE_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('spec.nodeName');
      const sc = c.securityContext;
      expect(sc.privileged ?? false).toBe(false);
      expect(sc.allowPrivilegeEscalation).toBe(false);
      expect(sc.runAsUser).toBe(0);
      expect([...(sc.capabilities?.add ?? [])].sort()).toEqual(['BPF', 'NET_ADMIN', 'PERFMON']);
      expect(sc.capabilities?.drop).toEqual(['ALL']);
      expect(sc.seccompProfile?.type).toBe('RuntimeDefault');
      // bpffs from the host, so pins outlive the pod; no Bidirectional (it needs privileged).
      const bpffs = pod.volumes?.find((v) => v.hostPath?.path === '/sys/fs/bpf');
      expect(bpffs?.hostPath?.type).toBe('Directory');
      const mount = c.volumeMounts?.find((m) => m.name === bpffs?.name);
      expect(mount).toMatchObject({ mountPath: '/sys/fs/bpf', mountPropagation: 'HostToContainer' });
      expect(c.livenessProbe).toMatchObject({ httpGet: { path: '/healthz', port: 'metrics' } });
    });

    it('serves the agent metrics through a headless Service on the metrics port', async () => {
      const svc = await get<{ spec: { clusterIP: string; ports: Array<{ port: number }>; selector: Record<string, string> } }>('service', 'xdplb-agent-metrics');
      expect(svc.spec.clusterIP).toBe('None');
      expect(svc.spec.ports.map((p) => p.port)).toEqual([9477]);
      expect(svc.spec.selector['app.kubernetes.io/component']).toBe('agent');
    });

    it('serves the operator metrics through a headless Service on its health port', async () => {
      const svc = await get<{ spec: { clusterIP: string; ports: Array<{ port: number; targetPort: string }>; selector: Record<string, string> } }>('service', 'xdplb-operator-metrics');
      expect(svc.spec.clusterIP).toBe('None');
      expect(svc.spec.ports.map((p) => [p.port, p.targetPort])).toEqual([[8081, 'health']]);
      expect(svc.spec.selector['app.kubernetes.io/component']).toBe('operator');
    });

    it.each([
      ['patch', 'loadbalancervips.xdplb.io', '--subresource=status', '-n', 'shop'],
      ['patch', 'loadbalancervips.xdplb.io', '-n', 'shop'],
      ['create', 'viptables.xdplb.io', '-n', 'shop'],
      ['delete', 'viptables.xdplb.io', '-n', 'shop'],
      ['patch', 'viptables.xdplb.io', '-n', 'shop'],
      ['watch', 'backends.xdplb.io', '--all-namespaces'],
      ['list', 'nodereports.xdplb.io', '-n', NS],
      ['create', 'leases.coordination.k8s.io', '-n', NS],
      ['update', 'leases.coordination.k8s.io', '-n', NS],
      ['list', 'endpointslices.discovery.k8s.io', '--all-namespaces'],
      ['watch', 'nodes'],
      ['create', 'events', '-n', 'shop'],
      // Services of type LoadBalancer: their address, from VipPools, and a LoadBalancerVip per address.
      ['watch', 'services', '--all-namespaces'],
      ['patch', 'services', '--subresource=status', '-n', 'shop'],
      ['watch', 'namespaces'],
      ['watch', 'vippools.xdplb.io'],
      ['patch', 'vippools.xdplb.io', '--subresource=status'],
      ['create', 'loadbalancervips.xdplb.io', '-n', 'shop'],
      ['delete', 'loadbalancervips.xdplb.io', '-n', 'shop'],
    ])('lets the operator %s %s %s', async (...args) => {
      expect(await canI(OPERATOR_SA, args)).toBe(true);
    });

    it.each([
      ['get', 'secrets', '-n', NS],
      ['list', 'secrets', '--all-namespaces'],
      ['create', 'pods', '--subresource=exec', '-n', NS],
      ['create', 'pods', '-n', NS],
      ['delete', 'nodes'],
      ['patch', 'nodes'],
      ['update', 'services', '-n', 'shop'],
      ['patch', 'vippools.xdplb.io'],
      ['update', 'backends.xdplb.io', '-n', 'shop'],
      ['create', 'leases.coordination.k8s.io', '-n', 'kube-system'],
      ['list', 'nodereports.xdplb.io', '-n', 'shop'],
      ['create', 'nodereports.xdplb.io', '-n', NS],
    ])('refuses the operator %s %s %s', async (...args) => {
      expect(await canI(OPERATOR_SA, args)).toBe(false);
    });

    it.each([
      ['list', 'viptables.xdplb.io', '--all-namespaces'],
      ['watch', 'loadbalancervips.xdplb.io', '--all-namespaces'],
      ['get', 'nodes'],
      ['watch', 'endpointslices.discovery.k8s.io', '--all-namespaces'],
      ['create', 'nodereports.xdplb.io', '-n', NS],
      ['get', 'nodereports.xdplb.io', '-n', NS],
      ['patch', 'nodereports.xdplb.io', '--subresource=status', '-n', NS],
      ['get', 'daemonsets.apps/xdplb-agent', '-n', NS],
    ])('lets the agent %s %s %s', async (...args) => {
      expect(await canI(AGENT_SA, args)).toBe(true);
    });

    it.each([
      ['get', 'secrets', '-n', NS],
      ['update', 'loadbalancervips.xdplb.io', '-n', 'shop'],
      ['patch', 'loadbalancervips.xdplb.io', '--subresource=status', '-n', 'shop'],
      ['create', 'viptables.xdplb.io', '-n', 'shop'],
      ['create', 'nodereports.xdplb.io', '-n', 'shop'],
      ['delete', 'nodereports.xdplb.io', '-n', NS],
      ['patch', 'nodereports.xdplb.io', '-n', NS],
      ['list', 'backends.xdplb.io', '--all-namespaces'],
      ['patch', 'nodes'],
      ['update', 'endpointslices.discovery.k8s.io', '-n', 'shop'],
      ['create', 'pods', '--subresource=exec', '-n', NS],
      ['get', 'daemonsets.apps/other', '-n', NS],
    ])('refuses the agent %s %s %s', async (...args) => {
      expect(await canI(AGENT_SA, args)).toBe(false);
    });

    it('upgrades with a changed value', async () => {
      const c = plane();
      await c.helm(['upgrade', RELEASE, CHART, '--namespace', NS, '--set', 'operator.replicas=3', '--set', 'agent.interface=bond0']);
      expect((await get<Workload>('deployment', 'xdplb-operator')).spec.replicas).toBe(3);
      const args = (await get<Workload>('daemonset', 'xdplb-agent')).spec.template.spec.containers[0]!.args;
      expect(args[args.indexOf('--interface') + 1]).toBe('bond0');
      const list = JSON.parse((await c.helm(['list', '-n', NS, '-o', 'json'])).stdout) as Array<{ name: string; revision: string; status: string }>;
      expect(list).toMatchObject([{ name: RELEASE, revision: '2', status: 'deployed' }]);
    });

    it('refuses an upgrade with bad values and leaves the release as it was', async () => {
      const r = await plane().helm(['upgrade', RELEASE, CHART, '--namespace', NS, '--set', 'operator.replicas=0'], { allowFailure: true });
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toMatch(/operator\/replicas/);
      expect((await get<Workload>('deployment', 'xdplb-operator')).spec.replicas).toBe(3);
    });

    it('uninstalls every object and keeps the CRDs', async () => {
      await plane().helm(['uninstall', RELEASE, '--namespace', NS, '--wait', '--timeout', '60s']);
      for (const [kind, name, namespaced] of OBJECTS) expect(await exists(kind, name, namespaced), `${kind}/${name}`).toBe(false);
      for (const crd of CRDS) expect(await exists('customresourcedefinition', crd, false), crd).toBe(true);
    });
  });
});
