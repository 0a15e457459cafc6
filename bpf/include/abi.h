/* abi.h: every struct shared between the datapath and the control plane.
 *
 * This is the one definition: src/bpf/abi.ts encodes and decodes the same
 * layouts and test/datapath/abi.test.ts checks its sizes and offsets against
 * the BTF of the built object. Rules: fixed-width types only, byte order in
 * the type (__be16/__be32 fields hold network order), explicit padding that
 * the writer zeroes (hash keys are compared bytewise), no implicit holes.
 *
 * Addresses are 16 bytes for both families: an IPv4 address sits in the
 * first 4 bytes and the other 12 are zero.
 */
#ifndef XDPLB_ABI_H
#define XDPLB_ABI_H

#include <linux/types.h>

/* Key of the VIP map. port 0 is the wildcard: every port of `proto` on
 * `addr`, looked up only after the exact port missed. */
struct vip_key {
	__be32 addr[4];
	__be16 port;
	__u8 proto;  /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family; /* XDPLB_FAMILY_V4 / _V6 */
};

/* vip_meta.flags */
#define VIP_F_SOURCE_IP_AFFINITY (1u << 0) /* hash without ports */
#define VIP_F_MODE_L2DSR (1u << 1)         /* MAC rewrite instead of IPIP */
#define VIP_F_FLOW_TABLE (1u << 2)         /* remember flows in the LRU flow table */
#define VIP_F_MODE_GUE (1u << 3)           /* GUE (IP in UDP) with the slot's second hop instead of IPIP */

/* Value of the VIP map (and of the fragment-owner map). One hash update
 * replaces the whole value, so table_slot and table_size always change
 * together; this is what makes a table resize atomic (see maps.h). */
struct vip_meta {
	__u32 vip_id;     /* index into the per-VIP counter array */
	__u32 flags;      /* VIP_F_* */
	__u32 table_slot; /* index into lb_tables (outer array of maps) */
	__u32 table_size; /* M: entries of that inner table, a prime */
};

/* Value of a table slot (the __u64 of an inner map of lb_tables): three
 * backend indices in one word, so a slot's alternate and second hop are read
 * with its owner in one lookup. Bits 0-15: the primary (the slot's owner);
 * bits 16-31: the alternate the control plane precomputed for it, taken when
 * the primary is down or unusable (balancer.h); bits 32-47: the second hop,
 * the slot's previous owner, sent along with GUE so the owner's host can
 * forward a packet of a flow it does not know (docs/second-chance.md); bits
 * 48-63: reserved, all ones. XDPLB_SLOT_NONE in a field means "none", so a
 * backend index is always below it (the agent never allocates 0xffff) and a
 * slot with all fields none has no backend. */
#define XDPLB_SLOT_INDEX_MASK 0xffffu /* primary = value & mask */
#define XDPLB_SLOT_ALT_SHIFT 16       /* alternate = (value >> shift) & mask */
#define XDPLB_SLOT_HOP_SHIFT 32       /* second hop = (value >> shift) & mask */
#define XDPLB_SLOT_NONE 0xffffu       /* no backend in this field */

/* backend.flags */
#define BACKEND_F_VALID (1u << 0) /* entry usable; clear to drain instantly */

/* Entry of the backend array, indexed by the values stored in the tables.
 * mac is the next hop toward the backend for IPIP, the backend's own MAC for
 * L2 DSR. A zero MAC or a clear VALID flag means "unresolved": drop. */
struct backend {
	__be32 addr[4];
	__u8 family; /* outer header family for IPIP */
	__u8 flags;  /* BACKEND_F_* */
	__u8 mac[6];
};

/* lb_ctl.flags */
#define CTL_F_WILDCARD_VIPS (1u << 0) /* some VIP uses port 0: do the second lookup */

/* The single entry of the control array: values that change at run time. */
struct lb_ctl {
	__u8 src_mac[6];          /* source MAC of every frame we transmit */
	__u16 mtu;                /* L3 MTU toward backends; 0 = no check, else >= 1280 */
	__be32 v4_src_prefix;     /* outer IPv4 source = prefix | (entropy & ~mask) */
	__be32 v4_src_mask;       /* netmask of that prefix, e.g. 255.255.0.0 */
	__be32 v6_src_prefix[4];  /* outer IPv6 source = first 96 bits | entropy */
	__u32 flags;              /* CTL_F_* */
	__u32 pad;
};

/* The VIP address filter: one bit per hash bucket of destination addresses,
 * set for every bucket that holds a VIP address (any port, any protocol).
 * A clear bit proves a packet is not for a VIP, so host traffic leaves after
 * one array read instead of a hash lookup. Bucket of an address: fold it to
 * one word w (IPv4: the address; IPv6: xor of its four words, both loaded
 * little-endian as in flow_hash.h), then (w * 0x9E3779B1) >> (32 - BITS). */
#define XDPLB_VIP_FILTER_BITS 16
#define XDPLB_VIP_FILTER_WORDS ((1u << XDPLB_VIP_FILTER_BITS) / 64)
struct vip_filter {
	__u64 words[XDPLB_VIP_FILTER_WORDS];
};

/* Key of the flow (connection) table: the flow as hashed, i.e. client to
 * VIP, ports zero under source-IP affinity or for fragments. */
struct flow_key {
	__be32 src[4];
	__be32 dst[4];
	__be16 sport;
	__be16 dport;
	__u32 vip_id;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

/* Value of every counter array (per CPU): the loader sums over CPUs. */
struct lb_counter {
	__u64 packets;
	__u64 bytes;
};

/* Key of the decap program's local-VIP set (value: __u32, unused, 1). */
struct decap_key {
	__be32 addr[4];
	__u8 family;
	__u8 pad[3];
};

/* GUE header, variant 0 (draft-ietf-intarea-gue), after the outer UDP
 * header of a VIP in GUE mode. hlen_c: the top two bits the version (0),
 * then C (0: data), then Hlen, the 32-bit words of private data that follow
 * (0: no second hop, else a struct gue_hop with the address of the outer
 * family: 2 words for IPv4, 5 for IPv6). proto: the inner IP protocol (4 or
 * 41). flags: 0. */
struct gue_hdr {
	__u8 hlen_c;
	__u8 proto;
	__be16 flags;
};

/* xdplb's GUE private data: the slot's second hop. hops_left is 1 from the
 * load balancer; the owner's host sets it to 0 when it forwards the packet,
 * so the second hop delivers it whatever it knows. addr holds 4 or 16 bytes
 * (the outer family), as Hlen says. */
#define XDPLB_GUE_HOP_MAGIC 0x78 /* 'x' */
#define XDPLB_GUE_HOP_VERSION 1
struct gue_hop {
	__u8 magic;
	__u8 version;
	__u8 hops_left;
	__u8 family; /* XDPLB_FAMILY_V4 / _V6 */
	__be32 addr[4];
};

/* Benchmark only (bench/xdp_bench.c): the packet every repetition of
 * BPF_PROG_TEST_RUN must see again. The wrapper undoes head growth, then
 * writes back the first copy_len bytes; with vary_off set it also rewrites
 * the 32-bit field at that offset with a counter (a new flow each run). */
#define XDPLB_BENCH_MAX_COPY 256
struct bench_tmpl {
	__u32 len;      /* frame length as given to the test run */
	__u32 copy_len; /* bytes written back from `bytes`, <= XDPLB_BENCH_MAX_COPY */
	__u32 vary_off; /* offset of the varied 32-bit field, 0 = none */
	__u32 counter;  /* value written at vary_off next */
	__u8 bytes[XDPLB_BENCH_MAX_COPY];
};

#endif /* XDPLB_ABI_H */
