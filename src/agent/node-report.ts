// node-report.ts: how an agent writes its NodeReport, in either role: the
// status patched, and the report created only when it is missing (one round
// trip on the failover path, where a report follows every health change).
// Also whether the agent's own DaemonSet is going (an uninstall), which
// decides if SIGTERM takes the datapath down with it.
import { AppsV1Api } from '@kubernetes/client-node';
import { API_VERSION, PLURALS } from '../api/coordinates.js';
import { statusCode, type Kube, type Obj } from '../kube/k8s.js';

/** Patches NodeReport `namespace/name`'s status to `status`, creating the report with `spec` first if it is missing. */
export async function writeNodeReport(kube: Kube, namespace: string, name: string, spec: { readonly node: string; readonly role?: 'LoadBalancer' | 'Decap' }, status: Record<string, unknown>): Promise<void> {
  const patch = (): Promise<void> => kube.patchStatus(PLURALS.reports, namespace, name, status);
  try {
    await patch();
  } catch (e) {
    if (statusCode(e) !== 404) throw e;
    // Created meanwhile (a retry, or the report's last writer) is fine: the status is patched either way.
    await kube.createIfMissing(PLURALS.reports, namespace, { apiVersion: API_VERSION, kind: 'NodeReport', metadata: { name, namespace }, spec } as unknown as Obj);
    await patch();
  }
}

/** Whether DaemonSet `name` of `namespace` is gone or being deleted: then the agent's SIGTERM is an uninstall. */
export async function daemonSetGone(kube: Kube, namespace: string, name: string): Promise<{ gone: boolean; why: string }> {
  try {
    const ds = await kube.timed('get', 'daemonsets', () => kube.kc.makeApiClient(AppsV1Api).readNamespacedDaemonSet({ name, namespace }));
    return ds.metadata?.deletionTimestamp === undefined ? { gone: false, why: 'its DaemonSet stands' } : { gone: true, why: 'its DaemonSet is being deleted' };
  } catch (e) {
    const code = statusCode(e);
    if (code === 404) return { gone: true, why: 'its DaemonSet is gone' };
    if (code === 401 || code === 403) return { gone: true, why: `its credentials were revoked (${String(code)}) with the release` };
    return { gone: false, why: `the API server did not answer (${(e as Error).message})` };
  }
}
