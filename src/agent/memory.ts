// memory.ts: giving back the memory a burst of table work freed. Decoding and
// writing a thousand tables of 65537 slots allocates and frees hundreds of
// MiB of buffers; V8 frees them only at its next collection, and glibc then
// keeps the freed heap, counted in the agent's RSS and against its memory
// limit. After such a burst the agent collects at once and trims the heap.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { mallocTrim } from '../bpf/loader.js';

let collect: (() => void) | undefined;

/** V8's full collection (the --expose-gc function, enabled for this purpose only). */
function fullCollection(): () => void {
  if (collect === undefined) {
    const existing = (globalThis as { gc?: () => void }).gc;
    if (existing !== undefined) {
      collect = existing;
    } else {
      setFlagsFromString('--expose-gc');
      collect = runInNewContext('gc') as () => void;
      setFlagsFromString('--no-expose-gc');
    }
  }
  return collect;
}

/** Collects garbage, then returns the freed heap to the system. Tens of ms; for after bursts, not every pass. */
export function releaseFreedMemory(): void {
  fullCollection()();
  mallocTrim();
}
