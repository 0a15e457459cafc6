// desired-state.test.ts: serving backends are resolved, healthy and weighted;
// a backend that fails its probes leaves with exactly its slots; every probe
// failing fails open; nothing resolved means no table.
import { describe, expect, it } from 'vitest';
import { DesiredMemo, desiredState, featuresOf, tableFromImage, type Observations, type VipSpec } from '../../src/core/desired-state.js';
import { buildTable, slotCounts, type Table } from '../../src/core/maglev.js';

const vip: VipSpec = {
  name: 'web',
  address: '192.0.2.10',
  ports: [{ port: 80, protocol: 'TCP' }],
  mode: 'ipip',
  affinity: 'fiveTuple',
  flowTable: false,
  tableSize: 4093,
  backends: [
    { address: '10.0.0.1', weight: 1 },
    { address: '10.0.0.2', weight: 1 },
    { address: '10.0.0.3', weight: 2 },
    { address: '10.0.0.4', weight: 0 },
  ],
};

function obs(o: Partial<{ down: string[]; unresolved: string[]; current: Table }>): Observations {
  return {
    healthy: (_v, a) => !(o.down ?? []).includes(a),
    mac: (a) => ((o.unresolved ?? []).includes(a) ? { ok: false, reason: 'no neighbour entry' } : { ok: true, mac: '02:00:00:00:00:09' }),
    currentTable: () => o.current,
  };
}

describe('desired state', () => {
  it('serves weighted, resolved, healthy backends; weight 0 is drained', () => {
    const { desired, status } = desiredState([vip], obs({}));
    const s = status[0]!;
    expect(s.backends.map((b) => [b.address, b.slots > 0, b.reason])).toEqual([
      ['10.0.0.1', true, null],
      ['10.0.0.2', true, null],
      ['10.0.0.3', true, null],
      ['10.0.0.4', false, 'drained (weight 0)'],
    ]);
    expect(s.digest).toMatch(/^sha256:/);
    expect(desired.vips[0]!.keys).toEqual([{ address: '192.0.2.10', port: 80, protocol: 'TCP' }]);
    expect(featuresOf({ mode: 'l2dsr', affinity: 'sourceIp', flowTable: true })).toEqual({ mode: 'l2dsr', affinity: 'sourceIp', flowTable: true });
    expect(desired.vips[0]!.features).toEqual({ mode: 'ipip', affinity: 'fiveTuple', flowTable: false });
  });

  it('a drained or unhealthy backend keeps its datapath entry, so flow-table flows to it continue (issue 11 item 5)', () => {
    const { desired } = desiredState([vip], obs({ down: ['10.0.0.2'] }));
    expect([...desired.backends.keys()].sort()).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']);
    expect(desired.backends.get('10.0.0.4')!.mac).toBe('02:00:00:00:00:09');
    expect(desired.vips[0]!.table!.owners).not.toContain('10.0.0.4');
  });

  it('a backend failing its probes leaves with exactly its slots (successor of the current table)', () => {
    const first = desiredState([vip], obs({}));
    const t = first.desired.vips[0]!.table!;
    const current: Table = { size: 4093, backends: t.owners.map((key) => ({ key, weight: 1 })), slots: t.content().slots };
    const before = slotCounts(current)[t.owners.indexOf('10.0.0.2')]!;
    const { status } = desiredState([vip], obs({ down: ['10.0.0.2'], current }));
    expect(status[0]!.moved).toBe(before);
    expect(status[0]!.backends[1]).toMatchObject({ healthy: false, reason: 'failed health checks', slots: 0 });
  });

  it('fails open when every resolved backend fails its probes', () => {
    const { status } = desiredState([vip], obs({ down: ['10.0.0.1', '10.0.0.2', '10.0.0.3'] }));
    expect(status[0]!.panic).toBe(true);
    expect(status[0]!.backends.filter((b) => b.slots > 0)).toHaveLength(3);
  });

  it('programs a VIP without table when no backend is resolved, saying why', () => {
    const { desired, status } = desiredState([vip], obs({ unresolved: ['10.0.0.1', '10.0.0.2', '10.0.0.3'] }));
    expect(desired.vips[0]!.table).toBeNull();
    expect(status[0]!.digest).toBeNull();
    expect(status[0]!.backends[0]!.reason).toBe('no neighbour entry');
  });

  it('rebuilds the current table from map indices', () => {
    const table = buildTable({ size: 251, backends: [{ key: '10.0.0.9', weight: 1 }, { key: '10.0.0.1', weight: 3 }] });
    const indexOf = new Map([['10.0.0.1', 7], ['10.0.0.9', 2]]);
    const slots = Uint32Array.from(table.slots, (i) => indexOf.get(table.backends[i]!.key)!);
    const addressOf = (i: number) => [...indexOf].find(([, v]) => v === i)?.[0];
    const back = tableFromImage(251, slots, addressOf)!;
    expect(back.backends.map((b) => b.key)).toEqual(['10.0.0.1', '10.0.0.9']);
    expect(Array.from(back.slots)).toEqual(Array.from(table.slots));
    expect(tableFromImage(251, slots, () => undefined)).toBeUndefined();
    expect(tableFromImage(250, slots, addressOf)).toBeUndefined();
  });

  it('memo: an unchanged VIP reuses its table (the wanted one, whatever the maps hold); changed inputs recompute it', () => {
    const memo = new DesiredMemo();
    const first = desiredState([vip], obs({}), memo).desired.vips[0]!.table!;
    const again = desiredState([vip], obs({}), memo).desired.vips[0]!.table!;
    expect(again.content().slots).toBe(first.content().slots); // reused, not recomputed
    expect(again.digest).toBe(first.digest);
    // An input changed (a backend goes down): recomputed.
    const down = desiredState([vip], obs({ down: ['10.0.0.1'] }), memo).desired.vips[0]!.table!;
    expect(down.content().slots).not.toBe(first.content().slots);
    expect(down.digest).not.toBe(first.digest);
    expect(desiredState([], obs({}), memo).status).toEqual([]);
    expect(memo.entries.size).toBe(0);
  });
});
