// interfaces.ts: what the kernel says about a network interface, read from
// sysfs: its index, MAC address and MTU; and which interface holds an
// address (--interface auto). A missing interface is a BAD_FLAG error naming
// it (it comes from --interface).
import { readFileSync } from 'node:fs';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { ErrorCodes, XdplbError } from '../core/errors.js';
import { canonicalIp } from '../core/net.js';

export function interfaceIndex(ifname: string): number {
  try {
    return Number(readFileSync(`/sys/class/net/${ifname}/ifindex`, 'utf8').trim());
  } catch {
    throw new XdplbError(ErrorCodes.BAD_FLAG, `interface ${ifname} does not exist`);
  }
}

export function interfaceMac(ifname: string): string {
  return readFileSync(`/sys/class/net/${ifname}/address`, 'utf8').trim();
}

export function interfaceMtu(ifname: string): number {
  return Number(readFileSync(`/sys/class/net/${ifname}/mtu`, 'utf8').trim());
}

/**
 * The interface holding one of `addresses` (the first address held wins),
 * from `interfaces` as os.networkInterfaces() lists them; null when none
 * does. Loopback is never the answer.
 */
export function interfaceHolding(addresses: readonly string[], interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): string | null {
  for (const wanted of addresses.map(canonicalIp)) {
    for (const [name, infos] of Object.entries(interfaces)) {
      if (infos?.some((i) => !i.internal && sameIp(i.address, wanted))) return name;
    }
  }
  return null;
}

function sameIp(address: string, canonical: string): boolean {
  try {
    return canonicalIp(address) === canonical;
  } catch {
    return false; // not an address this project parses (a scoped link-local one)
  }
}
