// failover-model.test.ts: what the failover thread marks down on its own
// (core/failover-model.ts): backends whose probe fails or whose endpoint is
// out, never every serving backend of a VIP (fail open), never one already
// down, nothing when route-around is off.
import { describe, expect, it } from 'vitest';
import { downWrites, type FailoverModel } from '../../src/core/failover-model.js';

const model = (enabled = true): FailoverModel => ({
  enabled,
  vips: [
    { name: 'shop/web', serving: [{ address: '10.0.0.1', probe: 'tcp|10.0.0.1|80', out: false }, { address: '10.0.0.2', probe: 'tcp|10.0.0.2|80', out: false }] },
    { name: 'shop/api', serving: [{ address: '10.0.0.2', probe: null, out: false }, { address: '10.0.0.3', probe: null, out: true }] },
    { name: 'shop/solo', serving: [{ address: '10.0.0.4', probe: 'tcp|10.0.0.4|80', out: false }] },
  ],
  indexOf: [['10.0.0.1', 0], ['10.0.0.2', 1], ['10.0.0.3', 2], ['10.0.0.4', 3]],
  down: [],
});

describe('downWrites', () => {
  it('marks a failing probe and an out endpoint down, each once, and fails open per VIP', () => {
    const failing = new Set(['tcp|10.0.0.1|80', 'tcp|10.0.0.4|80']);
    const measured = (probe: string): boolean | null => !failing.has(probe);
    // 10.0.0.4 is the only backend of shop/solo: kept up (fail open).
    expect(downWrites(model(), measured, new Set())).toEqual([{ address: '10.0.0.1', index: 0 }, { address: '10.0.0.3', index: 2 }]);
    expect(downWrites(model(), measured, new Set([0]))).toEqual([{ address: '10.0.0.3', index: 2 }]);
    expect(downWrites(model(false), measured, new Set())).toEqual([]);
  });

  it('a backend failing for one VIP is down for every VIP (one write), unless that leaves a VIP with none', () => {
    const measured = (probe: string): boolean | null => probe !== 'tcp|10.0.0.2|80';
    // 10.0.0.2 fails its probe for shop/web; shop/api's other backend is out: 10.0.0.2 would leave api empty.
    expect(downWrites(model(), measured, new Set())).toEqual([]);
  });

  it('an idle backend (weight 0, no slots) failing is marked down too, and never counted to fail open', () => {
    const m: FailoverModel = {
      enabled: true,
      vips: [
        // The operator took 10.0.0.1 out (weight 0); a table from before may still give it slots.
        { name: 'shop/web', serving: [{ address: '10.0.0.1', probe: 'p1', out: false, idle: true }, { address: '10.0.0.2', probe: 'p2', out: false }] },
      ],
      indexOf: [['10.0.0.1', 0], ['10.0.0.2', 1]],
      down: [],
    };
    expect(downWrites(m, (p) => p !== 'p1', new Set())).toEqual([{ address: '10.0.0.1', index: 0 }]);
    // 10.0.0.2, the one serving backend, failing alone: kept up (fail open); the idle one does not count as up.
    expect(downWrites(m, (p) => p !== 'p2', new Set())).toEqual([]);
    expect(downWrites(m, () => false, new Set())).toEqual([{ address: '10.0.0.1', index: 0 }]);
  });
});
