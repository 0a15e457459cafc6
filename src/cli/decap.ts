// decap.ts: `xdplb decap`, attach the backend-side decapsulation program to an
// interface (or update the VIPs of the one attached) and exit. Packets
// encapsulated by the load balancer (IPIP / IPv6-in-IPv6) whose inner
// destination is one of the VIPs are stripped to the inner packet and passed
// to the stack; everything else passes untouched. The program stays attached
// (pinned) after the command exits; --cleanup removes it.
import { z } from 'zod';
import { attachDecap, detachDecap } from '../bpf/decap-attach.js';
import { applyDecapVips } from '../bpf/decap-writer.js';
import { ErrorCodes, XdplbError, isXdplbError } from '../core/errors.js';
import { canonicalIp } from '../core/net.js';
import { parseFlags } from '../config/flags.js';
import { EXIT_USAGE, type CliIo } from './io.js';

export const DECAP_USAGE = `usage: xdplb decap --interface IF --vip ADDR [--vip ADDR ...] [--pin-dir DIR] [--xdp-mode auto|native|generic]
       xdplb decap --interface IF --cleanup [--pin-dir DIR]

Attaches the backend decapsulation program to IF (or sets the VIPs of the one
already attached) and exits; it stays attached. The VIPs must also be local
addresses of the backend (for example on lo).`;

const schema = z.object({
  interface: z.string({ message: '--interface IF is required' }).regex(/^[^\s/]{1,15}$/, { message: '--interface must be an interface name' }),
  vip: z.array(z.string()).default([]),
  'pin-dir': z.string().startsWith('/').default('/sys/fs/bpf/xdplb-decap'),
  'xdp-mode': z.enum(['auto', 'native', 'generic']).default('auto'),
  cleanup: z.boolean().default(false),
});

export function runDecap(argv: readonly string[], io: CliIo): number {
  try {
    const f = parseFlags(
      argv,
      { interface: { type: 'string' }, vip: { type: 'string', multiple: true }, 'pin-dir': { type: 'string' }, 'xdp-mode': { type: 'string' }, cleanup: { type: 'boolean' } },
      schema,
    );
    if (f === null) {
      io.out(DECAP_USAGE);
      return 0;
    }
    if (f.cleanup) {
      detachDecap(f.interface, f['pin-dir']);
      io.out(`decap: removed from ${f.interface}`);
      return 0;
    }
    if (f.vip.length === 0) throw new XdplbError(ErrorCodes.BAD_FLAG, 'give at least one --vip ADDR');
    const vips = f.vip.map((v) => canonicalIp(v));
    const attached = attachDecap(f.interface, f['pin-dir'], f['xdp-mode'], (maps) => applyDecapVips(maps, vips));
    try {
      if (attached.adopted) applyDecapVips(attached.maps, vips);
    } finally {
      attached.close();
    }
    io.out(attached.adopted ? `decap: ${f.interface} now decapsulates for ${vips.join(', ')}` : `decap: attached to ${f.interface} for ${vips.join(', ')}`);
    return 0;
  } catch (e) {
    if (isXdplbError(e)) {
      io.err(`xdplb decap: ${e.message}`);
      return EXIT_USAGE;
    }
    throw e;
  }
}
