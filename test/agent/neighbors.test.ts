// neighbors.test.ts: MAC resolution from the kernel's route and neighbour
// tables, in real network namespaces: on-link, behind a gateway, unanswered.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NeighborResolver } from '../../src/agent/neighbors.js';
import { Lab, macOf, type Netns } from '../../lab/netns.js';

let lab: Lab;
let lb: Netns;
let be: Netns;
let resolver: NeighborResolver;

beforeAll(() => {
  lab = new Lab();
  lb = lab.ns('nb-lb');
  be = lab.ns('nb-be');
  lab.link(lb, 'eth0', be, 'eth0');
  lb.ip('addr', 'add', '10.9.0.1/24', 'dev', 'eth0');
  be.ip('addr', 'add', '10.9.0.2/24', 'dev', 'eth0');
  lb.ip('route', 'add', '10.10.0.0/24', 'via', '10.9.0.2');
  lb.ip('link', 'add', 'other', 'type', 'veth', 'peer', 'name', 'other-peer');
  lb.ip('addr', 'add', '10.11.0.1/24', 'dev', 'other');
  lb.ip('link', 'set', 'other', 'up');
  resolver = new NeighborResolver({
    interfaceName: 'eth0',
    ip: async (args) => lb.ip(...args),
    // The kernel resolves in the namespace that sends: send from inside it.
    trigger: async (address) => {
      lb.run(process.execPath, ['-e', `const s=require('dgram').createSocket('udp4');s.send(Buffer.alloc(0),9,${JSON.stringify(address)},()=>s.close())`]);
    },
    resolveTimeoutMs: 1500,
  });
});

afterAll(() => lab?.destroy());

describe('neighbour resolution', () => {
  it('resolves an on-link backend to its own MAC, triggering ARP when the entry is missing', async () => {
    expect(JSON.parse(lb.ip('-j', 'neigh', 'show', 'dev', 'eth0'))).toEqual([]);
    const r = await resolver.resolve('10.9.0.2', true);
    expect(r).toEqual({ ok: true, mac: macOf(be, 'eth0'), nextHop: '10.9.0.2' });
  });

  it('resolves a routed backend to its gateway for ipip, and refuses it for l2dsr', async () => {
    expect(await resolver.resolve('10.10.0.5', false)).toEqual({ ok: true, mac: macOf(be, 'eth0'), nextHop: '10.9.0.2' });
    const r = await resolver.resolve('10.10.0.5', true);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toMatch(/behind gateway 10\.9\.0\.2/);
  });

  it('reports an address nobody answers for, instead of guessing', async () => {
    const r = await resolver.resolve('10.9.0.77', true);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toMatch(/ARP\/ND unanswered/);
  });

  it('reports a backend whose route leaves by another interface', async () => {
    const r = await resolver.resolve('10.11.0.9', false);
    expect(!r.ok && r.reason).toMatch(/leaves via other, not eth0/);
  });
});
