/* constants.h: compile-time capacities and pre-swapped wire constants of the
 * xdplb datapath.
 *
 * Capacities are #ifndef-guarded so a build can override them with -D; the
 * TypeScript loader reads the real sizes back from the loaded maps, so an
 * override needs no change on the control-plane side. Wire constants are
 * spelled in network byte order once, here, so the per-packet code compares
 * raw header fields and never calls htons/htonl.
 */
#ifndef XDPLB_CONSTANTS_H
#define XDPLB_CONSTANTS_H

#include <linux/types.h>
#include <bpf/bpf_endian.h>

/* The datapath loads packet words natively and treats them as little-endian
 * (see flow_hash.h): only little-endian BPF targets are supported. */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "xdplb supports little-endian BPF targets only"
#endif

/* Number of VIP entries (service keys) one node can serve; sizes the VIP hash
 * map and the per-VIP counters. */
#ifndef XDPLB_MAX_VIPS
#define XDPLB_MAX_VIPS 4096
#endif

/* Outer slots of the table-of-tables: twice the VIPs, so that every VIP can
 * hold a second (fresh) slot while its table changes size. */
#ifndef XDPLB_MAX_TABLE_SLOTS
#define XDPLB_MAX_TABLE_SLOTS (2 * XDPLB_MAX_VIPS)
#endif

/* Backend entries shared by all VIPs (a backend serving several VIPs may use
 * one index or several; the agent decides). */
#ifndef XDPLB_MAX_BACKENDS
#define XDPLB_MAX_BACKENDS 65536
#endif

/* Entries of the connection (flow) table. The LRU is per CPU
 * (BPF_F_NO_COMMON_LRU), so each CPU owns about SIZE / ncpus entries. */
#ifndef XDPLB_FLOW_TABLE_SIZE
#define XDPLB_FLOW_TABLE_SIZE 262144
#endif

/* Maglev table sizes: primes from 251 up to 1048573 (checked by the control
 * plane). The inner-map template uses the default; BPF_F_INNER_MAP lets every
 * VIP's inner map have its own size. */
#ifndef XDPLB_DEFAULT_TABLE_SIZE
#define XDPLB_DEFAULT_TABLE_SIZE 65537
#endif
#define XDPLB_MIN_TABLE_SIZE 251
#define XDPLB_MAX_TABLE_SIZE 1048573

/* IPv6 extension headers walked before giving up on a packet: bounds the
 * parser loop for the verifier; real traffic rarely carries more than two. */
#ifndef XDPLB_MAX_IPV6_EXT_HDRS
#define XDPLB_MAX_IPV6_EXT_HDRS 4
#endif

/* Entries of the decap program's local-VIP set. */
#ifndef XDPLB_DECAP_MAX_VIPS
#define XDPLB_DECAP_MAX_VIPS 4096
#endif

/* Table slots hold two 16-bit backend indices (abi.h), so no more backends
 * than a 16-bit index reaches; the agent allocates indices below 0xffff. */
#if XDPLB_MAX_BACKENDS > 65536
#error "XDPLB_MAX_BACKENDS: table slots carry 16-bit backend indices (abi.h)"
#endif

/* A table slot holding this value has no backend and no alternate (both
 * halves XDPLB_SLOT_NONE, e.g. a VIP kept while all its backends are gone):
 * the packet is dropped as DROP_NO_BACKEND. */
#define XDPLB_BACKEND_NONE 0xffffffffu

/* Slots after its own that a packet whose backend and alternate are both
 * down or unusable may try (each: its owner, then its alternate) before it
 * is dropped as DROP_BACKEND_DOWN. Bounded for the verifier and the cost of
 * a packet nobody can take; a few are enough because alternates already
 * cover one failure per slot, and Maglev slots next to each other belong to
 * unrelated backends. */
#ifndef XDPLB_FALLBACK_PROBES
#define XDPLB_FALLBACK_PROBES 4
#endif

/* Address families as carried in map keys and backend entries (AF_INET /
 * AF_INET6 values, so tools print them naturally). */
#define XDPLB_FAMILY_V4 2
#define XDPLB_FAMILY_V6 10

/* Ethertypes, network byte order: the parser compares h_proto directly. */
#define ETH_P_IP_BE bpf_htons(0x0800)
#define ETH_P_IPV6_BE bpf_htons(0x86DD)
#define ETH_P_8021Q_BE bpf_htons(0x8100)
#define ETH_P_8021AD_BE bpf_htons(0x88A8)

/* IPv4 fragment field bits, network byte order. */
#define IP_DF_BE bpf_htons(0x4000)
#define IP_MF_BE bpf_htons(0x2000)
#define IP_OFFSET_BE bpf_htons(0x1FFF)
#define IP_FRAG_BITS_BE (IP_MF_BE | IP_OFFSET_BE)

/* IPv6 fragment header: offset (high 13 bits) and M flag, network order. */
#define IP6_FRAG_OFFSET_BE bpf_htons(0xFFF8)
#define IP6_FRAG_MF_BE bpf_htons(0x0001)

/* IP protocol numbers (one byte, no swapping needed). */
#define XDPLB_IPPROTO_HOPOPTS 0
#define XDPLB_IPPROTO_ICMP 1
#define XDPLB_IPPROTO_IPIP 4
#define XDPLB_IPPROTO_TCP 6
#define XDPLB_IPPROTO_UDP 17
#define XDPLB_IPPROTO_IPV6 41
#define XDPLB_IPPROTO_ROUTING 43
#define XDPLB_IPPROTO_FRAGMENT 44
#define XDPLB_IPPROTO_ICMPV6 58
#define XDPLB_IPPROTO_DSTOPTS 60

/* ICMP types and codes we generate or forward. */
#define XDPLB_ICMP_DEST_UNREACH 3
#define XDPLB_ICMP_FRAG_NEEDED 4
#define XDPLB_ICMPV6_PKT_TOOBIG 2

/* Hop limit of every header we write (outer encapsulation, ICMP replies). */
#define XDPLB_TTL 64

/* UDP destination port of GUE packets (VIPs in GUE mode, docs/second-chance.md). */
#define XDPLB_GUE_PORT 6080
#define XDPLB_UDP_HDR_LEN 8
#define XDPLB_GUE_HDR_LEN 4

/* ICMP "too big" replies quote as much of the offending packet as the RFCs
 * allow: an IPv4 reply is 576 bytes in all (RFC 1812 4.3.2.3), an IPv6 one is
 * 1280 (RFC 4443 2.4(c)). Both are multiples of 4 for bpf_csum_diff. The
 * control plane only accepts an MTU of 0 (no check) or >= 1280, so a packet
 * that triggers a reply is always long enough to fill the quote. */
#define XDPLB_ICMP4_QUOTE_LEN (576 - 20 - 8)
#define XDPLB_ICMP6_QUOTE_LEN (1280 - 40 - 8)
#define XDPLB_MIN_MTU 1280

/* Encapsulation overheads. */
#define XDPLB_IPV4_HDR_LEN 20
#define XDPLB_IPV6_HDR_LEN 40

#endif /* XDPLB_CONSTANTS_H */
