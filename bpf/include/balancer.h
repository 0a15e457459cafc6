/* balancer.h: the load balancer's per-packet logic, xdplb_balance().
 *
 * Parse -> match a VIP -> hash the flow -> pick a backend (flow table, then
 * the VIP's Maglev table: the slot's backend, its alternate when that one is
 * down, then a few following slots) -> L2 DSR rewrite or IPIP encapsulation,
 * XDP_TX.
 * Traffic that is not for a VIP leaves with XDP_PASS, unmodified: host
 * networking must never break. Every packet is counted under exactly one
 * disposition reason (reasons.h).
 *
 * Fragments: every fragment of a VIP datagram, first or not, is matched in
 * lb_frag_vips by address and protocol and hashed with the ports word 0, so
 * all fragments of one datagram reach one backend (event EV_FRAGMENT).
 *
 * ICMP errors: a frag-needed / packet-too-big sent to a VIP quotes a packet
 * the backend sent (VIP:port -> client). It is matched by the quoted source,
 * hashed as the original client -> VIP flow and sent to that flow's backend.
 *
 * Kept in a header so that the benchmark wrapper (bench/xdp_bench.c) runs the
 * very same code as xdp_lb.c.
 */
#ifndef XDPLB_BALANCER_H
#define XDPLB_BALANCER_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "abi.h"
#include "constants.h"
#include "encap.h"
#include "flow_hash.h"
#include "icmp.h"
#include "maps.h"
#include "parsing.h"
#include "pkt.h"
#include "reasons.h"
#include "stats.h"

static __always_inline int lb_verdict(const struct pkt *p, __u32 reason, int action)
{
	count_in(&lb_reason_stats, reason, p->frame_len);
	return action;
}

static __always_inline void lb_event(const struct pkt *p, __u32 event)
{
	count_in(&lb_reason_stats, event, p->frame_len);
}

/* The destination address may be a VIP's (see struct vip_filter). */
static __always_inline int lb_maybe_vip(const struct flow_key *f)
{
	const struct vip_filter *filter;
	__u32 zero = 0, w, bucket;

	filter = bpf_map_lookup_elem(&lb_vip_filter, &zero);
	if (!filter)
		return 1;
	w = f->dst[0];
	if (f->family == XDPLB_FAMILY_V6)
		w ^= f->dst[1] ^ f->dst[2] ^ f->dst[3];
	bucket = (w * 0x9E3779B1u) >> (32 - XDPLB_VIP_FILTER_BITS);
	return (filter->words[(bucket / 64) & (XDPLB_VIP_FILTER_WORDS - 1)] >> (bucket & 63)) & 1;
}

/* Exact port first, then the port-0 wildcard if any VIP uses one. */
static __always_inline struct vip_meta *lb_lookup_vip(struct vip_key *k, const struct lb_ctl *ctl)
{
	struct vip_meta *m = bpf_map_lookup_elem(&lb_vips, k);

	if (m || !(ctl->flags & CTL_F_WILDCARD_VIPS))
		return m;
	k->port = 0;
	return bpf_map_lookup_elem(&lb_vips, k);
}

static __always_inline __u32 lb_flow_hash(const struct flow_key *f)
{
	__u32 ports;

	__builtin_memcpy(&ports, &f->sport, sizeof(ports));
	if (f->family == XDPLB_FAMILY_V4)
		return xdplb_flow_hash_v4(f->src[0], f->dst[0], ports, f->proto);
	return xdplb_flow_hash_v6(f->src, f->dst, ports, f->proto);
}

/* A backend can take traffic: marked valid and its MAC resolved. */
static __always_inline int backend_usable(const struct backend *be)
{
	__u16 m0, m1, m2;

	if (!(be->flags & BACKEND_F_VALID))
		return 0;
	__builtin_memcpy(&m0, &be->mac[0], 2);
	__builtin_memcpy(&m1, &be->mac[2], 2);
	__builtin_memcpy(&m2, &be->mac[4], 2);
	return (m0 | m1 | m2) != 0;
}

/* The backend was marked down: this node routes around it (lb_backend_down). */
static __always_inline int backend_down(__u32 idx)
{
	__u32 *down = bpf_map_lookup_elem(&lb_backend_down, &idx);

	return down && *down;
}

/* The backend at idx if it can take traffic now (usable and not down), else NULL. */
static __always_inline struct backend *lb_backend_up(__u32 idx)
{
	struct backend *be;

	if (idx == XDPLB_SLOT_NONE)
		return NULL;
	be = bpf_map_lookup_elem(&lb_backends, &idx);
	if (!be || !backend_usable(be) || backend_down(idx))
		return NULL;
	return be;
}

/* The VIP's Maglev table for this hash. slot = hash % M; the slot's primary
 * if it is usable and up; else the slot's alternate if usable and up (event
 * EV_ALTERNATE); else, for at most XDPLB_FALLBACK_PROBES following slots
 * (slot + 1, slot + 2, ... mod M), that slot's primary, then its alternate,
 * the first usable and up (event EV_FALLBACK). The choice depends only on the
 * maps, so every node with the same tables and down set picks the same
 * backend for a flow. Returns the backend and its index, or NULL with the
 * drop reason in *reason, which names the state of the slot's own backend:
 * none (DROP_NO_BACKEND: no table, empty slot), down (DROP_BACKEND_DOWN) or
 * unusable (DROP_BACKEND_UNRESOLVED). An empty slot has nothing to route
 * around: no alternate or fallback is tried. When nothing is down, this costs
 * one lookup of the primary's down state over the plain table read. */
static __always_inline struct backend *lb_table_select(const struct pkt *p, const struct vip_meta *m, __u32 hash,
						       __u32 *bidx, __u32 *hop, __u32 *reason)
{
	__u32 size = m->table_size, slot, idx, i;
	struct backend *be;
	__u64 *value, packed;
	void *table;

	*reason = XDPLB_DROP_NO_BACKEND;
	if (size == 0)
		return NULL;
	table = bpf_map_lookup_elem(&lb_tables, &m->table_slot);
	if (!table)
		return NULL;
	slot = hash % size;
	value = bpf_map_lookup_elem(table, &slot);
	if (!value)
		return NULL;
	packed = *value;
	*hop = (packed >> XDPLB_SLOT_HOP_SHIFT) & XDPLB_SLOT_INDEX_MASK;
	idx = packed & XDPLB_SLOT_INDEX_MASK;
	if (idx == XDPLB_SLOT_NONE)
		return NULL;
	be = bpf_map_lookup_elem(&lb_backends, &idx);
	if (!be)
		return NULL;
	if (backend_down(idx)) {
		*reason = XDPLB_DROP_BACKEND_DOWN;
	} else if (backend_usable(be)) {
		*bidx = idx;
		return be;
	} else {
		*reason = XDPLB_DROP_BACKEND_UNRESOLVED;
	}

	idx = (packed >> XDPLB_SLOT_ALT_SHIFT) & XDPLB_SLOT_INDEX_MASK;
	be = lb_backend_up(idx);
	if (be) {
		lb_event(p, XDPLB_EV_ALTERNATE);
		*bidx = idx;
		return be;
	}

	for (i = 0; i < XDPLB_FALLBACK_PROBES; i++) {
		if (++slot >= size)
			slot = 0;
		value = bpf_map_lookup_elem(table, &slot);
		if (!value)
			break;
		packed = *value;
		idx = packed & XDPLB_SLOT_INDEX_MASK;
		be = lb_backend_up(idx);
		if (!be) {
			idx = (packed >> XDPLB_SLOT_ALT_SHIFT) & XDPLB_SLOT_INDEX_MASK;
			be = lb_backend_up(idx);
		}
		if (be) {
			lb_event(p, XDPLB_EV_FALLBACK);
			*hop = (packed >> XDPLB_SLOT_HOP_SHIFT) & XDPLB_SLOT_INDEX_MASK;
			*bidx = idx;
			return be;
		}
	}
	return NULL;
}

/* Flow table (if the VIP uses it), then the table. Returns the backend and
 * its index, or NULL with the drop reason in *reason. A remembered backend
 * that is no longer usable or is down counts as stale: the flow takes the
 * table's choice (so an established flow leaves a dead backend too) and the
 * flow table remembers that one. */
static __always_inline struct backend *lb_select(const struct pkt *p, const struct vip_meta *m, struct flow_key *f,
						 __u32 hash, __u32 *bidx, __u32 *hop, __u32 *reason)
{
	int flow_table = m->flags & VIP_F_FLOW_TABLE;
	struct backend *be;
	__u32 idx, *cached;

	if (flow_table) {
		f->vip_id = m->vip_id;
		cached = bpf_map_lookup_elem(&lb_flows, f);
		if (cached) {
			idx = *cached;
			be = lb_backend_up(idx);
			if (be) {
				lb_event(p, XDPLB_EV_FLOW_TABLE_HIT);
				*bidx = idx;
				return be;
			}
			lb_event(p, XDPLB_EV_FLOW_TABLE_STALE);
		} else {
			lb_event(p, XDPLB_EV_FLOW_TABLE_MISS);
		}
	}

	be = lb_table_select(p, m, hash, &idx, hop, reason);
	if (!be)
		return NULL;
	if (flow_table)
		bpf_map_update_elem(&lb_flows, f, &idx, BPF_ANY);
	*bidx = idx;
	return be;
}

/* The encapsulated packet would exceed the MTU: tell the client, or drop. */
static __always_inline int lb_too_big(struct xdp_md *ctx, const struct pkt *p, const struct flow_key *f, __u32 mtu)
{
	int err;

	/* Never an ICMP error about an ICMP error; IPv4 without DF may not
	 * be answered with frag-needed (icmp.h). */
	if (p->icmp_error || (p->family == XDPLB_FAMILY_V4 && !p->df))
		return lb_verdict(p, XDPLB_DROP_TOO_BIG, XDP_DROP);
	if (p->family == XDPLB_FAMILY_V4)
		err = icmp4_too_big(ctx, p, f, mtu);
	else
		err = icmp6_too_big(ctx, p, f, mtu);
	if (err == -1)
		return lb_verdict(p, XDPLB_DROP_TOO_BIG, XDP_DROP);
	if (err)
		return lb_verdict(p, XDPLB_DROP_ENCAP_FAILED, XDP_DROP);
	return lb_verdict(p, XDPLB_ICMP_TOO_BIG_SENT, XDP_TX);
}

/* Send a VIP packet to its backend. f holds the flow as hashed (client ->
 * VIP); the ports are cleared here for source-IP affinity. */
static __always_inline int lb_forward(struct xdp_md *ctx, const struct pkt *p, const struct vip_meta *m,
				      struct flow_key *f, const struct lb_ctl *ctl)
{
	__u32 reason = XDPLB_DROP_NO_BACKEND, bidx = 0, hop = XDPLB_SLOT_NONE, hash, overhead;
	struct backend *be, *second = NULL;

	count_in(&lb_vip_stats, m->vip_id, p->frame_len);
	if (m->flags & VIP_F_SOURCE_IP_AFFINITY) {
		f->sport = 0;
		f->dport = 0;
	}
	hash = lb_flow_hash(f);
	be = lb_select(p, m, f, hash, &bidx, &hop, &reason);
	if (!be)
		return lb_verdict(p, reason, XDP_DROP);

	if (m->flags & VIP_F_MODE_L2DSR) {
		if (l2dsr_rewrite((void *)(long)ctx->data, (void *)(long)ctx->data_end, be, ctl))
			return lb_verdict(p, XDPLB_DROP_ENCAP_FAILED, XDP_DROP);
		count_in(&lb_backend_stats, bidx, p->frame_len);
		return lb_verdict(p, p->icmp_error ? XDPLB_FWD_ICMP_ERROR : XDPLB_FWD_L2DSR, XDP_TX);
	}

	if (m->flags & VIP_F_MODE_GUE) {
		/* The second hop goes along unless it is where the packet goes
		 * (the alternate took it) or has no address of the outer family
		 * (an entry never written has family 0). Only its address is
		 * used: its MAC need not be resolved here, and a hop that is down
		 * still goes, since its connections may outlive a probe. */
		if (hop != XDPLB_SLOT_NONE && hop != bidx) {
			second = bpf_map_lookup_elem(&lb_backends, &hop);
			if (second && second->family != be->family)
				second = NULL;
		}
		overhead = gue_overhead(be, second != NULL);
		if (ctl->mtu && p->l3_len + overhead > ctl->mtu)
			return lb_too_big(ctx, p, f, ctl->mtu - overhead);
		if (encap_gue(ctx, p, be, second, ctl, hash ^ p->ports))
			return lb_verdict(p, XDPLB_DROP_ENCAP_FAILED, XDP_DROP);
		count_in(&lb_backend_stats, bidx, p->frame_len);
		return lb_verdict(p, p->icmp_error ? XDPLB_FWD_ICMP_ERROR : XDPLB_FWD_GUE, XDP_TX);
	}

	overhead = encap_overhead(be);
	if (ctl->mtu && p->l3_len + overhead > ctl->mtu)
		return lb_too_big(ctx, p, f, ctl->mtu - overhead);
	/* The outer source varies with the real ports even under source-IP
	 * affinity, so that the backend's RSS spreads one client's flows. */
	if (encap_ipip(ctx, p, be, ctl, hash ^ p->ports))
		return lb_verdict(p, XDPLB_DROP_ENCAP_FAILED, XDP_DROP);
	count_in(&lb_backend_stats, bidx, p->frame_len);
	return lb_verdict(p, p->icmp_error ? XDPLB_FWD_ICMP_ERROR : XDPLB_FWD_IPIP, XDP_TX);
}

/* IPv4 header: fills p and the addresses of f. Returns the L4 protocol or a
 * PARSE_* error; *l3_end gets the end of the datagram the header claims. */
static __always_inline int lb_parse_v4(struct cursor *c, struct pkt *p, struct flow_key *f, void **l3_end)
{
	void *l3 = c->pos;
	struct iphdr *iph;
	__u32 len;
	__u8 frag;
	int proto;

	proto = parse_iphdr(c, &iph, &frag);
	if (proto < 0)
		return proto;
	len = bpf_ntohs(iph->tot_len);
	if (l3 + len > c->end)
		return PARSE_TRUNCATED;
	*l3_end = l3 + len;
	p->family = XDPLB_FAMILY_V4;
	p->l3_len = len;
	p->frag = frag;
	p->tos = iph->tos;
	p->df = (iph->frag_off & IP_DF_BE) != 0;
	f->src[0] = iph->saddr;
	f->dst[0] = iph->daddr;
	f->proto = proto;
	f->family = XDPLB_FAMILY_V4;
	return proto;
}

/* IPv6 header and extension headers; same contract as lb_parse_v4. */
static __always_inline int lb_parse_v6(struct cursor *c, struct pkt *p, struct flow_key *f, void **l3_end)
{
	void *l3 = c->pos;
	struct ipv6hdr *ip6;
	__u32 len;
	__u8 frag;
	int proto;

	proto = parse_ipv6hdr(c, &ip6, &frag);
	if (proto < 0)
		return proto;
	len = bpf_ntohs(ip6->payload_len);
	if (len == 0) /* jumbogram: not for a load balancer */
		return PARSE_INVALID;
	len += XDPLB_IPV6_HDR_LEN;
	if (l3 + len > c->end)
		return PARSE_TRUNCATED;
	if (c->pos > l3 + len) /* extension headers past the payload */
		return PARSE_INVALID;
	*l3_end = l3 + len;
	p->family = XDPLB_FAMILY_V6;
	p->l3_len = len;
	p->frag = frag;
	p->tos = (bpf_ntohl(*(__be32 *)ip6) >> 20) & 0xff;
	__builtin_memcpy(f->src, &ip6->saddr, 16);
	__builtin_memcpy(f->dst, &ip6->daddr, 16);
	f->proto = proto;
	f->family = XDPLB_FAMILY_V6;
	return proto;
}

/* TCP or UDP: find the VIP, check the L4 header, forward. */
static __always_inline int lb_handle_l4(struct xdp_md *ctx, struct cursor *c, struct pkt *p, struct flow_key *f,
					void *l3_end, const struct lb_ctl *ctl)
{
	struct vip_key k = {};
	struct vip_meta *m;
	struct tcphdr *tcp;
	struct udphdr *udp;
	__u32 len;

	__builtin_memcpy(k.addr, f->dst, sizeof(k.addr));
	k.proto = f->proto;
	k.family = p->family;

	if (p->frag) {
		m = bpf_map_lookup_elem(&lb_frag_vips, &k);
		if (!m)
			return lb_verdict(p, XDPLB_PASS_NOT_VIP, XDP_PASS);
		lb_event(p, XDPLB_EV_FRAGMENT);
		return lb_forward(ctx, p, m, f, ctl);
	}

	if (parse_ports(c, &p->ports) < 0 || c->pos + 4 > l3_end)
		return lb_verdict(p, XDPLB_PASS_MALFORMED, XDP_PASS);
	k.port = (__be16)(p->ports >> 16);
	m = lb_lookup_vip(&k, ctl);
	if (!m)
		return lb_verdict(p, XDPLB_PASS_NOT_VIP, XDP_PASS);

	if (f->proto == XDPLB_IPPROTO_TCP) {
		if (parse_tcphdr(c, &tcp, &len) < 0 || c->pos > l3_end)
			goto malformed;
	} else {
		void *l4 = c->pos;

		if (parse_udphdr(c, &udp, &len) < 0 || l4 + len > l3_end)
			goto malformed;
	}
	__builtin_memcpy(&f->sport, &p->ports, sizeof(p->ports));
	return lb_forward(ctx, p, m, f, ctl);

malformed:
	count_in(&lb_vip_stats, m->vip_id, p->frame_len);
	return lb_verdict(p, XDPLB_DROP_MALFORMED, XDP_DROP);
}

/* ICMP frag-needed / ICMPv6 packet-too-big addressed to a VIP: find the flow
 * it is about and send it to that flow's backend. */
static __always_inline int lb_handle_icmp(struct xdp_md *ctx, struct cursor *c, struct pkt *p, struct flow_key *f,
					  const struct lb_ctl *ctl)
{
	struct icmp_any_hdr *icmp;
	struct vip_key k = {};
	struct vip_meta *m;
	__u32 ports, swapped;
	__u8 inner_frag;
	int type, proto;

	if (p->frag) /* ICMP errors are small; a fragmented one is not ours */
		return lb_verdict(p, XDPLB_PASS_NOT_VIP, XDP_PASS);
	type = parse_icmp_any(c, &icmp);
	if (type < 0)
		return lb_verdict(p, XDPLB_PASS_MALFORMED, XDP_PASS);

	if (p->family == XDPLB_FAMILY_V4) {
		struct iphdr *in;

		if (type != XDPLB_ICMP_DEST_UNREACH || icmp->code != XDPLB_ICMP_FRAG_NEEDED)
			return lb_verdict(p, XDPLB_PASS_NOT_VIP, XDP_PASS);
		proto = parse_iphdr(c, &in, &inner_frag);
		if (proto < 0)
			return lb_verdict(p, XDPLB_PASS_MALFORMED, XDP_PASS);
		if (in->saddr != f->dst[0])
			return lb_verdict(p, XDPLB_PASS_NOT_VIP, XDP_PASS);
		f->src[0] = in->daddr;
	} else {
		struct ipv6hdr *in;

		if (type != XDPLB_ICMPV6_PKT_TOOBIG)
			return lb_verdict(p, XDPLB_PASS_NOT_VIP, XDP_PASS);
		proto = parse_ipv6hdr(c, &in, &inner_frag);
		if (proto < 0)
			return lb_verdict(p, XDPLB_PASS_MALFORMED, XDP_PASS);
		if (in->saddr.in6_u.u6_addr32[0] != f->dst[0] || in->saddr.in6_u.u6_addr32[1] != f->dst[1] ||
		    in->saddr.in6_u.u6_addr32[2] != f->dst[2] || in->saddr.in6_u.u6_addr32[3] != f->dst[3])
			return lb_verdict(p, XDPLB_PASS_NOT_VIP, XDP_PASS);
		__builtin_memcpy(f->src, &in->daddr, 16);
	}
	if (proto != XDPLB_IPPROTO_TCP && proto != XDPLB_IPPROTO_UDP)
		return lb_verdict(p, XDPLB_PASS_NOT_VIP, XDP_PASS);

	__builtin_memcpy(k.addr, f->dst, sizeof(k.addr));
	k.proto = proto;
	k.family = p->family;
	f->proto = proto;
	p->icmp_error = 1;

	if (inner_frag) {
		/* the quoted datagram was a fragment: same policy as fragments */
		m = bpf_map_lookup_elem(&lb_frag_vips, &k);
		p->ports = 0;
	} else {
		if (parse_ports(c, &ports) < 0)
			return lb_verdict(p, XDPLB_PASS_MALFORMED, XDP_PASS);
		k.port = (__be16)(ports & 0xffff); /* quoted source port = VIP port */
		m = lb_lookup_vip(&k, ctl);
		/* client -> VIP order: the quoted destination port comes first */
		swapped = (ports >> 16) | (ports << 16);
		__builtin_memcpy(&f->sport, &swapped, sizeof(swapped));
		p->ports = swapped;
	}
	if (!m)
		return lb_verdict(p, XDPLB_PASS_NOT_VIP, XDP_PASS);
	return lb_forward(ctx, p, m, f, ctl);
}

static __always_inline int xdplb_balance(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct cursor c = { .pos = data, .end = data_end };
	struct pkt p = { .frame_len = ctx->data_end - ctx->data };
	struct flow_key f = {};
	const struct lb_ctl *ctl;
	void *l3_end = data_end;
	struct ethhdr *eth;
	__u32 zero = 0;
	int proto;

	proto = parse_ethhdr(&c, &eth, &p.vlans);
	if (proto < 0)
		return lb_verdict(&p, XDPLB_PASS_MALFORMED, XDP_PASS);
	if (proto == ETH_P_IP_BE)
		proto = lb_parse_v4(&c, &p, &f, &l3_end);
	else if (proto == ETH_P_IPV6_BE)
		proto = lb_parse_v6(&c, &p, &f, &l3_end);
	else
		return lb_verdict(&p, XDPLB_PASS_NOT_IP, XDP_PASS);
	if (proto < 0)
		return lb_verdict(&p, XDPLB_PASS_MALFORMED, XDP_PASS);

	if (!lb_maybe_vip(&f))
		return lb_verdict(&p, XDPLB_PASS_NOT_VIP, XDP_PASS);
	ctl = bpf_map_lookup_elem(&lb_ctl, &zero);
	if (!ctl) /* an array always has key 0; keeps the verifier happy */
		return lb_verdict(&p, XDPLB_PASS_NOT_VIP, XDP_PASS);

	if (proto == XDPLB_IPPROTO_TCP || proto == XDPLB_IPPROTO_UDP)
		return lb_handle_l4(ctx, &c, &p, &f, l3_end, ctl);
	if ((proto == XDPLB_IPPROTO_ICMP && p.family == XDPLB_FAMILY_V4) ||
	    (proto == XDPLB_IPPROTO_ICMPV6 && p.family == XDPLB_FAMILY_V6))
		return lb_handle_icmp(ctx, &c, &p, &f, ctl);
	return lb_verdict(&p, XDPLB_PASS_NOT_VIP, XDP_PASS);
}

#endif /* XDPLB_BALANCER_H */
