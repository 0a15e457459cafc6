// errors.ts: the one error class of xdplb. Every error that crosses a module
// boundary carries a stable `code` (documented in docs/errors.md) and an
// optional `cause`. Callers and tests branch on `code`, never on message text.

export const ErrorCodes = {
  /** A command-line flag or argument is missing, malformed or out of range. */
  BAD_FLAG: 'XDPLB_BAD_FLAG',
  /** A table size is not one of the allowed primes. */
  BAD_TABLE_SIZE: 'XDPLB_BAD_TABLE_SIZE',
  /** A backend set is invalid: empty, duplicate key, bad weight. */
  BAD_BACKENDS: 'XDPLB_BAD_BACKENDS',
  /** A serialized table is unreadable, corrupt, or of another format version. */
  BAD_TABLE_FILE: 'XDPLB_BAD_TABLE_FILE',
  /** A configuration file failed validation. */
  BAD_CONFIG: 'XDPLB_BAD_CONFIG',
  /** A file could not be read or written. */
  IO: 'XDPLB_IO',
  /** The operation needs privileges (root, CAP_BPF, CAP_NET_ADMIN) it does not have. */
  NO_PRIVILEGE: 'XDPLB_NO_PRIVILEGE',
  /** libbpf or the bpf() syscall failed. */
  BPF: 'XDPLB_BPF',
  /** The built BPF object does not match the TypeScript ABI. */
  ABI_MISMATCH: 'XDPLB_ABI_MISMATCH',
  /** A packet capture file is malformed. */
  BAD_PCAP: 'XDPLB_BAD_PCAP',
  /** The running kernel is older than the datapath needs (src/core/kernel.ts), or its version is unreadable. */
  KERNEL_TOO_OLD: 'XDPLB_KERNEL_TOO_OLD',
  /** An object exists with other content than the one being written (a stale cache); retry from fresh state. */
  CONFLICT: 'XDPLB_CONFLICT',
  /** What is wanted does not fit the datapath's capacities (VIP keys, tables, backends). */
  CAPACITY: 'XDPLB_CAPACITY',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class XdplbError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'XdplbError';
    this.code = code;
  }
}

export function isXdplbError(e: unknown, code?: ErrorCode): e is XdplbError {
  return e instanceof XdplbError && (code === undefined || e.code === code);
}
