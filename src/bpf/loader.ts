// loader.ts: typed access to BPF objects, programs, maps and links over the
// libbpf binding: open/load an object file, find programs and maps by name,
// create (inner) maps, read and write elements (per-CPU values summed by the
// caller), pin, attach XDP, and run a program with BPF_PROG_TEST_RUN. Every
// failure is an XdplbError with code BPF, or NO_PRIVILEGE for EPERM.

import { constants as osConstants } from 'node:os';
import { unlinkSync } from 'node:fs';
import { ErrorCodes, XdplbError } from '../core/errors.js';
import { lastErrno, libbpf, type Handle } from './libbpf.js';

/** enum bpf_map_type values used by xdplb. */
export const MapType = {
  HASH: 1,
  ARRAY: 2,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  LRU_HASH: 9,
  ARRAY_OF_MAPS: 12,
} as const;

/** BPF map flags (uapi linux/bpf.h). */
export const MapFlags = {
  NO_PREALLOC: 1 << 0,
  NO_COMMON_LRU: 1 << 1,
  /** An ARRAY whose values can be mmap()ed: a whole table is written with one memory copy. */
  MMAPABLE: 1 << 10,
  INNER_MAP: 1 << 12,
} as const;

/** bpf_map_update_elem flags. */
export const UpdateFlags = { ANY: 0n, NOEXIST: 1n, EXIST: 2n } as const;

/** XDP attach flags (uapi linux/if_link.h). */
export const XdpFlags = {
  UPDATE_IF_NOEXIST: 1 << 0,
  SKB_MODE: 1 << 1,
  DRV_MODE: 1 << 2,
  HW_MODE: 1 << 3,
  REPLACE: 1 << 4,
} as const;

/** BPF_PROG_TEST_RUN flags. */

/** XDP actions. */
export const XdpAction = { ABORTED: 0, DROP: 1, PASS: 2, TX: 3, REDIRECT: 4 } as const;

export type Verdict = 'PASS' | 'TX' | 'DROP' | 'ABORTED' | 'REDIRECT';

/** The name of an XDP program's return value (unknown values count as ABORTED, as the kernel treats them). */
export function verdictName(retval: number): Verdict {
  switch (retval) {
    case XdpAction.PASS:
      return 'PASS';
    case XdpAction.TX:
      return 'TX';
    case XdpAction.DROP:
      return 'DROP';
    case XdpAction.REDIRECT:
      return 'REDIRECT';
    default:
      return 'ABORTED';
  }
}

const errnoNames = new Map<number, string>(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));

/** Throw the XdplbError for a failed libbpf call (err = -errno or errno). */
export function bpfError(what: string, err: number, withLog = false): XdplbError {
  const errno = Math.abs(err);
  const name = errnoNames.get(errno) ?? `errno ${String(errno)}`;
  let message = `${what} failed: ${name}`;
  if (withLog) {
    const log = libbpf().recentLog();
    if (log.length > 0) message += `\n${log.slice(-60).join('\n')}`;
  }
  // EACCES is what the verifier returns for a rejected program: not a privilege matter.
  const code = errno === osConstants.errno.EPERM ? ErrorCodes.NO_PRIVILEGE : ErrorCodes.BPF;
  return new XdplbError(code, message, { cause: { errno, name } });
}

function check(what: string, ret: number, withLog = false): number {
  if (ret < 0) throw bpfError(what, ret, withLog);
  return ret;
}

function isNull(h: Handle): boolean {
  return h === null || h === 0n;
}

/** A map: an fd plus its shape. Maps found in an object belong to it; maps from createMap/openPinned own their fd. */
export class BpfMap {
  constructor(
    readonly name: string,
    readonly fd: number,
    readonly type: number,
    readonly keySize: number,
    readonly valueSize: number,
    readonly maxEntries: number,
    private readonly ownsFd: boolean,
  ) {}

  private checkKey(key: Uint8Array): void {
    if (key.length !== this.keySize) {
      throw new XdplbError(ErrorCodes.BPF, `map ${this.name}: key of ${String(key.length)} bytes, expected ${String(this.keySize)}`);
    }
  }

  /** Value bytes for this map's lookups: value_size, times the CPUs for per-CPU maps (8-byte aligned each). */
  private lookupSize(): number {
    if (this.type === MapType.PERCPU_ARRAY || this.type === MapType.PERCPU_HASH) {
      return roundUp8(this.valueSize) * numPossibleCpus();
    }
    return this.valueSize;
  }

  update(key: Uint8Array, value: Uint8Array, flags: bigint = UpdateFlags.ANY): void {
    this.checkKey(key);
    check(`update of map ${this.name}`, libbpf().mapUpdateElem(this.fd, Buffer.from(key.buffer, key.byteOffset, key.length), Buffer.from(value.buffer, value.byteOffset, value.length), flags));
  }

  /** The value, or undefined when the key is absent (ENOENT). */
  lookup(key: Uint8Array): Buffer | undefined {
    this.checkKey(key);
    const out = Buffer.alloc(this.lookupSize());
    const ret = libbpf().mapLookupElem(this.fd, Buffer.from(key.buffer, key.byteOffset, key.length), out);
    if (ret === -osConstants.errno.ENOENT) return undefined;
    check(`lookup in map ${this.name}`, ret);
    return out;
  }

  /** Per-CPU map: one value per possible CPU. */
  lookupPerCpu(key: Uint8Array): Buffer[] | undefined {
    const all = this.lookup(key);
    if (all === undefined) return undefined;
    const stride = roundUp8(this.valueSize);
    const values: Buffer[] = [];
    for (let at = 0; at < all.length; at += stride) values.push(all.subarray(at, at + this.valueSize));
    return values;
  }

  /** Delete a key; returns false when it was absent. */
  delete(key: Uint8Array): boolean {
    this.checkKey(key);
    const ret = libbpf().mapDeleteElem(this.fd, Buffer.from(key.buffer, key.byteOffset, key.length));
    if (ret === -osConstants.errno.ENOENT) return false;
    check(`delete from map ${this.name}`, ret);
    return true;
  }

  /** All keys (hash maps); a snapshot, entries may change meanwhile. */
  keys(): Buffer[] {
    const keys: Buffer[] = [];
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.keySize);
      const ret = libbpf().mapGetNextKey(this.fd, prev, next);
      if (ret === -osConstants.errno.ENOENT) return keys;
      check(`key walk of map ${this.name}`, ret);
      keys.push(next);
      prev = next;
    }
  }

  /** Write `count` consecutive keys/values (packed arrays) in one syscall. */
  updateBatch(keys: Uint8Array, values: Uint8Array, count: number, flags: bigint = UpdateFlags.ANY): void {
    if (keys.length < count * this.keySize || values.length < count * this.valueSize) {
      throw new XdplbError(ErrorCodes.BPF, `map ${this.name}: batch buffers shorter than ${String(count)} entries`);
    }
    const n = new Uint32Array([count]);
    const opts = Buffer.alloc(libbpf().batchOptsSize);
    opts.writeBigUInt64LE(BigInt(opts.length), 0);
    opts.writeBigUInt64LE(flags, 8);
    check(
      `batch update of map ${this.name}`,
      libbpf().mapUpdateBatch(this.fd, Buffer.from(keys.buffer, keys.byteOffset, keys.length), Buffer.from(values.buffer, values.byteOffset, values.length), Buffer.from(n.buffer), opts),
    );
    if (n[0] !== count) throw new XdplbError(ErrorCodes.BPF, `map ${this.name}: batch wrote ${String(n[0])} of ${String(count)} entries`);
  }

  /**
   * The present entries of an array-like map (an ARRAY_OF_MAPS: slot -> inner
   * map id; empty slots are left out), read with one bpf_map_lookup_batch.
   * Keys and values are u32 here.
   */
  presentU32(): Map<number, number> {
    if (this.keySize !== 4 || this.valueSize !== 4) throw new XdplbError(ErrorCodes.BPF, `map ${this.name}: presentU32 needs u32 keys and values`);
    const n = this.maxEntries;
    const keys = new Uint32Array(n);
    const values = new Uint32Array(n);
    const count = new Uint32Array([n]);
    const opts = Buffer.alloc(libbpf().batchOptsSize);
    opts.writeBigUInt64LE(BigInt(opts.length), 0);
    const ret = libbpf().mapLookupBatch(this.fd, null, Buffer.alloc(4), Buffer.from(keys.buffer), Buffer.from(values.buffer), Buffer.from(count.buffer), opts);
    if (ret < 0 && ret !== -osConstants.errno.ENOENT) check(`batch lookup in map ${this.name}`, ret);
    const out = new Map<number, number>();
    for (let i = 0; i < count[0]!; i++) out.set(keys[i]!, values[i]!);
    return out;
  }

  /** Bytes of an mmap()ed ARRAY: the kernel keeps each value 8-byte aligned. */
  #mappedLength(): number {
    return roundUp8(this.valueSize) * this.maxEntries;
  }

  /** Maps the array's values, runs `use` on the address, and unmaps. */
  #mapped(what: string, use: (at: bigint, length: number) => void): void {
    const lib = libbpf();
    const length = this.#mappedLength();
    const at = lib.mmap(null, length, PROT_READ | PROT_WRITE, MAP_SHARED, this.fd, 0n);
    if (at === MAP_FAILED || at === 0n) throw bpfError(`mmap of map ${this.name} for ${what}`, lastErrno());
    try {
      use(at, length);
    } finally {
      lib.munmap(at, length);
    }
  }

  /**
   * Writes every value of an mmap()able ARRAY (created with MapFlags.MMAPABLE)
   * from `values` (packed, valueSize bytes each) with one memory copy: no
   * syscall per value, no batch copy in the kernel.
   */
  writeMapped(values: Uint8Array): void {
    const size = this.valueSize;
    if (values.length !== size * this.maxEntries) throw new XdplbError(ErrorCodes.BPF, `map ${this.name}: ${String(values.length)} bytes for ${String(this.maxEntries)} values`);
    const stride = roundUp8(size);
    if (stride === size) {
      this.#copyIn(Buffer.from(values.buffer, values.byteOffset, values.length));
      return;
    }
    this.writeMappedWith((laid) => spread(values, laid, size, stride, this.maxEntries));
  }

  /**
   * Writes every value of an mmap()able ARRAY as `fill` lays them out in a
   * zeroed buffer of the kernel's layout (each value at a multiple of its
   * size rounded up to 8 bytes), then one memory copy.
   */
  writeMappedWith(fill: (laid: Buffer, stride: number) => void): void {
    const laid = scratch(this.#mappedLength());
    fill(laid, roundUp8(this.valueSize));
    this.#copyIn(laid);
  }

  #copyIn(laid: Buffer): void {
    this.#mapped('writing', (at, length) => libbpf().copyTo(at, laid, length));
  }

  /** Every value of an mmap()able ARRAY (packed, valueSize bytes each), with one memory copy. */
  readMapped(): Buffer {
    const size = this.valueSize;
    const stride = roundUp8(size);
    const laid = stride === size ? Buffer.alloc(this.#mappedLength()) : scratch(this.#mappedLength());
    this.#mapped('reading', (at, length) => libbpf().copyFrom(laid, at, length));
    if (stride === size) return laid;
    const out = Buffer.alloc(size * this.maxEntries);
    spread(laid, out, stride, size, this.maxEntries);
    return out;
  }

  /**
   * Every value of an ARRAY map, read with one bpf_map_lookup_batch (keys
   * 0..max_entries-1, values packed). A 65537-slot table is one syscall.
   */
  readArray(): Buffer {
    if (this.type !== MapType.ARRAY) throw new XdplbError(ErrorCodes.BPF, `map ${this.name}: readArray needs an ARRAY map`);
    const n = this.maxEntries;
    const keys = Buffer.alloc(n * 4);
    const values = Buffer.alloc(n * this.valueSize);
    const count = new Uint32Array([n]);
    const outBatch = Buffer.alloc(4);
    const opts = Buffer.alloc(libbpf().batchOptsSize);
    opts.writeBigUInt64LE(BigInt(opts.length), 0);
    const ret = libbpf().mapLookupBatch(this.fd, null, outBatch, keys, values, Buffer.from(count.buffer), opts);
    // ENOENT: the end was reached, which for an array read whole is success.
    if (ret < 0 && ret !== -osConstants.errno.ENOENT) check(`batch lookup in map ${this.name}`, ret);
    if (count[0] !== n) throw new XdplbError(ErrorCodes.BPF, `map ${this.name}: batch read ${String(count[0])} of ${String(n)} entries`);
    return values;
  }

  pin(path: string): void {
    check(`pin of map ${this.name} at ${path}`, libbpf().objPin(this.fd, path));
  }

  /** Close the fd if this object owns it (created or opened maps). */
  close(): void {
    if (this.ownsFd) libbpf().close(this.fd);
  }
}

const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
const MAP_FAILED = 0xffffffffffffffffn;

let scratchBuffer = Buffer.alloc(0);

/** A reused buffer of at least `n` bytes (zeroed): one table's room, not one per write. */
function scratch(n: number): Buffer {
  if (scratchBuffer.length < n) scratchBuffer = Buffer.alloc(n);
  const b = scratchBuffer.subarray(0, n);
  b.fill(0);
  return b;
}

/** Copies `count` values from `from` (one every `fromStride` bytes) to `to` (one every `toStride` bytes). */
function spread(from: Uint8Array, to: Uint8Array, fromStride: number, toStride: number, count: number): void {
  const width = Math.min(fromStride, toStride);
  if (width === 4 && from.byteOffset % 4 === 0 && to.byteOffset % 4 === 0) {
    // u32 values (tables): a word at a time.
    const f = new Uint32Array(from.buffer, from.byteOffset, from.length >> 2);
    const t = new Uint32Array(to.buffer, to.byteOffset, to.length >> 2);
    const fs = fromStride >> 2;
    const ts = toStride >> 2;
    for (let i = 0; i < count; i++) t[i * ts] = f[i * fs]!;
    return;
  }
  for (let i = 0; i < count; i++) to.set(from.subarray(i * fromStride, i * fromStride + width), i * toStride);
}

function roundUp8(n: number): number {
  return (n + 7) & ~7;
}

let possibleCpus: number | undefined;

/** Possible CPUs (libbpf_num_possible_cpus): the per-CPU value count. */
export function numPossibleCpus(): number {
  possibleCpus ??= check('libbpf_num_possible_cpus', libbpf().numPossibleCpus());
  return possibleCpus;
}

export interface CreateMapOptions {
  type: number;
  name: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags?: number;
  innerMapFd?: number;
}

/** bpf_map_create: e.g. a table inner map (ARRAY, BPF_F_INNER_MAP). The caller closes it. */
export function createMap(o: CreateMapOptions): BpfMap {
  const lib = libbpf();
  const opts = {
    sz: lib.mapCreateOptsSize,
    btf_fd: 0,
    btf_key_type_id: 0,
    btf_value_type_id: 0,
    btf_vmlinux_value_type_id: 0,
    inner_map_fd: o.innerMapFd ?? 0,
    map_flags: o.flags ?? 0,
    map_extra: 0n,
    numa_node: 0,
    map_ifindex: 0,
  };
  const fd = check(`creation of map ${o.name}`, lib.mapCreate(o.type, o.name.slice(0, 15), o.keySize, o.valueSize, o.maxEntries, opts));
  return new BpfMap(o.name, fd, o.type, o.keySize, o.valueSize, o.maxEntries, true);
}

/** glibc malloc_trim(0): returns free heap memory to the system. */
export function mallocTrim(): void {
  libbpf().mallocTrim(0);
}

/** Pin any BPF fd (map, program, link) at a bpffs path. */
export function pinFd(fd: number, path: string): void {
  check(`pin at ${path}`, libbpf().objPin(fd, path));
}

/** What the kernel says about a map fd (struct bpf_map_info, the leading fields). */
export interface MapInfo {
  type: number;
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
}

function objectInfo(fd: number, size: number, what: string): Buffer {
  const info = Buffer.alloc(size);
  const len = new Uint32Array([size]);
  check(`info of ${what}`, libbpf().objGetInfoByFd(fd, info, Buffer.from(len.buffer)));
  return info;
}

export function mapInfo(fd: number): MapInfo {
  const b = objectInfo(fd, 96, `map fd ${String(fd)}`);
  const nameBytes = b.subarray(24, 40);
  const end = nameBytes.indexOf(0);
  return {
    type: b.readUInt32LE(0),
    id: b.readUInt32LE(4),
    keySize: b.readUInt32LE(8),
    valueSize: b.readUInt32LE(12),
    maxEntries: b.readUInt32LE(16),
    flags: b.readUInt32LE(20),
    name: nameBytes.subarray(0, end < 0 ? 16 : end).toString('latin1'),
  };
}

/** A map from an fd this process owns (pinned, or by id), with its kernel-reported shape. */
export function mapFromFd(fd: number, name?: string): BpfMap {
  const i = mapInfo(fd);
  return new BpfMap(name ?? i.name, fd, i.type, i.keySize, i.valueSize, i.maxEntries, true);
}

/** Opens a pinned map; close() releases the fd, the pin stays. */
export function openPinnedMap(path: string, name?: string): BpfMap {
  return mapFromFd(openPinned(path), name);
}

/** Opens a map by its kernel id (e.g. an inner map id read from an array-of-maps). */
export function openMapById(id: number): BpfMap {
  return mapFromFd(check(`open of map id ${String(id)}`, libbpf().mapGetFdById(id)));
}

/** What the kernel says about a link fd (struct bpf_link_info: type, id, prog_id, xdp.ifindex). */
export interface LinkInfo {
  type: number;
  id: number;
  progId: number;
  ifindex: number;
}

export const BPF_LINK_TYPE_XDP = 6;
const BPF_XDP_ATTACH_TYPE = 37;

export function linkInfo(fd: number): LinkInfo {
  const b = objectInfo(fd, 64, `link fd ${String(fd)}`);
  return { type: b.readUInt32LE(0), id: b.readUInt32LE(4), progId: b.readUInt32LE(8), ifindex: b.readUInt32LE(16) };
}

/**
 * Attaches an XDP program to an interface through a new bpf_link; XdpFlags
 * SKB_MODE or DRV_MODE force a mode, 0 lets the kernel pick (native when the
 * driver has it). Returns the link fd; the link lives while the fd or a pin does.
 */
export function xdpLinkCreate(progFd: number, ifindex: number, flags: number): number {
  const opts = Buffer.alloc(32); // struct bpf_link_create_opts: size_t sz, __u32 flags, ...
  opts.writeBigUInt64LE(BigInt(opts.length), 0);
  opts.writeUInt32LE(flags, 8);
  return check(`XDP link to ifindex ${String(ifindex)}`, libbpf().linkCreate(progFd, ifindex, BPF_XDP_ATTACH_TYPE, opts), true);
}

/** Replaces the program of a link atomically: no packet is seen by neither program. */
export function linkUpdate(linkFd: number, progFd: number): void {
  check('update of the XDP link program', libbpf().linkUpdate(linkFd, progFd, null), true);
}

/** A new fd for a pinned object; the caller closes it with closeFd. */
export function openPinned(path: string): number {
  return check(`open of pinned ${path}`, libbpf().objGet(path));
}

/** Remove a pin (the object lives on while referenced). Missing pins are fine. */
export function unpin(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new XdplbError(ErrorCodes.BPF, `unpin of ${path} failed`, { cause: e });
    }
  }
}

export function closeFd(fd: number): void {
  libbpf().close(fd);
}

export interface TestRunInput {
  /** The frame given to the program. */
  data: Uint8Array;
  repeat?: number;
  /** Room for the output frame; default data + 512 bytes. */
  dataOutSize?: number;
}

export interface TestRunResult {
  retval: number;
  /** Average ns per repetition as the kernel measured it. */
  duration: number;
  /** The frame as the program left it. */
  data: Buffer;
}

/** BPF_PROG_TEST_RUN through bpf_prog_test_run_opts. */
export function testRun(progFd: number, input: TestRunInput): TestRunResult {
  const lib = libbpf();
  const dataIn = Buffer.from(input.data.buffer, input.data.byteOffset, input.data.length);
  const out = Buffer.alloc(input.dataOutSize ?? input.data.length + 512);
  const opts = {
    sz: lib.testRunOptsSize,
    data_in: dataIn,
    data_out: out,
    data_size_in: dataIn.length,
    data_size_out: out.length,
    ctx_in: null,
    ctx_out: null,
    ctx_size_in: 0,
    ctx_size_out: 0,
    retval: 0,
    repeat: input.repeat ?? 1,
    duration: 0,
    flags: 0,
    cpu: 0,
    batch_size: 0,
  };
  check('BPF_PROG_TEST_RUN', lib.progTestRun(progFd, opts));
  return { retval: opts.retval, duration: opts.duration, data: out.subarray(0, opts.data_size_out) };
}

export class BpfProgram {
  constructor(
    readonly name: string,
    private readonly handle: Handle,
  ) {}

  get fd(): number {
    return check(`fd of program ${this.name}`, libbpf().programFd(this.handle));
  }

  testRun(input: TestRunInput): TestRunResult {
    return testRun(this.fd, input);
  }
}

/** A BPF object file, opened and loaded into the kernel. */
export class BpfObject {
  private handle: Handle;
  private readonly maps = new Map<string, BpfMap>();

  private constructor(
    readonly path: string,
    handle: Handle,
  ) {
    this.handle = handle;
  }

  /** Open and load (verify) an object; close() releases everything not pinned or attached. */
  static load(path: string): BpfObject {
    const lib = libbpf();
    const handle = lib.objectOpenFile(path, null);
    if (isNull(handle)) throw bpfError(`open of BPF object ${path}`, lastErrno(), true);
    const obj = new BpfObject(path, handle);
    try {
      check(`load of BPF object ${path}`, lib.objectLoad(handle), true);
    } catch (e) {
      obj.close();
      throw e;
    }
    return obj;
  }

  private mapHandle(name: string): Handle {
    const h = libbpf().objectFindMap(this.handle, name);
    if (isNull(h)) throw new XdplbError(ErrorCodes.BPF, `map ${name} not found in ${this.path}`);
    return h;
  }

  program(name: string): BpfProgram {
    const h = libbpf().objectFindProgram(this.handle, name);
    if (isNull(h)) throw new XdplbError(ErrorCodes.BPF, `program ${name} not found in ${this.path}`);
    return new BpfProgram(name, h);
  }

  map(name: string): BpfMap {
    let m = this.maps.get(name);
    if (m === undefined) {
      const lib = libbpf();
      const h = this.mapHandle(name);
      m = new BpfMap(name, check(`fd of map ${name}`, lib.mapFd(h)), lib.mapType(h), lib.mapKeySize(h), lib.mapValueSize(h), lib.mapMaxEntries(h), false);
      this.maps.set(name, m);
    }
    return m;
  }

  close(): void {
    if (isNull(this.handle)) return;
    libbpf().objectClose(this.handle);
    this.handle = null;
    this.maps.clear();
  }
}
