// net.ts: IP and MAC address text <-> bytes, as the BPF maps store them
// (network order; IPv4 as 4 bytes, IPv6 as 16). Pure functions.

import { isIPv4, isIPv6 } from 'node:net';
import { ErrorCodes, XdplbError } from './errors.js';

/** An address as bytes: 4 for IPv4, 16 for IPv6. Accepts text or bytes. */
export function ipBytes(address: string | Uint8Array): Uint8Array {
  if (typeof address !== 'string') {
    if (address.length !== 4 && address.length !== 16) {
      throw new XdplbError(ErrorCodes.BAD_CONFIG, `an IP address has 4 or 16 bytes, got ${String(address.length)}`);
    }
    return address;
  }
  if (isIPv4(address)) return Uint8Array.from(address.split('.').map(Number));
  // A zone index (fe80::1%eth0) names an interface, not an address the maps can hold.
  if (isIPv6(address) && !address.includes('%')) return parseIPv6(address);
  throw new XdplbError(ErrorCodes.BAD_CONFIG, `not an IP address: ${JSON.stringify(address)}`);
}

function parseIPv6(text: string): Uint8Array {
  // a trailing dotted IPv4 part (::ffff:1.2.3.4) becomes two hex groups
  const s = text.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_m, a: string, b: string, c: string, d: string) =>
    `${((Number(a) << 8) | Number(b)).toString(16)}:${((Number(c) << 8) | Number(d)).toString(16)}`,
  );
  const groupsOf = (part: string): number[] => (part === '' ? [] : part.split(':').map((h) => parseInt(h, 16)));
  const halves = s.split('::');
  const left = groupsOf(halves[0]!);
  const right = halves.length > 1 ? groupsOf(halves[1]!) : [];
  const groups = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** Text form of 4- or 16-byte address bytes; IPv6 in RFC 5952 canonical form. */
export function ipText(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  // The longest run of two or more zero groups (the first on a tie) becomes "::".
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/** The canonical text of an address given as text (throws BAD_CONFIG if it is not one). */
export function canonicalIp(address: string): string {
  return ipText(ipBytes(address));
}

/** A MAC address as 6 bytes. Accepts aa:bb:cc:dd:ee:ff or bytes. */
export function macBytes(mac: string | Uint8Array): Uint8Array {
  if (typeof mac !== 'string') {
    if (mac.length !== 6) throw new XdplbError(ErrorCodes.BAD_CONFIG, `a MAC address has 6 bytes, got ${String(mac.length)}`);
    return mac;
  }
  const parts = mac.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) {
    throw new XdplbError(ErrorCodes.BAD_CONFIG, `not a MAC address: ${JSON.stringify(mac)}`);
  }
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}
