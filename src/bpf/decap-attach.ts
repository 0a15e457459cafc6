// decap-attach.ts: the backend decapsulation program on an interface, for
// `xdplb decap` and the agent's decap role alike. Attaching adopts what is
// pinned for the interface (a restart or a second run changes only the VIP
// set, so traffic is never dropped), or loads xdp_decap.o, attaches it
// through a BPF link and pins the link and maps under <pin-dir>/<interface>.
// Detaching removes the pins, which ends the link.
import { existsSync, mkdirSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { checkDecapAbi, decapMaps, type DecapMaps } from './datapath.js';
import { BpfObject, closeFd, openPinnedMap, pinFd, unpin, xdpLinkCreate, XdpFlags } from './loader.js';
import { objectPath } from './objects.js';
import { ensureBpffs } from './bpffs.js';
import { interfaceIndex } from '../net/interfaces.js';

export type DecapMode = 'auto' | 'native' | 'generic';

export interface AttachedDecap {
  readonly maps: DecapMaps;
  /** True: the program was already attached and pinned; its maps were reopened. */
  readonly adopted: boolean;
  /** Closes this process's handles; the program stays attached (pinned). */
  close(): void;
}

/** Attaches (or adopts) the decap program on `interfaceName`; `prepare` runs on the maps before a fresh program is attached. */
export function attachDecap(interfaceName: string, pinDir: string, mode: DecapMode, prepare: (maps: DecapMaps) => void = () => undefined): AttachedDecap {
  ensureBpffs(pinDir);
  const dir = join(pinDir, interfaceName);
  const ifindex = interfaceIndex(interfaceName);
  if (existsSync(join(dir, 'link'))) {
    const maps = { vips: openPinnedMap(join(dir, 'decap_vips'), 'decap_vips'), stats: openPinnedMap(join(dir, 'decap_stats'), 'decap_stats') };
    try {
      checkDecapAbi(maps);
    } catch (e) {
      maps.vips.close();
      maps.stats.close();
      throw e;
    }
    return { maps, adopted: true, close: () => (maps.vips.close(), maps.stats.close()) };
  }
  const obj = BpfObject.load(objectPath('xdp_decap.o'));
  try {
    const maps = decapMaps(obj);
    checkDecapAbi(maps);
    prepare(maps);
    const prog = obj.program('xdp_decap');
    const tries = mode === 'native' ? [XdpFlags.DRV_MODE] : mode === 'generic' ? [XdpFlags.SKB_MODE] : [XdpFlags.DRV_MODE, XdpFlags.SKB_MODE];
    let linkFd = -1;
    let last: unknown;
    for (const flags of tries) {
      try {
        linkFd = xdpLinkCreate(prog.fd, ifindex, flags);
        break;
      } catch (e) {
        last = e;
      }
    }
    if (linkFd < 0) throw last;
    mkdirSync(dir, { recursive: true });
    maps.vips.pin(join(dir, 'decap_vips'));
    maps.stats.pin(join(dir, 'decap_stats'));
    pinFd(linkFd, join(dir, 'link'));
    closeFd(linkFd);
  } finally {
    obj.close();
  }
  // Reopened from the pins: the object (and its own handles) is closed above.
  const maps = { vips: openPinnedMap(join(dir, 'decap_vips'), 'decap_vips'), stats: openPinnedMap(join(dir, 'decap_stats'), 'decap_stats') };
  return { maps, adopted: false, close: () => (maps.vips.close(), maps.stats.close()) };
}

/** Detaches the decap program from `interfaceName` (removes its pins); false when nothing was pinned. */
export function detachDecap(interfaceName: string, pinDir: string): boolean {
  const dir = join(pinDir, interfaceName);
  if (!existsSync(dir)) return false;
  for (const name of readdirSync(dir)) unpin(join(dir, name));
  rmdirSync(dir);
  return true;
}
