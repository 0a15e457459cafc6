// conditions.ts: status conditions as apimachinery's meta.SetStatusCondition
// keeps them: one entry per type, CamelCase reasons, lastTransitionTime moved
// only when the status changes, observedGeneration per condition. Pure: the
// time is passed in.

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  readonly type: string;
  readonly status: ConditionStatus;
  readonly reason: string;
  readonly message: string;
  readonly observedGeneration: number;
  readonly lastTransitionTime: string;
}

export type ConditionInput = Omit<Condition, 'lastTransitionTime'>;

/** The conditions with `next` set: transition time kept unless the status changed. */
export function setCondition(conditions: readonly Condition[], next: ConditionInput, now: Date): Condition[] {
  const existing = conditions.find((c) => c.type === next.type);
  const lastTransitionTime = existing !== undefined && existing.status === next.status ? existing.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const updated: Condition = { ...next, lastTransitionTime };
  return existing === undefined ? [...conditions, updated] : conditions.map((c) => (c.type === next.type ? updated : c));
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** Conditions whose status flipped between two lists (for Events on transitions only). */
export function transitions(before: readonly Condition[], after: readonly Condition[]): Condition[] {
  return after.filter((a) => before.find((b) => b.type === a.type)?.status !== a.status);
}

/** Deep equality of plain JSON values (status objects), key order ignored. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => jsonEqual(x, bb[i]));
  }
  const ka = Object.keys(a as object).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b as object).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}
