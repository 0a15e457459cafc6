// claims.test.ts: who may serve an (address, protocol, port) (core/claims.ts).
// findConflicts, the agent's all-at-once form, finds exactly the VIPs that
// findConflict finds one at a time, on random sets of claims.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { findConflict, findConflicts, type VipClaim } from '../../src/core/claims.js';

const port = fc.oneof(
  fc.record({ protocol: fc.constantFrom('TCP' as const, 'UDP' as const), port: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ protocol: fc.constantFrom('TCP' as const, 'UDP' as const), allPorts: fc.constant(true) }),
);
const claims = fc.uniqueArray(
  fc.record({
    id: fc.constantFrom('a/1', 'a/2', 'b/1', 'b/2', 'c/1', 'c/2', 'd/1'),
    address: fc.constantFrom('192.0.2.1', '192.0.2.01', '2001:db8::1', '2001:db8:0::1', '192.0.2.2'),
    creationTimestamp: fc.constantFrom('2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z', '2026-01-01T00:00:02Z'),
    ports: fc.array(port, { minLength: 1, maxLength: 3 }),
  }),
  { selector: (c) => c.id, maxLength: 7 },
);

describe('claims', () => {
  it('findConflicts finds the VIPs findConflict finds, each contested by an older claim on its address', () => {
    fc.assert(
      fc.property(claims, (all: VipClaim[]) => {
        const many = findConflicts(all);
        for (const c of all) {
          const one = findConflict(c, all);
          expect(many.has(c.id), c.id).toBe(one !== null);
          const holder = all.find((o) => o.id === many.get(c.id)?.with);
          // The holder named is an older claim on the same address that contests c.
          if (many.has(c.id)) expect(holder !== undefined && findConflict(c, [holder]) !== null).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('an older claim on every port of a protocol contests any port of it, and the reverse', () => {
    const old: VipClaim = { id: 'a/old', address: '192.0.2.1', creationTimestamp: '2026-01-01T00:00:00Z', ports: [{ protocol: 'TCP', allPorts: true }] };
    const young: VipClaim = { id: 'a/young', address: '192.0.2.1', creationTimestamp: '2026-01-02T00:00:00Z', ports: [{ protocol: 'TCP', port: 80 }] };
    expect(findConflicts([young, old])).toEqual(new Map([['a/young', { with: 'a/old', claim: '192.0.2.1 TCP/80' }]]));
    expect(findConflicts([{ ...young, creationTimestamp: '2025-12-31T00:00:00Z' }, old]).get('a/old')?.with).toBe('a/young');
    expect(findConflicts([{ ...young, ports: [{ protocol: 'UDP', port: 80 }] }, old]).size).toBe(0);
  });
});
