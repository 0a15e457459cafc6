// failover-worker.ts: the agent's failover thread (a worker thread). It runs
// the node's health probes and, when a probe flips a backend to failing,
// marks the backend down in the datapath itself: one write to lb_backend_down
// through the map's fd, which the thread shares with the process. Nothing the
// main thread does (a reconcile pass over a thousand tables, a report, a
// resync) can delay a probe or that write. It only ever marks down; bringing
// a backend back is the main thread's pass, ordered after the tables. Every
// probe result and flip goes to the main thread, which mirrors the health
// state, updates its image of the maps and reconciles the rest.
import { parentPort, workerData } from 'node:worker_threads';
import { downWrites, EMPTY_FAILOVER_MODEL, type FailoverModel } from '../core/failover-model.js';
import type { HealthState } from '../core/health.js';
import { BpfMap, MapType } from '../bpf/loader.js';
import { HealthChecker, type HealthTarget } from './health-checker.js';
import type { ProbeResult } from './probe.js';

export interface FailoverWorkerData {
  readonly downFd: number;
  readonly maxEntries: number;
  /** Probe results are sent in batches this often (flips at once). */
  readonly flushMs: number;
}

export type ToWorker = { type: 'targets'; targets: HealthTarget[] } | { type: 'model'; model: FailoverModel } | { type: 'stop' };

export interface DownWrite {
  readonly address: string;
  readonly index: number;
  /** When the write completed (ms since the epoch). */
  readonly at: number;
}

export type FromWorker =
  | { type: 'probes'; results: { key: string; result: ProbeResult; state: HealthState }[] }
  | { type: 'flip'; key: string; healthy: boolean; result: ProbeResult; state: HealthState; writes: DownWrite[]; error: string | null };

const port = parentPort!;
const data = workerData as FailoverWorkerData;
const downMap = new BpfMap('lb_backend_down', data.downFd, MapType.ARRAY, 4, 4, data.maxEntries, false);
let model: FailoverModel = EMPTY_FAILOVER_MODEL;
let down = new Set<number>();
let batch: Extract<FromWorker, { type: 'probes' }>['results'] = [];

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

const checker: HealthChecker = new HealthChecker({
  onProbe: (key, result) => {
    batch.push({ key, result, state: checker.stateOf(key)! });
  },
  onChange: (key, healthy, result) => {
    const writes: DownWrite[] = [];
    let error: string | null = null;
    if (!healthy) {
      try {
        for (const w of downWrites(model, (probe) => checker.measured(probe), down)) {
          downMap.update(u32(w.index), u32(1));
          down.add(w.index);
          writes.push({ ...w, at: Date.now() });
        }
      } catch (e) {
        error = (e as Error).message; // the main thread's pass writes it instead
      }
    }
    const msg: FromWorker = { type: 'flip', key, healthy, result, state: checker.stateOf(key)!, writes, error };
    port.postMessage(msg);
  },
});

const flush = setInterval(() => {
  if (batch.length === 0) return;
  const msg: FromWorker = { type: 'probes', results: batch };
  batch = [];
  port.postMessage(msg);
}, data.flushMs);

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'targets':
      checker.setTargets(m.targets);
      return;
    case 'model':
      model = m.model;
      down = new Set(m.model.down);
      return;
    case 'stop':
      clearInterval(flush);
      checker.stop();
      port.close();
      return;
  }
});
