// interfaces.ts: what the kernel says about a network interface, read from
// sysfs: its index, MAC address and MTU. A missing interface is a BAD_FLAG
// error naming it (it comes from --interface).
import { readFileSync } from 'node:fs';
import { ErrorCodes, XdplbError } from '../core/errors.js';

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
