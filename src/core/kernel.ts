// kernel.ts: the oldest Linux kernel the datapath runs on, and the check of a
// kernel release string (what `uname -r` / os.release() give) against it.
// Pure: the caller passes the release; the agent calls requireKernel first
// thing so an old kernel fails with one clear line, not a verifier or EINVAL
// error deep in the load.
import { ErrorCodes, XdplbError } from './errors.js';

export interface KernelVersion {
  readonly major: number;
  readonly minor: number;
}

/** 5.10, because of the newest kernel feature the datapath relies on:
 * BPF_F_INNER_MAP (5.10) on lb_tables' inner-map template, so each VIP's
 * Maglev table may have its own size. Below it, for reference: XDP attached
 * through a pinned bpf_link, replaced with bpf_link_update on upgrade (5.9);
 * map batch operations (5.6); read-only globals (.rodata, 5.2). */
export const MIN_KERNEL: KernelVersion = { major: 5, minor: 10 };

const fmt = (v: KernelVersion): string => `${v.major}.${v.minor}`;

/** major.minor of a release like "5.4.0-150-generic" or "6.18.0"; null when
 * the string does not start with one. */
export function parseKernelRelease(release: string): KernelVersion | null {
  const m = /^(\d{1,4})\.(\d{1,4})(?:[.\-+_~].*)?$/.exec(release.trim());
  if (m === null) return null;
  return { major: Number(m[1]), minor: Number(m[2]) };
}

/** The problem with running the datapath on this kernel release, or null
 * when it is MIN_KERNEL or later. */
export function checkKernel(release: string): string | null {
  const v = parseKernelRelease(release);
  if (v === null) return `cannot read the kernel version from release ${JSON.stringify(release)}; xdplb needs Linux ${fmt(MIN_KERNEL)} or later`;
  if (v.major < MIN_KERNEL.major || (v.major === MIN_KERNEL.major && v.minor < MIN_KERNEL.minor)) {
    return `kernel ${release} is too old: xdplb needs Linux ${fmt(MIN_KERNEL)} or later (BPF_F_INNER_MAP)`;
  }
  return null;
}

/** Throws XDPLB_KERNEL_TOO_OLD when checkKernel finds a problem. */
export function requireKernel(release: string): void {
  const problem = checkKernel(release);
  if (problem !== null) throw new XdplbError(ErrorCodes.KERNEL_TOO_OLD, problem);
}
