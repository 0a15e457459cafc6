// tables.ts: what the operator published for a VIP, read back through the
// API as an agent reads it (api/table-index.ts): every VipTable of the
// namespace, the VIP's uid, its tables by generation, and the newest whole
// one assembled and digest-checked. For tests and the demo.
import { candidateShards, TableIndex, type TableCandidate, type TableObject } from '../src/api/index.js';
import type { Table } from '../src/core/maglev.js';
import { assembleShards } from '../src/core/table-shards.js';
import type { ControlPlane } from './control-plane.js';

export interface VipTables {
  /** Every VipTable of the namespace, indexed. */
  readonly index: TableIndex;
  /** The VIP's uid ('' when it does not exist). */
  readonly uid: string;
  /** Its tables, newest generation first. */
  readonly candidates: readonly TableCandidate[];
  /** The newest whole one, assembled and checked; null when none is. */
  readonly published: { table: Table; generation: number; digest: string } | null;
}

export async function vipTables(cp: Pick<ControlPlane, 'kubectl'>, namespace: string, vip: string): Promise<VipTables> {
  const tables = JSON.parse((await cp.kubectl(['-n', namespace, 'get', 'viptables', '-o', 'json'])).stdout) as { items: TableObject[] };
  const got = await cp.kubectl(['-n', namespace, 'get', 'loadbalancervip', vip, '-o', 'jsonpath={.metadata.uid}'], { allowFailure: true });
  const uid = got.exitCode === 0 ? got.stdout.trim() : '';
  const index = TableIndex.of(tables.items);
  const candidates = index.candidates(namespace, vip, uid);
  const newest = candidates.find((c) => c.whole);
  return { index, uid, candidates, published: newest === undefined ? null : assembleShards(candidateShards(newest, `${namespace}/${vip}`)) };
}
