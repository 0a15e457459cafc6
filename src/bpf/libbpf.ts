// libbpf.ts: the koffi binding to libbpf.so.1, and nothing else. Every
// function is declared once here with its C signature; callers use the typed
// wrappers in loader.ts, which turn negative returns into XdplbError. The
// library is opened on first use, not at import time.

import koffi, { type LibraryHandle } from 'koffi';
import { ErrorCodes, XdplbError } from '../core/errors.js';

/** struct bpf_test_run_opts (libbpf 1.1, bpf.h); passed _Inout_. */
export interface TestRunOptsValue {
  sz: number;
  data_in: Buffer | null;
  data_out: Buffer | null;
  data_size_in: number;
  data_size_out: number;
  ctx_in: Buffer | null;
  ctx_out: Buffer | null;
  ctx_size_in: number;
  ctx_size_out: number;
  retval: number;
  repeat: number;
  duration: number;
  flags: number;
  cpu: number;
  batch_size: number;
}

/** struct bpf_map_create_opts (libbpf 1.1, bpf.h). */
export interface MapCreateOptsValue {
  sz: number;
  btf_fd: number;
  btf_key_type_id: number;
  btf_value_type_id: number;
  btf_vmlinux_value_type_id: number;
  inner_map_fd: number;
  map_flags: number;
  map_extra: bigint;
  numa_node: number;
  map_ifindex: number;
}

/** Opaque libbpf handles are pointers, BigInt in koffi 3 (0n or null = NULL). */
export type Handle = bigint | null;

type Fn<A extends unknown[], R> = (...args: A) => R;

export interface Libbpf {
  readonly testRunOptsSize: number;
  readonly mapCreateOptsSize: number;
  readonly batchOptsSize: number;
  objectOpenFile: Fn<[path: string, opts: null], Handle>;
  objectLoad: Fn<[obj: Handle], number>;
  objectClose: Fn<[obj: Handle], void>;
  objectFindProgram: Fn<[obj: Handle, name: string], Handle>;
  objectFindMap: Fn<[obj: Handle, name: string], Handle>;
  programFd: Fn<[prog: Handle], number>;
  mapFd: Fn<[map: Handle], number>;
  mapType: Fn<[map: Handle], number>;
  mapKeySize: Fn<[map: Handle], number>;
  mapValueSize: Fn<[map: Handle], number>;
  mapMaxEntries: Fn<[map: Handle], number>;
  mapCreate: Fn<[type: number, name: string | null, keySize: number, valueSize: number, maxEntries: number, opts: MapCreateOptsValue], number>;
  mapUpdateElem: Fn<[fd: number, key: Buffer, value: Buffer, flags: bigint], number>;
  mapLookupElem: Fn<[fd: number, key: Buffer, value: Buffer], number>;
  mapDeleteElem: Fn<[fd: number, key: Buffer], number>;
  mapGetNextKey: Fn<[fd: number, key: Buffer | null, next: Buffer], number>;
  mapUpdateBatch: Fn<[fd: number, keys: Buffer, values: Buffer, count: Buffer, opts: Buffer], number>;
  /** libc mmap: MAP_FAILED is all ones. */
  mmap: Fn<[addr: null, length: number, prot: number, flags: number, fd: number, offset: bigint], bigint>;
  munmap: Fn<[addr: bigint, length: number], number>;
  /** memcpy into mapped memory, and out of it. */
  copyTo: Fn<[dst: bigint, src: Buffer, n: number], bigint>;
  copyFrom: Fn<[dst: Buffer, src: bigint, n: number], bigint>;
  /** glibc malloc_trim: returns free heap memory to the system. */
  mallocTrim: Fn<[pad: number], number>;
  objPin: Fn<[fd: number, path: string], number>;
  objGet: Fn<[path: string], number>;
  progTestRun: Fn<[fd: number, opts: TestRunOptsValue], number>;
  numPossibleCpus: Fn<[], number>;
  /** bpf_obj_get_info_by_fd: info is a zeroed buffer, infoLen a 1-element Uint32Array (in: size, out: filled). */
  objGetInfoByFd: Fn<[fd: number, info: Buffer, infoLen: Buffer], number>;
  mapGetFdById: Fn<[id: number], number>;
  mapLookupBatch: Fn<[fd: number, inBatch: Buffer | null, outBatch: Buffer, keys: Buffer, values: Buffer, count: Buffer, opts: Buffer], number>;
  /** bpf_link_create(prog_fd, ifindex, BPF_XDP, opts): opts is struct bpf_link_create_opts {sz, flags, ...}. */
  linkCreate: Fn<[progFd: number, targetFd: number, attachType: number, opts: Buffer], number>;
  linkUpdate: Fn<[linkFd: number, newProgFd: number, opts: null], number>;
  close: Fn<[fd: number], number>;
  /** The last libbpf log lines (verifier output on a failed load), oldest first. */
  recentLog(): string[];
}

const LOG_LINES = 400;
let bound: Libbpf | undefined;

/** The bindings, opened on first call. Throws XdplbError(BPF) if libbpf.so.1 is missing. */
export function libbpf(): Libbpf {
  bound ??= bind();
  return bound;
}

function bind(): Libbpf {
  let lib: LibraryHandle;
  let libc: LibraryHandle;
  try {
    lib = koffi.load('libbpf.so.1');
    libc = koffi.load('libc.so.6');
  } catch (cause) {
    throw new XdplbError(ErrorCodes.BPF, 'Could not load libbpf.so.1 (install libbpf1)', { cause });
  }

  const TestRunOpts = koffi.struct('xdplb_bpf_test_run_opts', {
    sz: 'size_t',
    data_in: 'void *',
    data_out: 'void *',
    data_size_in: 'uint32_t',
    data_size_out: 'uint32_t',
    ctx_in: 'void *',
    ctx_out: 'void *',
    ctx_size_in: 'uint32_t',
    ctx_size_out: 'uint32_t',
    retval: 'uint32_t',
    repeat: 'int',
    duration: 'uint32_t',
    flags: 'uint32_t',
    cpu: 'uint32_t',
    batch_size: 'uint32_t',
  });
  const MapCreateOpts = koffi.struct('xdplb_bpf_map_create_opts', {
    sz: 'size_t',
    btf_fd: 'uint32_t',
    btf_key_type_id: 'uint32_t',
    btf_value_type_id: 'uint32_t',
    btf_vmlinux_value_type_id: 'uint32_t',
    inner_map_fd: 'uint32_t',
    map_flags: 'uint32_t',
    map_extra: 'uint64_t',
    numa_node: 'uint32_t',
    map_ifindex: 'uint32_t',
  });

  // libbpf's messages are captured (and kept for error reports) instead of
  // going to stderr; vsnprintf formats the va_list libbpf hands over.
  const log: string[] = [];
  const vsnprintf = libc.func('int vsnprintf(_Out_ uint8_t *buf, size_t size, const char *fmt, void *ap)');
  const PrintFn = koffi.proto('int xdplb_libbpf_print_fn(int level, const char *fmt, void *ap)');
  const text = Buffer.alloc(8192);
  const printer = koffi.register((_level: number, fmt: string, ap: unknown) => {
    const n = vsnprintf(text, text.length, fmt, ap) as number;
    const chunk = text.toString('utf8', 0, Math.max(0, Math.min(n, text.length - 1)));
    for (const line of chunk.split('\n')) if (line !== '') log.push(line);
    if (log.length > LOG_LINES) log.splice(0, log.length - LOG_LINES);
    return 0;
  }, koffi.pointer(PrintFn));
  lib.func('void *libbpf_set_print(xdplb_libbpf_print_fn *fn)')(printer);

  const f = (decl: string) => lib.func(decl);
  return {
    testRunOptsSize: TestRunOpts.size,
    mapCreateOptsSize: MapCreateOpts.size,
    batchOptsSize: 24,
    objectOpenFile: f('void *bpf_object__open_file(const char *path, void *opts)'),
    objectLoad: f('int bpf_object__load(void *obj)'),
    objectClose: f('void bpf_object__close(void *obj)'),
    objectFindProgram: f('void *bpf_object__find_program_by_name(void *obj, const char *name)'),
    objectFindMap: f('void *bpf_object__find_map_by_name(void *obj, const char *name)'),
    programFd: f('int bpf_program__fd(void *prog)'),
    mapFd: f('int bpf_map__fd(void *map)'),
    mapType: f('int bpf_map__type(void *map)'),
    mapKeySize: f('uint32_t bpf_map__key_size(void *map)'),
    mapValueSize: f('uint32_t bpf_map__value_size(void *map)'),
    mapMaxEntries: f('uint32_t bpf_map__max_entries(void *map)'),
    mapCreate: f(
      'int bpf_map_create(int map_type, const char *name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, const xdplb_bpf_map_create_opts *opts)',
    ),
    mapUpdateElem: f('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
    mapLookupElem: f('int bpf_map_lookup_elem(int fd, const void *key, _Out_ void *value)'),
    mapDeleteElem: f('int bpf_map_delete_elem(int fd, const void *key)'),
    mapGetNextKey: f('int bpf_map_get_next_key(int fd, const void *key, _Out_ void *next_key)'),
    mapUpdateBatch: f('int bpf_map_update_batch(int fd, const void *keys, const void *values, void *count, const void *opts)'),
    mmap: libc.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)'),
    munmap: libc.func('int munmap(void *addr, size_t length)'),
    copyTo: libc.func('memcpy', 'void *', ['void *', 'const void *', 'size_t']),
    copyFrom: libc.func('memcpy', 'void *', ['_Out_ uint8_t *', 'const void *', 'size_t']),
    mallocTrim: libc.func('int malloc_trim(size_t pad)'),
    objPin: f('int bpf_obj_pin(int fd, const char *path)'),
    objGet: f('int bpf_obj_get(const char *path)'),
    progTestRun: f('int bpf_prog_test_run_opts(int prog_fd, _Inout_ xdplb_bpf_test_run_opts *opts)'),
    numPossibleCpus: f('int libbpf_num_possible_cpus(void)'),
    objGetInfoByFd: f('int bpf_obj_get_info_by_fd(int bpf_fd, _Inout_ uint8_t *info, _Inout_ uint8_t *info_len)'),
    mapGetFdById: f('int bpf_map_get_fd_by_id(uint32_t id)'),
    mapLookupBatch: f('int bpf_map_lookup_batch(int fd, void *in_batch, _Out_ uint8_t *out_batch, _Out_ uint8_t *keys, _Out_ uint8_t *values, _Inout_ uint8_t *count, const void *opts)'),
    linkCreate: f('int bpf_link_create(int prog_fd, int target_fd, int attach_type, const void *opts)'),
    linkUpdate: f('int bpf_link_update(int link_fd, int new_prog_fd, const void *opts)'),
    close: libc.func('int close(int fd)'),
    recentLog: () => log.slice(),
  } as Libbpf;
}

/** errno after a call that returned NULL (libbpf 1.x sets it). */
export function lastErrno(): number {
  return koffi.errno();
}
