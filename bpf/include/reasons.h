/* reasons.h: the stable reason codes of the xdplb datapath.
 *
 * Every packet the load balancer or the decap program sees is counted under
 * exactly one DISPOSITION code (why it was passed, forwarded, answered or
 * dropped), so the disposition counters add up to the packets seen. A few
 * EVENT codes (fragment, flow-table hit/miss/stale, alternate, fallback) are
 * counted in addition to the disposition; they explain a path, they do not
 * sum.
 *
 * The numbers are an ABI: the control plane, dashboards and tests read the
 * counter map by index. Append new codes before XDPLB_REASON_MAX (whatever
 * their kind; event codes carry the XDPLB_EV_ prefix); never renumber or
 * reuse one. src/bpf/abi.ts mirrors this enum and a test checks
 * it against the BTF of the built object.
 */
#ifndef XDPLB_REASONS_H
#define XDPLB_REASONS_H

enum xdplb_reason {
	/* dispositions: exactly one per packet */
	XDPLB_PASS_NOT_IP = 0,           /* not IPv4/IPv6 (ARP, LLDP, ...) */
	XDPLB_PASS_NOT_VIP = 1,          /* IP, but no VIP matches: host traffic */
	XDPLB_PASS_MALFORMED = 2,        /* unparsable before we could tell it is for a VIP */
	XDPLB_FWD_IPIP = 3,              /* encapsulated to a backend, XDP_TX */
	XDPLB_FWD_L2DSR = 4,             /* MAC-rewritten to a backend, XDP_TX */
	XDPLB_FWD_ICMP_ERROR = 5,        /* ICMP error about a VIP flow sent to its backend */
	XDPLB_ICMP_TOO_BIG_SENT = 6,     /* encapsulated packet over MTU: ICMP reply to the client */
	XDPLB_DROP_MALFORMED = 7,        /* for a VIP, but with a broken L4 header */
	XDPLB_DROP_NO_BACKEND = 8,       /* VIP without table, empty table or empty slot */
	XDPLB_DROP_BACKEND_UNRESOLVED = 9, /* backend entry not valid or without MAC */
	XDPLB_DROP_TOO_BIG = 10,         /* over MTU and no ICMP possible (IPv4 DF clear, ICMP error) */
	XDPLB_DROP_ENCAP_FAILED = 11,    /* bpf_xdp_adjust_head/tail refused: no headroom */
	XDPLB_DECAP_OK = 12,             /* decap: outer header stripped, inner to the stack */
	XDPLB_DECAP_PASS_NOT_TUNNEL = 13, /* decap: not IPIP/IPv6-in-IP, passed untouched */
	XDPLB_DECAP_PASS_NOT_LOCAL = 14, /* decap: tunnel, but inner destination not a local VIP */
	XDPLB_DECAP_PASS_FRAGMENT = 15,  /* decap: fragmented outer packet, left to the stack */
	XDPLB_DROP_DECAP_FAILED = 16,    /* decap: bpf_xdp_adjust_head refused after rewrite */
	/* events: counted in addition to the disposition */
	XDPLB_EV_FRAGMENT = 17,          /* VIP fragment, hashed on addresses only */
	XDPLB_EV_FLOW_TABLE_HIT = 18,    /* flow table gave a valid backend */
	XDPLB_EV_FLOW_TABLE_MISS = 19,   /* flow table missed, entry inserted */
	XDPLB_EV_FLOW_TABLE_STALE = 20,  /* flow table hit an invalid or down backend: table used */
	XDPLB_DROP_BACKEND_DOWN = 21,    /* the slot's backend is down and no alternate or fallback took it */
	XDPLB_EV_ALTERNATE = 22,         /* the slot's backend down or unusable: its alternate took the packet */
	XDPLB_EV_FALLBACK = 23,          /* backend and alternate out: a following slot's backend took it */
	XDPLB_FWD_GUE = 24,              /* GUE-encapsulated to a backend (with the slot's second hop, if any), XDP_TX */
	XDPLB_DECAP_FWD_SECOND_HOP = 25, /* decap: a flow this host does not know, sent on to its second hop */
	XDPLB_EV_SC_SYN = 26,            /* decap, GUE: a new flow (SYN) delivered here */
	XDPLB_EV_SC_LOCAL = 27,          /* decap, GUE: a packet of a local socket delivered here */
	XDPLB_EV_SC_COOKIE = 28,         /* decap, GUE: an ACK with a valid syncookie delivered here */
	XDPLB_EV_SC_NO_HOP = 29,         /* decap, GUE: no second hop (left): delivered here, not judged */
	XDPLB_REASON_MAX = 30,
};

#endif /* XDPLB_REASONS_H */
