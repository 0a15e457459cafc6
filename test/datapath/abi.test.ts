// abi.test.ts: the TypeScript codecs of src/bpf/abi.ts against the BTF of the
// built objects (bpftool btf dump -j): every struct's size, every field's
// offset and size, no field missing on either side; the reason enum's names
// and numbers; the flag and constant #defines (the table slot packing too);
// the maps' key/value sizes; and what an older build's pinned maps open as.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as abi from '../../src/bpf/abi.js';
import { BUILD_DIR, LbHarness, DecapHarness } from './lib/harness.js';
import { FALLBACK_PROBES } from './lib/fixture.js';
import { checkDecapAbi, checkLbAbi, LB_MAP_NAMES, lbMapsBy, type LbMaps } from '../../src/bpf/datapath.js';
import { openPinnedMap, type BpfMap } from '../../src/bpf/loader.js';
import { featureBits, featuresOfBits } from '../../src/bpf/map-writer.js';
import { NO_BACKEND_INDEX } from '../../src/core/datapath-plan.js';
import { ErrorCodes, isXdplbError } from '../../src/core/errors.js';

interface BtfType {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  type_id?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
  values?: { name: string; val: number }[];
  nr_elems?: number;
}

function btf(object: string): Map<number, BtfType> {
  const json = execFileSync('bpftool', ['btf', 'dump', 'file', resolve(BUILD_DIR, object), '-j'], { encoding: 'utf8' });
  const types = (JSON.parse(json) as { types: BtfType[] }).types;
  return new Map(types.map((t) => [t.id, t]));
}

function sizeOf(types: Map<number, BtfType>, id: number): number {
  const t = types.get(id)!;
  switch (t.kind) {
    case 'TYPEDEF':
    case 'CONST':
    case 'VOLATILE':
      return sizeOf(types, t.type_id!);
    case 'ARRAY':
      return (t.nr_elems ?? 0) * sizeOf(types, t.type_id!);
    default:
      return t.size!;
  }
}

function structLayout(types: Map<number, BtfType>, name: string): abi.StructLayout {
  const t = [...types.values()].find((x) => x.kind === 'STRUCT' && x.name === name);
  if (t === undefined) throw new Error(`struct ${name} not in BTF`);
  const fields: Record<string, { offset: number; size: number }> = {};
  for (const m of t.members!) fields[m.name] = { offset: m.bits_offset / 8, size: sizeOf(types, m.type_id) };
  return { name, size: t.size!, fields };
}

const objectOf: Record<string, string> = { decap_key: 'xdp_decap.o', bench_tmpl: 'xdp_bench.o' };

describe('ABI: TypeScript codecs against BTF', () => {
  const cache = new Map<string, Map<number, BtfType>>();
  const typesOf = (o: string): Map<number, BtfType> => {
    if (!cache.has(o)) cache.set(o, btf(o));
    return cache.get(o)!;
  };

  for (const layout of abi.layouts) {
    it(`struct ${layout.name}: size and field offsets`, () => {
      const fromBtf = structLayout(typesOf(objectOf[layout.name] ?? 'xdp_lb.o'), layout.name);
      expect(layout).toEqual(fromBtf);
    });
  }

  it('every codec encodes exactly its struct size', () => {
    const a4 = Uint8Array.of(10, 0, 0, 1);
    expect(abi.encodeVipKey({ address: a4, port: 80, proto: 6 }).length).toBe(abi.vipKeyLayout.size);
    expect(abi.encodeVipMeta({ vipId: 1, flags: 2, tableSlot: 3, tableSize: 251 }).length).toBe(abi.vipMetaLayout.size);
    expect(abi.encodeBackend({ address: a4, flags: 1, mac: new Uint8Array(6) }).length).toBe(abi.backendLayout.size);
    expect(abi.encodeFlowKey({ src: a4, dst: a4, sport: 1, dport: 2, vipId: 3, proto: 6 }).length).toBe(abi.flowKeyLayout.size);
    expect(abi.encodeDecapKey(a4).length).toBe(abi.decapKeyLayout.size);
    expect(abi.encodeBenchTemplate({ frame: new Uint8Array(64), copyLen: 64, varyOffset: 0 }).length).toBe(abi.benchTmplLayout.size);
  });

  it('codecs round-trip', () => {
    const a6 = Uint8Array.from({ length: 16 }, (_, i) => i * 7);
    const k = { address: a6, port: 443, proto: 17 };
    expect(abi.decodeVipKey(abi.encodeVipKey(k))).toEqual(k);
    const m = { vipId: 7, flags: abi.VIP_F_FLOW_TABLE, tableSlot: 9, tableSize: 65537 };
    expect(abi.decodeVipMeta(abi.encodeVipMeta(m))).toEqual(m);
    const be = { address: a6, flags: abi.BACKEND_F_VALID, mac: Uint8Array.of(2, 0, 0, 0, 0, 1) };
    expect(abi.decodeBackend(abi.encodeBackend(be))).toEqual(be);
    const fk = { src: a6, dst: a6, sport: 1, dport: 65535, vipId: 4, proto: 6 };
    expect(abi.decodeFlowKey(abi.encodeFlowKey(fk))).toEqual(fk);
    expect(abi.decodeDecapKey(abi.encodeDecapKey(a6))).toEqual(a6);
    const ctl = { srcMac: Uint8Array.of(1, 2, 3, 4, 5, 6), mtu: 9000, v4SrcPrefix: Uint8Array.of(172, 16, 0, 0), v4SrcMask: Uint8Array.of(255, 255, 0, 0), v6SrcPrefix: a6, flags: 1 };
    expect(abi.decodeLbCtl(abi.encodeLbCtl(ctl))).toEqual(ctl);
  });

  it('table slots: packing round-trips (u64: primary, alternate, second hop, reserved), and refuses indices the 16-bit fields cannot hold', () => {
    const primaries = Uint32Array.of(0, 1, 0xfffe, abi.BACKEND_NONE, 7);
    const alternates = Uint32Array.of(abi.BACKEND_NONE, 0, 1, abi.BACKEND_NONE, 0xfffe);
    const secondHops = Uint32Array.of(2, abi.BACKEND_NONE, 0, abi.BACKEND_NONE, 0xfffe);
    const packed = abi.encodeTableSlots(primaries, alternates, secondHops);
    expect([...packed]).toEqual([0xffff0000, 0xffff0002, 0x00000001, 0xffffffff, 0x0001fffe, 0xffff0000, 0xffffffff, 0xffffffff, 0xfffe0007, 0xfffffffe]);
    expect(abi.decodeTableSlots(packed)).toEqual({ primaries, alternates, secondHops });
    expect([...abi.encodeTableSlots(Uint32Array.of(3), undefined)]).toEqual([0xffff0003, 0xffffffff]);
    // The u32 slots of a build before second hops, read on an upgrade.
    expect(abi.decodeTableSlots(Uint32Array.of(0xffff0003), 1)).toEqual({ primaries: Uint32Array.of(3), alternates: Uint32Array.of(abi.BACKEND_NONE), secondHops: Uint32Array.of(abi.BACKEND_NONE) });
    expect(() => abi.encodeTableSlots(Uint32Array.of(0xffff), undefined)).toThrow(RangeError);
    expect(() => abi.encodeTableSlots(Uint32Array.of(1), Uint32Array.of(0x10000))).toThrow(RangeError);
    expect(() => abi.encodeTableSlots(Uint32Array.of(1), undefined, Uint32Array.of(0x10000))).toThrow(RangeError);
  });

  it('enum xdplb_reason: same names and numbers', () => {
    const e = [...typesOf('xdp_lb.o').values()].find((t) => t.kind === 'ENUM' && t.name === 'xdplb_reason')!;
    const fromBtf = Object.fromEntries(e.values!.map((v) => [v.name.replace(/^XDPLB_/, ''), v.val]));
    expect(fromBtf).toEqual({ ...abi.Reason, REASON_MAX: abi.REASON_MAX });
  });

  it('flag and constant #defines match', () => {
    const text = ['abi.h', 'constants.h'].map((f) => readFileSync(resolve(BUILD_DIR, '../include', f), 'utf8')).join('\n');
    const define = (name: string): number => {
      const m = new RegExp(`#define ${name}\\s+(.+?)(\\s*/\\*.*)?$`, 'm').exec(text);
      if (m === null) throw new Error(`${name} not defined`);
      const expr = m[1]!.replace(/u\b/g, '');
      if (!/^[\d\sx()<a-fA-F+*-]+$/.test(expr)) throw new Error(`${name}: unexpected expression ${expr}`);
      return Number(new Function(`return (${expr}) >>> 0;`)());
    };
    expect(define('VIP_F_SOURCE_IP_AFFINITY')).toBe(abi.VIP_F_SOURCE_IP_AFFINITY);
    expect(define('VIP_F_MODE_L2DSR')).toBe(abi.VIP_F_MODE_L2DSR);
    expect(define('VIP_F_FLOW_TABLE')).toBe(abi.VIP_F_FLOW_TABLE);
    expect(define('VIP_F_MODE_GUE')).toBe(abi.VIP_F_MODE_GUE);
    // The map writer is the one place the core's words become these bits, and back.
    for (const mode of ['ipip', 'gue', 'l2dsr'] as const) {
      for (const affinity of ['fiveTuple', 'sourceIp'] as const) {
        for (const flowTable of [false, true]) {
          const bits = featureBits({ mode, affinity, flowTable });
          expect(bits).toBe((mode === 'l2dsr' ? define('VIP_F_MODE_L2DSR') : mode === 'gue' ? define('VIP_F_MODE_GUE') : 0) | (affinity === 'sourceIp' ? define('VIP_F_SOURCE_IP_AFFINITY') : 0) | (flowTable ? define('VIP_F_FLOW_TABLE') : 0));
          expect(featuresOfBits(bits)).toEqual({ mode, affinity, flowTable });
        }
      }
    }
    expect(define('BACKEND_F_VALID')).toBe(abi.BACKEND_F_VALID);
    expect(define('CTL_F_WILDCARD_VIPS')).toBe(abi.CTL_F_WILDCARD_VIPS);
    expect(define('XDPLB_FAMILY_V4')).toBe(abi.FAMILY_V4);
    expect(define('XDPLB_FAMILY_V6')).toBe(abi.FAMILY_V6);
    expect(define('XDPLB_BACKEND_NONE')).toBe(abi.BACKEND_NONE);
    // The table slot packing: primary, alternate, second hop in 16 bits each, SLOT_NONE for none.
    expect(define('XDPLB_SLOT_INDEX_MASK')).toBe(abi.SLOT_INDEX_MASK);
    expect(define('XDPLB_SLOT_ALT_SHIFT')).toBe(abi.SLOT_ALT_SHIFT);
    expect(define('XDPLB_SLOT_HOP_SHIFT')).toBe(abi.SLOT_HOP_SHIFT);
    expect(define('XDPLB_GUE_PORT')).toBe(abi.GUE_PORT);
    expect(define('XDPLB_SLOT_NONE')).toBe(abi.SLOT_NONE);
    expect(abi.BACKEND_NONE).toBe((abi.SLOT_NONE | (abi.SLOT_NONE << abi.SLOT_ALT_SHIFT)) >>> 0);
    // The planner's "no backend index" is the codec's, so an image round-trips through the maps.
    expect(abi.BACKEND_NONE).toBe(NO_BACKEND_INDEX);
    // The fixtures' prediction of the fallback (lib/fixture.ts predictSelection) probes as many slots as the datapath.
    expect(define('XDPLB_FALLBACK_PROBES')).toBe(FALLBACK_PROBES);
    expect(define('XDPLB_MIN_MTU')).toBe(abi.MIN_MTU);
    expect(define('XDPLB_BENCH_MAX_COPY')).toBe(abi.BENCH_MAX_COPY);
    expect(define('XDPLB_VIP_FILTER_BITS')).toBe(abi.VIP_FILTER_BITS);
  });

  it('loaded maps have the codecs key and value sizes (the agent check)', () => {
    const lb = new LbHarness();
    const decap = new DecapHarness();
    try {
      expect(() => checkLbAbi(lb.maps)).not.toThrow();
      expect(() => checkDecapAbi(decap.maps)).not.toThrow();
      // Backend indices stay below the table slots' "none".
      expect(lb.maps.backends.maxEntries).toBe(abi.SLOT_NONE + 1);
      expect(lb.writer.capacities().maxBackends).toBe(abi.SLOT_NONE);
    } finally {
      lb.close();
      decap.close();
    }
  });

  it('pins of a build without a newer map open as ABI_MISMATCH (the agent upgrade then starts from the desired state)', () => {
    const lb = new LbHarness();
    const dir = join('/sys/fs/bpf', `xdplb-abi-test-${String(process.pid)}`);
    const opened: BpfMap[] = [];
    mkdirSync(dir, { recursive: true });
    try {
      for (const [role, name] of Object.entries(LB_MAP_NAMES)) if (name !== 'lb_backend_down') lb.maps[role as keyof LbMaps].pin(join(dir, name));
      // What src/agent/lifecycle.ts openPinnedMaps does with an old build's maps directory.
      let error: unknown;
      try {
        lbMapsBy((name) => {
          const m = openPinnedMap(join(dir, name), name);
          opened.push(m);
          return m;
        });
      } catch (e) {
        error = e;
      }
      expect(isXdplbError(error, ErrorCodes.ABI_MISMATCH)).toBe(true);
    } finally {
      for (const m of opened) m.close();
      rmSync(dir, { recursive: true, force: true });
      lb.close();
    }
  });
});
