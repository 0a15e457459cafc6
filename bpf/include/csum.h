/* csum.h: Internet checksum helpers for the headers the datapath writes.
 *
 * Sums are ones'-complement over 16-bit words as they lie in memory; the
 * folded result is stored back as it was computed, which is byte-order
 * neutral (RFC 1071), so nothing here swaps bytes.
 */
#ifndef XDPLB_CSUM_H
#define XDPLB_CSUM_H

#include <linux/types.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

/* Fold a 64-bit ones'-complement accumulator and complement it. */
static __always_inline __sum16 csum_fold64(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__sum16)~sum;
}

/* Fold to 32 bits without complementing, to seed bpf_csum_diff. */
static __always_inline __u32 csum_reduce32(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	return (__u32)sum;
}

/* Header checksum of a 20-byte IPv4 header (no options); the caller has
 * bounds-checked iph and zeroed iph->check. */
static __always_inline __sum16 ipv4_hdr_csum(const struct iphdr *iph)
{
	const __u16 *w = (const __u16 *)iph;
	__u64 sum = 0;

#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	return csum_fold64(sum);
}

#endif /* XDPLB_CSUM_H */
