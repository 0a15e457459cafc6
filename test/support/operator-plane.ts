// operator-plane.ts: what the operator's control-plane tests share: a real
// kube-apiserver and etcd with the CRDs and the namespaces xdplb-system and
// shop, a client on it, the objects they apply (Backends labelled app=web,
// a VIP selecting them) and the table the operator published, read back
// through the API.
import { join } from 'node:path';
import { Kube, loadKubeConfig } from '../../src/kube/k8s.js';
import { startControlPlane, type ControlPlane } from '../../lab/control-plane.js';
import { vipTables } from '../../lab/tables.js';

const ROOT = join(import.meta.dirname, '../..');

/** A control plane with the CRDs installed and the namespaces xdplb-system and shop. */
export async function startOperatorPlane(): Promise<{ cp: ControlPlane; kube: Kube }> {
  const cp = await startControlPlane({ crdDir: join(ROOT, 'crds') });
  await cp.kubectl(['create', 'namespace', 'xdplb-system']);
  await cp.kubectl(['create', 'namespace', 'shop']);
  return { cp, kube: new Kube(loadKubeConfig(cp.kubeconfigPath)) };
}

/** The newest whole table published for a VIP, or null. */
export async function publishedTable(cp: ControlPlane, ns: string, vip: string) {
  return (await vipTables(cp, ns, vip)).published;
}

/** A Backend in shop labelled app=web, as YAML ending with a document separator. */
export const backendYaml = (name: string, address: string, weight = 100): string => `apiVersion: xdplb.io/v1alpha1
kind: Backend
metadata: { name: ${name}, namespace: shop, labels: { app: web } }
spec: { address: ${address}, weight: ${weight} }
---
`;

/** The VIP shop/`name` on 192.0.2.10:80 over the app=web Backends. */
export const webVipYaml = (name = 'web', tableSize = 251): string => `apiVersion: xdplb.io/v1alpha1
kind: LoadBalancerVip
metadata: { name: ${name}, namespace: shop }
spec:
  address: 192.0.2.10
  ports: [{ port: 80 }]
  hashing: { tableSize: ${tableSize} }
  backends: { selector: { matchLabels: { app: web } } }
`;
