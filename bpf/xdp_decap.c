/* xdp_decap.c: entry point of the backend-side IPIP decapsulation program;
 * the logic and its maps live in include/decap.h. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "decap.h"

SEC("xdp")
int xdp_decap(struct xdp_md *ctx)
{
	return xdplb_decap(ctx);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
