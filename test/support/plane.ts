// plane.ts: one real control plane (etcd + kube-apiserver) for a test file:
// started before its tests, stopped after them, and reached through
// `plane()`, which fails clearly when the start failed.
import { afterAll, beforeAll } from 'vitest';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions } from '../../lab/control-plane.js';

export function usePlane(options: ControlPlaneOptions = {}, then: (cp: ControlPlane) => Promise<void> = async () => undefined, startTimeoutMs?: number): () => ControlPlane {
  let cp: ControlPlane | undefined;
  beforeAll(async () => {
    cp = await startControlPlane(options);
    await then(cp);
  }, startTimeoutMs);
  afterAll(async () => {
    await cp?.stop();
  });
  return () => {
    if (cp === undefined) throw new Error('control plane not started');
    return cp;
  };
}
