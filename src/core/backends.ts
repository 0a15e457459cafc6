// backends.ts: a backend set as the table computation sees it: stable keys and
// integer weights, validated and put in canonical (key) order, so the same set
// in any input order yields the same table.

import { ErrorCodes, XdplbError } from './errors.js';

export interface BackendWeight {
  /** Stable identity of the backend (for example its address); hashed for Maglev. */
  readonly key: string;
  /** Relative share of the table; 0 drains the backend (no slots). */
  readonly weight: number;
}

/** Largest weight accepted: keeps size * weight sums exact in doubles. */
export const MAX_WEIGHT = 1_000_000;
/** Largest number of backends one table can index (u32 slots; practical bound). */
export const MAX_BACKENDS = 65_536;
export const MAX_KEY_BYTES = 253;

function compareKeys(a: string, b: string): number {
  // Code-unit order, not locale order: identical on every machine.
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Validates a backend set and returns it sorted by key. Throws BAD_BACKENDS
 * naming the first problem: no backend, empty or duplicate key, a weight that
 * is not an integer in [0, MAX_WEIGHT], or every weight 0.
 */
export function canonicalBackends(input: readonly BackendWeight[]): readonly BackendWeight[] {
  if (input.length === 0) throw new XdplbError(ErrorCodes.BAD_BACKENDS, 'no backend given');
  if (input.length > MAX_BACKENDS) {
    throw new XdplbError(ErrorCodes.BAD_BACKENDS, `${input.length} backends exceed the maximum of ${MAX_BACKENDS}`);
  }
  const sorted = input.map((b) => ({ key: b.key, weight: b.weight })).sort((a, b) => compareKeys(a.key, b.key));
  let total = 0;
  for (let i = 0; i < sorted.length; i++) {
    const b = sorted[i]!;
    if (typeof b.key !== 'string' || b.key.length === 0) {
      throw new XdplbError(ErrorCodes.BAD_BACKENDS, 'backend key must be a non-empty string');
    }
    if (Buffer.byteLength(b.key, 'utf8') > MAX_KEY_BYTES) {
      throw new XdplbError(ErrorCodes.BAD_BACKENDS, `backend key "${b.key.slice(0, 40)}..." is longer than ${MAX_KEY_BYTES} bytes`);
    }
    if (i > 0 && sorted[i - 1]!.key === b.key) {
      throw new XdplbError(ErrorCodes.BAD_BACKENDS, `duplicate backend key "${b.key}"`);
    }
    if (!Number.isInteger(b.weight) || b.weight < 0 || b.weight > MAX_WEIGHT) {
      throw new XdplbError(
        ErrorCodes.BAD_BACKENDS,
        `backend "${b.key}" has weight ${String(b.weight)}; weights are integers from 0 to ${MAX_WEIGHT}`,
      );
    }
    total += b.weight;
  }
  if (total === 0) throw new XdplbError(ErrorCodes.BAD_BACKENDS, 'every backend has weight 0: nothing can take traffic');
  return sorted;
}
