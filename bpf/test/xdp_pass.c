/* xdp_pass.c: test support, never part of a deployment. A veth delivers
 * frames another veth sends with native XDP_TX only when the receiving end
 * has an XDP program of its own; the namespace tests attach this one (it
 * passes everything) to the switch-side peer of the load balancer's veth, as
 * a real NIC needs nothing of the kind. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
