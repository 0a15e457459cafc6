/* xdp_bench.c: benchmark wrappers, never attached to an interface.
 *
 * BPF_PROG_TEST_RUN's repeat loop hands the program the buffer the previous
 * repetition left behind. Each program here runs its body, then restores the
 * original frame from bench_pkt (undo the head growth of an encapsulation,
 * write back the headers), so every repetition sees the same input; with
 * vary_off set, a 32-bit counter is written there after each repetition (a
 * new flow every time, e.g. a new client address); without, the same store
 * writes the frame's first bytes back, so every case pays the same. The
 * floor wraps a bare XDP_PASS in the same restore, so ratios compare the
 * load balancer's own cost. The load balancer is the code of xdp_lb.c
 * (include/balancer.h) with its own copy of the maps; bench_decap is the
 * backend's decap program (include/decap.h), second chance included.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "balancer.h"
#include "decap.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bench_tmpl);
} bench_pkt SEC(".maps");

static __always_inline void bench_restore(struct xdp_md *ctx)
{
	struct bench_tmpl *t;
	__u32 zero = 0;
	long grown;
	__u64 n;

	t = bpf_map_lookup_elem(&bench_pkt, &zero);
	if (!t)
		return;
	/* grown > 0: an encapsulation added headers; < 0: a decapsulation took them off */
	grown = (long)(ctx->data_end - ctx->data) - (long)t->len;
	if (grown != 0 && grown >= -128 && grown <= 64)
		bpf_xdp_adjust_head(ctx, (int)grown);
	n = t->copy_len;
	/* keep the two bounds as two branches on n itself for the verifier */
	asm volatile("" : "+r"(n));
	if (n <= XDPLB_BENCH_MAX_COPY) {
		asm volatile("" : "+r"(n));
		if (n > 0)
			bpf_xdp_store_bytes(ctx, 0, t->bytes, n);
	}
	/* Every case, floor included, pays for the same 4-byte store: a counter
	 * at vary_off (a new flow each repetition), else the frame's own first
	 * bytes written back in place. */
	{
		__u32 off = t->vary_off, v;

		if (off)
			v = t->counter++;
		else
			__builtin_memcpy(&v, t->bytes, sizeof(v));
		bpf_xdp_store_bytes(ctx, off, &v, sizeof(v));
	}
}

SEC("xdp")
int bench_floor(struct xdp_md *ctx)
{
	bench_restore(ctx);
	return XDP_PASS;
}

SEC("xdp")
int bench_lb(struct xdp_md *ctx)
{
	int action = xdplb_balance(ctx);

	bench_restore(ctx);
	return action;
}

SEC("xdp")
int bench_decap(struct xdp_md *ctx)
{
	int action = xdplb_decap(ctx);

	bench_restore(ctx);
	return action;
}

/* The bare floor, without restore: what PLATFORM.md calls ~12 ns/packet. */
SEC("xdp")
int bench_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
