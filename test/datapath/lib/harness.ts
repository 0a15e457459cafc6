// harness.ts: loads the built XDP objects through the same loader the agent
// uses, programs the load balancer's maps through the agent's own path
// (planDatapath, then MapWriter.apply), and runs frames through
// BPF_PROG_TEST_RUN (repeat 1), returning the verdict, the output frame and
// the reason counters that moved.

import { resolve } from 'node:path';
import { reasonDelta, readReasons, lbMaps, decapMaps, type LbMaps, type DecapMaps } from '../../../src/bpf/datapath.js';
import { BpfObject, verdictName, type BpfProgram, type Verdict } from '../../../src/bpf/loader.js';
import { MapWriter, type ControlSettings } from '../../../src/bpf/map-writer.js';
import { planDatapath, type DesiredDatapath, type Plan } from '../../../src/core/datapath-plan.js';
import type { ReasonName } from '../../../src/bpf/abi.js';

export const BUILD_DIR = resolve(import.meta.dirname, '../../../bpf/build');

export { verdictName, type Verdict } from '../../../src/bpf/loader.js';

export interface RunResult {
  verdict: Verdict;
  out: Buffer;
  reasons: Partial<Record<ReasonName, number>>;
}

export class LbHarness {
  readonly obj: BpfObject;
  readonly maps: LbMaps;
  readonly writer: MapWriter;
  readonly prog: BpfProgram;
  private readonly progFd: number;

  constructor() {
    this.obj = BpfObject.load(resolve(BUILD_DIR, 'xdp_lb.o'));
    this.maps = lbMaps(this.obj);
    this.writer = new MapWriter(this.maps);
    this.prog = this.obj.program('xdp_lb');
    this.progFd = this.prog.fd;
  }

  /**
   * Converges the maps to `desired` as an agent pass does (src/agent/engine.ts):
   * read what the maps hold, plan against it, apply the plan. Throws when the
   * plan refuses a VIP: a test means every VIP it asks for.
   */
  program(desired: DesiredDatapath, control: ControlSettings): Plan {
    const before = this.writer.readImage();
    const plan = planDatapath(before, desired, this.writer.capacities());
    if (plan.refused.size > 0) throw new Error(`the plan refused ${[...plan.refused].map(([name, why]) => `${name} (${why})`).join(', ')}`);
    this.writer.apply(before, plan.ops, control);
    return plan;
  }

  /** Run one frame; `reasons` are the counter deltas (read only when asked: it costs a map walk). */
  run(frame: Uint8Array, withReasons = true): RunResult {
    const before = withReasons ? readReasons(this.maps.reasonStats) : undefined;
    const r = this.prog.testRun({ data: frame, repeat: 1, dataOutSize: frame.length + 2048 });
    const reasons = before === undefined ? {} : reasonDelta(before, readReasons(this.maps.reasonStats));
    return { verdict: verdictName(r.retval), out: r.data, reasons };
  }

  /** Run without reading counters (hot loops). */
  runFast(frame: Uint8Array): { verdict: Verdict; out: Buffer } {
    const r = this.prog.testRun({ data: frame, repeat: 1, dataOutSize: frame.length + 2048 });
    return { verdict: verdictName(r.retval), out: r.data };
  }

  get fd(): number {
    return this.progFd;
  }

  close(): void {
    this.obj.close();
  }
}

export class DecapHarness {
  readonly obj: BpfObject;
  readonly maps: DecapMaps;
  readonly prog: BpfProgram;

  constructor() {
    this.obj = BpfObject.load(resolve(BUILD_DIR, 'xdp_decap.o'));
    this.maps = decapMaps(this.obj);
    this.prog = this.obj.program('xdp_decap');
  }

  run(frame: Uint8Array): RunResult {
    const before = readReasons(this.maps.stats);
    const r = this.prog.testRun({ data: frame, repeat: 1 });
    return { verdict: verdictName(r.retval), out: r.data, reasons: reasonDelta(before, readReasons(this.maps.stats)) };
  }

  close(): void {
    this.obj.close();
  }
}
