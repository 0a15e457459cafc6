// objects.ts: where the built BPF objects are, relative to this module, in a
// checkout (dist/src/bpf -> bpf/build) and in the image (/app/dist/src/bpf ->
// /app/bpf/build) alike.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ErrorCodes, XdplbError } from '../core/errors.js';

export type ObjectName = 'xdp_lb.o' | 'xdp_decap.o';

export function objectPath(name: ObjectName): string {
  // src/bpf/objects.ts and dist/src/bpf/objects.js are 2 and 3 levels below the root.
  for (const up of ['../../bpf/build/', '../../../bpf/build/']) {
    const path = fileURLToPath(new URL(up + name, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new XdplbError(ErrorCodes.IO, `BPF object ${name} not found: build it with npm run build`);
}
