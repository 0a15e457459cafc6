// node-delivery.test.ts: a Service delivered through its nodes
// (backends.service.delivery Nodes, core/vip-decision.ts): with Local the
// backends are the nodes with ready endpoints, weighted by how many, a node
// with only terminating endpoints drains; with Cluster every delivering
// node, while some endpoint is ready; nodes not running the decap role, not
// Ready, or without an address of the VIP's family are never backends.
import { describe, expect, it } from 'vitest';
import type { Endpoint } from '../../src/core/endpoints.js';
import { decideBackends, type VipObject, type VipWorld, type WorkerNode } from '../../src/core/vip-decision.js';

const vip = (policy: 'Local' | 'Cluster', address = '203.0.113.10'): VipObject =>
  ({
    namespace: 'shop',
    name: 'svc.web.ipv4',
    generation: 1,
    creationTimestamp: '2026-11-28T00:00:00Z',
    spec: { address, ports: [{ protocol: 'TCP', port: 80 }], mode: 'ipip', hashing: { tableSize: 251, affinity: 'FiveTuple' }, backends: { service: { name: 'web', weight: 100, delivery: 'Nodes', externalTrafficPolicy: policy } } },
    conditions: [],
  }) as unknown as VipObject;

const workers: WorkerNode[] = [
  { name: 'w1', addresses: ['10.0.1.1', 'fd00::1'], delivers: true },
  { name: 'w2', addresses: ['10.0.1.2'], delivers: true },
  { name: 'w3', addresses: ['10.0.1.3'], delivers: true },
  // Not ready, or no decap role running: never a backend.
  { name: 'w4', addresses: ['10.0.1.4'], delivers: false },
];

let pods = 0;
const ep = (node: string, state: 'ready' | 'terminating' | 'out' = 'ready'): Endpoint => ({
  addresses: [`10.244.${node.slice(1)}.${++pods}`],
  nodeName: node,
  ready: state === 'ready',
  serving: state !== 'out',
  terminating: state === 'terminating',
});

const world = (v: VipObject, endpoints: Endpoint[]): VipWorld => ({ vip: v, allVips: [v], backends: [], endpointSlices: [{ namespace: 'shop', serviceName: 'web', endpoints }], nodes: [], workers, published: null, now: new Date(0) });
const weights = (w: VipWorld) => decideBackends(w).map((b) => [b.address, b.weight, b.state]);

describe('delivery through nodes', () => {
  it('Local: the nodes with ready endpoints, weighted by their count; a node with only terminating ones drains', () => {
    const endpoints = [ep('w1'), ep('w1'), ep('w1'), ep('w2'), ep('w3', 'terminating'), ep('w3', 'out'), ep('w4'), ep('w9')];
    expect(weights(world(vip('Local'), endpoints))).toEqual([
      ['10.0.1.1', 300, 'Serving'],
      ['10.0.1.2', 100, 'Serving'],
      ['10.0.1.3', 0, 'Draining'],
    ]);
  });

  it('Cluster: every node that delivers, while the Service has a ready endpoint anywhere', () => {
    expect(weights(world(vip('Cluster'), [ep('w9')]))).toEqual([
      ['10.0.1.1', 100, 'Serving'],
      ['10.0.1.2', 100, 'Serving'],
      ['10.0.1.3', 100, 'Serving'],
    ]);
    expect(weights(world(vip('Cluster'), [ep('w1', 'terminating')]))).toEqual([]);
  });

  it("an IPv6 VIP takes each node's IPv6 address; nodes without one are left out", () => {
    expect(weights(world(vip('Local', '2001:db8::10'), [ep('w1'), ep('w2')]))).toEqual([['fd00::1', 100, 'Serving']]);
  });
});
