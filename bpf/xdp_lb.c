/* xdp_lb.c: entry point of the xdplb XDP load balancer. The logic lives in
 * include/balancer.h; the maps in include/maps.h. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "balancer.h"

/* Read-only global that keeps enum xdplb_reason in the object's BTF, where
 * the ABI test compares it with src/bpf/abi.ts. The datapath never reads it. */
const volatile enum xdplb_reason xdplb_reason_max = XDPLB_REASON_MAX;

SEC("xdp")
int xdp_lb(struct xdp_md *ctx)
{
	return xdplb_balance(ctx);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
