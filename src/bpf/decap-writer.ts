// decap-writer.ts: converges the backend-side decapsulation program's VIP set
// (the decap_vips map of xdp_decap) to a list of addresses, for
// `xdplb decap`. It reads the map to learn what is there, so a second run
// against the pinned map of an attached program converges it: wanted
// addresses are added first, then the ones no longer wanted are removed.
import { ErrorCodes, XdplbError } from '../core/errors.js';
import { ipBytes } from '../core/net.js';
import { encodeDecapKey, u32Key } from './abi.js';
import type { DecapMaps } from './datapath.js';

/** Converge the decap program's local-VIP set to `addresses`. Throws BAD_CONFIG (nothing written) when they do not fit. */
export function applyDecapVips(maps: DecapMaps, addresses: readonly (string | Uint8Array)[]): void {
  const wanted = new Map(
    addresses.map((a) => {
      const key = encodeDecapKey(ipBytes(a));
      return [key.toString('hex'), key] as const;
    }),
  );
  if (wanted.size > maps.vips.maxEntries) {
    throw new XdplbError(ErrorCodes.BAD_CONFIG, `${String(wanted.size)} decap VIPs exceed ${String(maps.vips.maxEntries)}`);
  }
  for (const key of wanted.values()) maps.vips.update(key, u32Key(1));
  for (const key of maps.vips.keys()) if (!wanted.has(key.toString('hex'))) maps.vips.delete(key);
}
