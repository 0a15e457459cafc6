/* flow_hash.h: the flow hash shared by the XDP datapath and the control plane.
 *
 * This header is plain C so that the same code compiles for BPF (clang -target
 * bpf) and natively (cc), which is how the TypeScript port in
 * src/core/flow-hash.ts is checked against it (test/vectors/flow-hash.json).
 *
 * The hash is Bob Jenkins' lookup3 word hash (the one Linux calls jhash2),
 * run over 32-bit words taken from the packet:
 *
 *   IPv4: saddr, daddr, ports, proto                      (4 words)
 *   IPv6: saddr[0..3], daddr[0..3], ports, proto          (10 words)
 *
 * Addresses and ports are the packet's bytes loaded as little-endian 32-bit
 * words, which is what a plain load does on x86-64 and arm64, so the datapath
 * never byte-swaps. "ports" is the first 4 bytes of the TCP/UDP header
 * (source port then destination port, as on the wire). With source-IP
 * affinity the ports word is 0, so every connection of a client to a VIP
 * lands on the same backend. The table index is hash % M.
 */
#ifndef XDPLB_FLOW_HASH_H
#define XDPLB_FLOW_HASH_H

#ifdef __bpf__
#include <linux/types.h>
#define XDPLB_INLINE static __always_inline
#else
#include <stdint.h>
typedef uint32_t __u32;
#define XDPLB_INLINE static inline
#endif

/* Seed of the flow hash; changing it re-maps every flow on every node, so it is
 * part of the table format (see TABLE_FORMAT_VERSION in src/core). */
#define XDPLB_FLOW_HASH_SEED 0x78646c62u /* "xdlb" */
#define XDPLB_JHASH_INIT 0xdeadbeefu     /* lookup3's initial value */

#define XDPLB_ROL32(x, k) (((x) << (k)) | ((x) >> (32 - (k))))

#define XDPLB_JHASH_MIX(a, b, c)                     \
	do {                                             \
		a -= c; a ^= XDPLB_ROL32(c, 4);  c += b; \
		b -= a; b ^= XDPLB_ROL32(a, 6);  a += c; \
		c -= b; c ^= XDPLB_ROL32(b, 8);  b += a; \
		a -= c; a ^= XDPLB_ROL32(c, 16); c += b; \
		b -= a; b ^= XDPLB_ROL32(a, 19); a += c; \
		c -= b; c ^= XDPLB_ROL32(b, 4);  b += a; \
	} while (0)

#define XDPLB_JHASH_FINAL(a, b, c)                \
	do {                                          \
		c ^= b; c -= XDPLB_ROL32(b, 14);      \
		a ^= c; a -= XDPLB_ROL32(c, 11);      \
		b ^= a; b -= XDPLB_ROL32(a, 25);      \
		c ^= b; c -= XDPLB_ROL32(b, 16);      \
		a ^= c; a -= XDPLB_ROL32(c, 4);       \
		b ^= a; b -= XDPLB_ROL32(a, 14);      \
		c ^= b; c -= XDPLB_ROL32(b, 24);      \
	} while (0)

/* IPv4 flow: 4 words = one mix round and a final round over the last word. */
XDPLB_INLINE __u32 xdplb_flow_hash_v4(__u32 saddr, __u32 daddr, __u32 ports, __u32 proto)
{
	__u32 a, b, c;

	a = b = c = XDPLB_JHASH_INIT + (4u << 2) + XDPLB_FLOW_HASH_SEED;
	a += saddr;
	b += daddr;
	c += ports;
	XDPLB_JHASH_MIX(a, b, c);
	a += proto;
	XDPLB_JHASH_FINAL(a, b, c);
	return c;
}

/* IPv6 flow: 10 words = three mix rounds and a final round over the last word. */
XDPLB_INLINE __u32 xdplb_flow_hash_v6(const __u32 saddr[4], const __u32 daddr[4], __u32 ports, __u32 proto)
{
	__u32 a, b, c;

	a = b = c = XDPLB_JHASH_INIT + (10u << 2) + XDPLB_FLOW_HASH_SEED;
	a += saddr[0];
	b += saddr[1];
	c += saddr[2];
	XDPLB_JHASH_MIX(a, b, c);
	a += saddr[3];
	b += daddr[0];
	c += daddr[1];
	XDPLB_JHASH_MIX(a, b, c);
	a += daddr[2];
	b += daddr[3];
	c += ports;
	XDPLB_JHASH_MIX(a, b, c);
	a += proto;
	XDPLB_JHASH_FINAL(a, b, c);
	return c;
}

#endif /* XDPLB_FLOW_HASH_H */
