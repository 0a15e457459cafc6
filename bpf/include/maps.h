/* maps.h: the maps of the load balancer program (xdp_lb.c).
 *
 * Tables are swapped whole. lb_tables is an ARRAY_OF_MAPS whose inner maps are
 * ARRAYs of __u32 slots (one Maglev table each; a slot packs its backend
 * index and its alternate's, see abi.h). The inner template carries
 * BPF_F_INNER_MAP, so every VIP's inner map may have its own size M; the
 * datapath indexes it with hash % vip_meta.table_size and an index past the
 * inner map's end simply misses (DROP_NO_BACKEND), never reads garbage.
 *
 * How the agent changes a VIP's table without a packet ever seeing half of it:
 *  - same size M: build a complete new inner map, then replace the inner map
 *    in the VIP's outer slot with one update of lb_tables. A packet sees the
 *    old table or the new one.
 *  - new size M': build the new inner map, put it in a FREE outer slot, then
 *    update the VIP's vip_meta with one hash update that carries both the new
 *    table_slot and M' (a packet reads vip_meta once, so slot and size always
 *    agree), then delete the old outer slot. Packets still holding the old
 *    inner map finish on it; the kernel frees it after an RCU grace period.
 *  - backends are written before the tables that point at them, tables before
 *    the VIPs that point at them; removal goes in the opposite order.
 */
#ifndef XDPLB_MAPS_H
#define XDPLB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "abi.h"
#include "constants.h"
#include "reasons.h"

/* VIP key -> vip_meta. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XDPLB_MAX_VIPS);
	__type(key, struct vip_key);
	__type(value, struct vip_meta);
} lb_vips SEC(".maps");

/* Single entry (key 0): the VIP address filter (abi.h). Written before VIPs
 * are added and narrowed only after VIPs are removed. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vip_filter);
} lb_vip_filter SEC(".maps");

/* Owner of the fragments of one address/protocol: {addr, port 0, proto,
 * family} -> vip_meta. Fragments (first or not) are matched here, not in
 * lb_vips, because a non-first fragment has no port: every fragment of a
 * datagram must resolve to the same VIP. The control plane writes one entry
 * per VIP address and protocol (the wildcard VIP if any, else the VIP with
 * the lowest port). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XDPLB_MAX_VIPS);
	__type(key, struct vip_key);
	__type(value, struct vip_meta);
} lb_frag_vips SEC(".maps");

/* Inner map template: one Maglev table, slot -> backend index, alternate and
 * second hop (packed, abi.h). BPF_F_MMAPABLE: the agent writes a whole table with one
 * memory copy into the new map (every inner map must carry the same flags). */
struct lb_table_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XDPLB_DEFAULT_TABLE_SIZE);
	__uint(map_flags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
};

/* Outer slot (vip_meta.table_slot) -> inner table. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, XDPLB_MAX_TABLE_SLOTS);
	__type(key, __u32);
	__array(values, struct lb_table_inner);
} lb_tables SEC(".maps");

/* Backend index -> backend. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XDPLB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct backend);
} lb_backends SEC(".maps");

/* Backend index -> down (1) or up (0): a backend this node routes around.
 * Separate from lb_backends so that one 4-byte write takes a backend out of
 * every table slot naming it (each slot then uses its alternate) and back,
 * without rewriting a table or the backend entry. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XDPLB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, __u32);
} lb_backend_down SEC(".maps");

/* Single entry (key 0): run-time settings. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_ctl);
} lb_ctl SEC(".maps");

/* Established flows -> backend index, for VIPs with VIP_F_FLOW_TABLE. Per-CPU
 * LRU lists: no cross-CPU lock on insert (RSS keeps a flow on one CPU). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XDPLB_FLOW_TABLE_SIZE);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct flow_key);
	__type(value, __u32);
} lb_flows SEC(".maps");

/* Per-CPU counters: by vip_id, by backend index, by reason code. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPLB_MAX_VIPS);
	__type(key, __u32);
	__type(value, struct lb_counter);
} lb_vip_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPLB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct lb_counter);
} lb_backend_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPLB_REASON_MAX);
	__type(key, __u32);
	__type(value, struct lb_counter);
} lb_reason_stats SEC(".maps");

#endif /* XDPLB_MAPS_H */
