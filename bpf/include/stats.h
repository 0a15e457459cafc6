/* stats.h: per-CPU counter updates. Each counter array holds struct
 * lb_counter {packets, bytes}; per-CPU values need no atomics. */
#ifndef XDPLB_STATS_H
#define XDPLB_STATS_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include "abi.h"

static __always_inline void count_in(void *map, __u32 index, __u32 bytes)
{
	struct lb_counter *c = bpf_map_lookup_elem(map, &index);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

#endif /* XDPLB_STATS_H */
