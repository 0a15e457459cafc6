/* flow_hash_vectors.c: prints test vectors of bpf/include/flow_hash.h, compiled
 * natively, as JSON. `--check FILE`-less use: `./gen > flow-hash.json` makes
 * the file; test/unit/flow-hash.test.ts recompiles this program and compares
 * its output with the committed file, and checks the TypeScript port against
 * the same file, so the C header, the file and src/core/flow-hash.ts agree.
 */
#include <stdio.h>
#include <string.h>
#include "../../bpf/include/flow_hash.h"

static __u32 rng_state = 0x12345678u;
static __u32 rnd(void)
{ /* xorshift32: a fixed sequence on every machine */
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

static __u32 le32(const unsigned char *b) { return b[0] | b[1] << 8 | b[2] << 16 | (__u32)b[3] << 24; }

static void hex(const unsigned char *b, int n)
{
	for (int i = 0; i < n; i++) printf("%02x", b[i]);
}

static int first = 1;

static void vector(int family, const unsigned char *src, const unsigned char *dst,
		   unsigned sport, unsigned dport, unsigned proto, int affinity_src_ip)
{
	int alen = family == 6 ? 16 : 4;
	/* The ports word exactly as the datapath loads it: 4 wire bytes, little-endian. */
	unsigned char l4[4] = { sport >> 8, sport & 0xff, dport >> 8, dport & 0xff };
	__u32 ports = affinity_src_ip ? 0 : le32(l4), h;

	if (family == 4) {
		h = xdplb_flow_hash_v4(le32(src), le32(dst), ports, proto);
	} else {
		__u32 s[4], d[4];
		for (int i = 0; i < 4; i++) { s[i] = le32(src + 4 * i); d[i] = le32(dst + 4 * i); }
		h = xdplb_flow_hash_v6(s, d, ports, proto);
	}
	printf("%s\n  {\"src\": \"", first ? "" : ",");
	first = 0;
	hex(src, alen);
	printf("\", \"dst\": \"");
	hex(dst, alen);
	printf("\", \"sport\": %u, \"dport\": %u, \"proto\": %u, \"affinity\": \"%s\", \"hash\": %u}",
	       sport, dport, proto, affinity_src_ip ? "sourceIp" : "fiveTuple", h);
}

int main(void)
{
	unsigned char z[16] = { 0 }, ff[16], a[16], b[16];

	memset(ff, 0xff, sizeof(ff));
	printf("{\"description\": \"flow hash vectors of bpf/include/flow_hash.h (test/vectors/flow_hash_vectors.c)\",\n \"vectors\": [");
	/* Edge cases: zero and all-ones addresses and ports. */
	for (int aff = 0; aff < 2; aff++) {
		vector(4, z, z, 0, 0, 6, aff);
		vector(4, ff, ff, 65535, 65535, 17, aff);
		vector(6, z, z, 0, 0, 6, aff);
		vector(6, ff, ff, 65535, 65535, 17, aff);
	}
	/* A readable pair: 10.0.0.1:12345 -> 192.0.2.10:80/TCP. */
	unsigned char c4[4] = { 10, 0, 0, 1 }, v4[4] = { 192, 0, 2, 10 };
	vector(4, c4, v4, 12345, 80, 6, 0);
	vector(4, c4, v4, 12345, 80, 6, 1);
	/* Random flows, v4 and v6, TCP and UDP, both affinities. */
	for (int i = 0; i < 200; i++) {
		for (int k = 0; k < 16; k++) { a[k] = rnd() & 0xff; b[k] = rnd() & 0xff; }
		vector(i % 2 ? 6 : 4, a, b, rnd() & 0xffff, rnd() & 0xffff, i % 3 ? 6 : 17, i % 5 == 0);
	}
	printf("\n]}\n");
	return 0;
}
