// lifecycle.ts: getting the XDP load balancer onto an interface and keeping
// it there across agent restarts and upgrades, without dropping a packet.
//
// Pins, per interface, under the pin directory (bpffs):
//   <pin-dir>/<ifname>/link             the bpf_link attaching the program
//   <pin-dir>/<ifname>/maps-<version>/  the program's maps, by name
//   <pin-dir>/<ifname>/tables-<version>/ its tables (inner maps), by map id:
//             reopened by path, since opening a map by id needs CAP_SYS_ADMIN,
//             which the agent pod does not have
// version = the first 16 hex digits of the object file's SHA-256.
//
// Start-up, in three cases:
//   adopt   - a pinned link on this interface and maps of this version: open
//             them; nothing is loaded, detached or cleared.
//   upgrade - a pinned link, maps of another version: load the new object
//             with fresh maps, let the caller program them (continuing from
//             the old maps' tables), then swap the link's program in one
//             bpf_link_update, pin the new maps and unpin the old ones.
//   fresh   - nothing pinned: load, let the caller program the maps, then
//             attach (native, or generic when the driver cannot) and pin.
// The caller programs the maps between prepare() and activate(), so a new
// program never sees empty maps. A process exit (SIGTERM, kill -9) leaves the
// pins, so the datapath keeps forwarding; `cleanup` removes them.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ErrorCodes, XdplbError, isXdplbError } from '../core/errors.js';
import { ensureBpffs } from '../bpf/bpffs.js';
import { interfaceIndex } from '../net/interfaces.js';
import { checkLbAbi, LB_MAP_NAMES, lbMaps, lbMapsBy, type LbMaps } from '../bpf/datapath.js';
import {
  BpfObject,
  closeFd,
  linkInfo,
  linkUpdate,
  openPinned,
  openPinnedMap,
  pinFd,
  unpin,
  xdpLinkCreate,
  XdpFlags,
  type BpfMap,
} from '../bpf/loader.js';

export type XdpMode = 'auto' | 'native' | 'generic';
/** The XDP mode read back from the interface; "unknown" when iproute2 reports one xdplb does not know. */
export type AttachedMode = 'native' | 'generic' | 'offload' | 'unknown';

export interface LifecycleOptions {
  readonly interfaceName: string;
  readonly pinDir: string;
  readonly objectPath: string;
  readonly mode: XdpMode;
}

export interface Prepared {
  readonly kind: 'adopt' | 'upgrade' | 'fresh';
  readonly version: string;
  /** The maps the program uses (after activate()). Program these. */
  readonly maps: LbMaps;
  /** On upgrade: the maps of the running (old) program, to read the current state from. */
  readonly previous: LbMaps | null;
  /** Where the tables (inner maps) of `maps` are pinned, one pin per map id (map-writer.ts), and those of `previous`. */
  readonly tablePins: string;
  readonly previousTablePins: string | null;
  /** Attaches (fresh) or swaps (upgrade) the program and pins; no-op when adopting. */
  activate(): AttachedMode;
  /** Releases this process's fds and objects; pins (and so the datapath) stay. */
  close(): void;
}

/** The XDP mode an interface's program runs in, per iproute2 (null: none attached). */
export function attachedMode(ifname: string): AttachedMode | null {
  const [info] = JSON.parse(execFileSync('ip', ['-j', '-d', 'link', 'show', 'dev', ifname], { encoding: 'utf8' })) as { xdp?: { mode?: number } }[];
  return modeOfAttachment(info?.xdp?.mode);
}

/** iproute2's XDP_ATTACHED_* code as a mode: 1 driver, 2 generic (skb), 3 hardware offload; anything else attached is "unknown". */
export function modeOfAttachment(mode: number | undefined): AttachedMode | null {
  if (mode === undefined || mode === 0) return null;
  return mode === 1 ? 'native' : mode === 2 ? 'generic' : mode === 3 ? 'offload' : 'unknown';
}

export function objectVersion(objectPath: string): string {
  return createHash('sha256').update(readFileSync(objectPath)).digest('hex').slice(0, 16);
}

function openPinnedMaps(dir: string): LbMaps {
  const opened: BpfMap[] = [];
  try {
    const maps = lbMapsBy((name) => {
      const m = openPinnedMap(join(dir, name), name);
      opened.push(m);
      return m;
    });
    checkLbAbi(maps);
    return maps;
  } catch (e) {
    for (const m of opened) m.close();
    throw e;
  }
}

function closeMaps(maps: LbMaps): void {
  for (const m of Object.values(maps)) m.close();
}

function pinMaps(maps: LbMaps, dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const [role, name] of Object.entries(LB_MAP_NAMES)) maps[role as keyof LbMaps].pin(join(dir, name));
}

function unpinDir(dir: string): void {
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir)) unpin(join(dir, f));
  rmdirSync(dir);
}

function attach(progFd: number, ifindex: number, ifname: string, mode: XdpMode): { linkFd: number; mode: AttachedMode } {
  const tries: [AttachedMode, number][] =
    mode === 'native' ? [['native', XdpFlags.DRV_MODE]] : mode === 'generic' ? [['generic', XdpFlags.SKB_MODE]] : [['native', XdpFlags.DRV_MODE], ['generic', XdpFlags.SKB_MODE]];
  let last: unknown;
  for (const [name, flags] of tries) {
    try {
      return { linkFd: xdpLinkCreate(progFd, ifindex, flags), mode: name };
    } catch (e) {
      last = e;
      const errno = (e as { cause?: { name?: string } }).cause?.name;
      if (errno === 'EBUSY' || errno === 'EEXIST') {
        throw new XdplbError(
          ErrorCodes.BPF,
          `${ifname} already has an XDP program that xdplb did not attach; detach it (ip link set dev ${ifname} xdp off) first`,
          { cause: e },
        );
      }
    }
  }
  throw last;
}

/** Opens, adopts or loads the datapath for an interface (see the file comment). */
export function prepare(o: LifecycleOptions): Prepared {
  ensureBpffs(o.pinDir);
  const ifindex = interfaceIndex(o.interfaceName);
  const version = objectVersion(o.objectPath);
  const dir = join(o.pinDir, o.interfaceName);
  const linkPath = join(dir, 'link');
  const mapsDir = join(dir, `maps-${version}`);
  const tablePins = join(dir, `tables-${version}`);
  mkdirSync(dir, { recursive: true });

  let linkFd: number | null = null;
  if (existsSync(linkPath)) {
    linkFd = openPinned(linkPath);
    if (linkInfo(linkFd).ifindex !== ifindex) {
      // The interface was recreated: the old link no longer attaches anything here.
      closeFd(linkFd);
      linkFd = null;
      cleanup(o.pinDir, o.interfaceName);
      mkdirSync(dir, { recursive: true });
    }
  }
  const otherVersions = readdirSync(dir).filter((f) => f.startsWith('maps-') && f !== `maps-${version}`);
  // The tables pinned beside another version's maps go with them.
  const otherTables = readdirSync(dir).filter((f) => f.startsWith('tables-') && f !== `tables-${version}`);
  const unpinOthers = (): void => {
    for (const v of [...otherVersions, ...otherTables]) unpinDir(join(dir, v));
  };

  if (linkFd !== null && existsSync(mapsDir)) {
    const maps = openPinnedMaps(mapsDir);
    const fd = linkFd;
    return {
      kind: 'adopt',
      version,
      maps,
      previous: null,
      tablePins,
      previousTablePins: null,
      activate: () => attachedMode(o.interfaceName) ?? 'unknown',
      close: () => {
        closeMaps(maps);
        closeFd(fd);
      },
    };
  }

  const obj = BpfObject.load(o.objectPath);
  const maps = lbMaps(obj);
  try {
    checkLbAbi(maps);
  } catch (e) {
    obj.close();
    throw e;
  }
  const prog = obj.program('xdp_lb');

  if (linkFd !== null) {
    const fd = linkFd;
    let previous: LbMaps | null = null;
    const oldDir = otherVersions[0] === undefined ? null : join(dir, otherVersions[0]);
    const oldTables = otherVersions[0] === undefined ? null : join(dir, otherVersions[0].replace(/^maps-/, 'tables-'));
    if (oldDir !== null) {
      try {
        previous = openPinnedMaps(oldDir);
      } catch (e) {
        // Another ABI: the new maps start from the desired state alone.
        if (!isXdplbError(e, ErrorCodes.ABI_MISMATCH)) throw e;
      }
    }
    return {
      kind: 'upgrade',
      version,
      maps,
      previous,
      tablePins,
      previousTablePins: previous === null ? null : oldTables,
      activate: () => {
        pinMaps(maps, mapsDir);
        linkUpdate(fd, prog.fd);
        unpinOthers();
        return attachedMode(o.interfaceName) ?? 'unknown';
      },
      close: () => {
        if (previous !== null) closeMaps(previous);
        closeFd(fd);
        obj.close();
      },
    };
  }

  let ownLink: number | null = null;
  return {
    kind: 'fresh',
    version,
    maps,
    previous: null,
    tablePins,
    previousTablePins: null,
    activate: () => {
      unpinOthers();
      pinMaps(maps, mapsDir);
      try {
        const attached = attach(prog.fd, ifindex, o.interfaceName, o.mode);
        ownLink = attached.linkFd;
        pinFd(attached.linkFd, linkPath);
        return attached.mode;
      } catch (e) {
        unpinDir(mapsDir);
        throw e;
      }
    },
    close: () => {
      if (ownLink !== null) closeFd(ownLink);
      obj.close();
    },
  };
}

/** Detaches the program (by removing the link pin) and removes every pin of the interface. */
export function cleanup(pinDir: string, ifname: string): { removed: boolean } {
  const dir = join(pinDir, ifname);
  if (!existsSync(dir)) return { removed: false };
  unpin(join(dir, 'link'));
  for (const f of readdirSync(dir)) if (f.startsWith('maps-') || f.startsWith('tables-')) unpinDir(join(dir, f));
  rmdirSync(dir);
  return { removed: true };
}
