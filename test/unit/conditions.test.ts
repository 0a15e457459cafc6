// conditions.test.ts: conditions keep their transition time unless their
// status changes, and transitions are reported once.
import { describe, expect, it } from 'vitest';
import { jsonEqual, setCondition, transitions } from '../../src/core/conditions.js';

const t1 = new Date('2026-11-22T10:00:00.123Z');
const t2 = new Date('2026-11-22T11:00:00Z');

describe('conditions', () => {
  it('adds, updates in place, and moves lastTransitionTime only on a status change', () => {
    let c = setCondition([], { type: 'Ready', status: 'False', reason: 'NoBackends', message: 'no backend is ready', observedGeneration: 1 }, t1);
    expect(c).toEqual([{ type: 'Ready', status: 'False', reason: 'NoBackends', message: 'no backend is ready', observedGeneration: 1, lastTransitionTime: '2026-11-22T10:00:00Z' }]);
    c = setCondition(c, { type: 'Ready', status: 'False', reason: 'Programming', message: 'waiting for nodes', observedGeneration: 2 }, t2);
    expect(c[0]!.lastTransitionTime).toBe('2026-11-22T10:00:00Z');
    expect(c[0]!.reason).toBe('Programming');
    const before = c;
    c = setCondition(c, { type: 'Ready', status: 'True', reason: 'Programmed', message: 'ok', observedGeneration: 2 }, t2);
    expect(c[0]!.lastTransitionTime).toBe('2026-11-22T11:00:00Z');
    expect(transitions(before, c).map((x) => x.type)).toEqual(['Ready']);
    expect(transitions(c, c)).toEqual([]);
  });

  it('compares status objects regardless of key order and undefined fields', () => {
    expect(jsonEqual({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1, d: undefined })).toBe(true);
    expect(jsonEqual({ a: 1 }, { a: 2 })).toBe(false);
    expect(jsonEqual([1, 2], [2, 1])).toBe(false);
  });
});
