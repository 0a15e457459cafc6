// control-plane.test.ts: the real control plane of lab/control-plane.ts
// end to end: etcd + kube-apiserver start on loopback, kubectl and helm talk to
// them, RBAC is enforced, CRDs install, and stop() leaves no process or file.
// Needs the binaries of scripts/build-control-plane (run it first, or set
// XDPLB_BUILD_CONTROL_PLANE=1 to build from here: tens of minutes when cold).
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processesUsing, type ControlPlane } from '../../lab/control-plane.js';
import { usePlane } from '../support/plane.js';

const NOBODY = 'system:serviceaccount:default:nobody';
const building = process.env.XDPLB_BUILD_CONTROL_PLANE === '1';

const plane = usePlane({}, async (cp) => console.info(`control plane ready in ${cp.startSeconds.toFixed(2)} s at ${cp.server}`), building ? 90 * 60_000 : 180_000);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('control plane', () => {
  it('serves the pinned Kubernetes version to kubectl', async () => {
    const { stdout } = await plane().kubectl(['version', '-o', 'json']);
    const v = JSON.parse(stdout) as { clientVersion: { gitVersion: string }; serverVersion: { gitVersion: string } };
    const want = plane().binaries.versions.kubernetes;
    expect(v.clientVersion.gitVersion).toBe(want);
    expect(v.serverVersion.gitVersion).toBe(want);
  });

  it('stores a namespace and a ConfigMap', async () => {
    const c = plane();
    await c.kubectl(['create', 'namespace', 'xdplb-cp-test']);
    await c.kubectl(['-n', 'xdplb-cp-test', 'create', 'configmap', 'demo', '--from-literal=greeting=hello']);
    const { stdout } = await c.kubectl(['-n', 'xdplb-cp-test', 'get', 'configmap', 'demo', '-o', 'jsonpath={.data.greeting}']);
    expect(stdout).toBe('hello');
    const r = await c.request('GET', '/api/v1/namespaces/xdplb-cp-test/configmaps/demo');
    expect(r.status).toBe(200);
    expect((JSON.parse(r.body) as { data: Record<string, string> }).data).toEqual({ greeting: 'hello' });
  });

  it('enforces RBAC: an unprivileged service account is denied until a Role grants it', async () => {
    const c = plane();
    expect((await c.kubectl(['auth', 'can-i', 'get', 'secrets'])).stdout.trim()).toBe('yes');
    const denied = await c.kubectl(['auth', 'can-i', '--as', NOBODY, 'get', 'secrets'], { allowFailure: true });
    expect(denied.stdout.trim()).toBe('no');
    expect(denied.exitCode).toBe(1);

    const get = await c.kubectl(['--as', NOBODY, 'get', 'secrets'], { allowFailure: true });
    expect(get.exitCode).not.toBe(0);
    expect(get.stderr).toMatch(/Forbidden/);
    const raw = await c.request('GET', '/api/v1/namespaces/default/secrets', { headers: { 'Impersonate-User': NOBODY } });
    expect(raw.status).toBe(403);

    // RBAC is evaluated, not a blanket deny: a Role and binding let it read ConfigMaps of one namespace.
    await c.kubectl(['-n', 'xdplb-cp-test', 'create', 'role', 'cm-reader', '--verb=get,list', '--resource=configmaps']);
    await c.kubectl(['-n', 'xdplb-cp-test', 'create', 'rolebinding', 'nobody-cm-reader', '--role=cm-reader',
      '--serviceaccount=default:nobody']);
    const granted = await c.kubectl(['-n', 'xdplb-cp-test', 'auth', 'can-i', '--as', NOBODY, 'get', 'configmaps']);
    expect(granted.stdout.trim()).toBe('yes');
    const elsewhere = await c.kubectl(['-n', 'default', 'auth', 'can-i', '--as', NOBODY, 'get', 'configmaps'],
      { allowFailure: true });
    expect(elsewhere.stdout.trim()).toBe('no');
  });

  it('installs CRDs and serves their resources', async () => {
    const c = plane();
    const dir = join(c.dir, 'test-crds');
    await mkdir(dir);
    await writeFile(join(dir, 'widgets.yaml'), `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.test.xdplb.io
spec:
  group: test.xdplb.io
  scope: Namespaced
  names: { plural: widgets, singular: widget, kind: Widget }
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: { type: integer, minimum: 1 }
`);
    expect(await c.installCrds(dir)).toEqual(['customresourcedefinition.apiextensions.k8s.io/widgets.test.xdplb.io']);
    await c.kubectl(['apply', '-f', '-'], {
      input: 'apiVersion: test.xdplb.io/v1\nkind: Widget\nmetadata: {name: w1, namespace: xdplb-cp-test}\nspec: {size: 3}\n',
    });
    const { stdout } = await c.kubectl(['-n', 'xdplb-cp-test', 'get', 'widget', 'w1', '-o', 'jsonpath={.spec.size}']);
    expect(stdout).toBe('3');
    const bad = await c.kubectl(['apply', '-f', '-'], {
      input: 'apiVersion: test.xdplb.io/v1\nkind: Widget\nmetadata: {name: w2, namespace: xdplb-cp-test}\nspec: {size: 0}\n',
      allowFailure: true,
    });
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toMatch(/spec\.size/);
  });

  it('runs helm against it', async () => {
    const c = plane();
    const { stdout } = await c.helm(['version', '--short']);
    expect(stdout.trim()).toMatch(new RegExp(`^${c.binaries.versions.helm.replaceAll('.', '\\.')}\\b`));
    const list = await c.helm(['list', '--all-namespaces', '-o', 'json']);
    expect(JSON.parse(list.stdout)).toEqual([]);
  });

  it('stops without leaving a process or a file', async () => {
    const c = plane();
    const pids = Object.values(c.pids);
    expect(pids.every(alive)).toBe(true);
    const t = performance.now();
    await c.stop();
    console.info(`control plane stopped in ${((performance.now() - t) / 1000).toFixed(2)} s`);
    expect(pids.filter(alive)).toEqual([]);
    expect(existsSync(c.dir)).toBe(false);
    expect(processesUsing(c.dir)).toEqual([]);
    await c.stop(); // idempotent
  });
});
