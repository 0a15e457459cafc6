/* maglev.c: the C baseline of `npm run bench:ring`. The same fresh-Maglev
 * algorithm as src/core/maglev.ts (canonical key order, MurmurHash3 offsets
 * and skips, largest-remainder quotas, filling in turns), compiled with -O2 in
 * the benchmark's run. It prints the median build time and an FNV-1a checksum
 * of the slots, which the benchmark compares with the TypeScript table's, so
 * both sides are known to compute the same table.
 *
 * usage: maglev N M MIN_MS   (backend i has key "backend-<i>" and weight 1 + i % 4)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OFFSET_SEED 0x2c9277b5u
#define SKIP_SEED 0x7a3d1e4fu

struct backend { char key[32]; uint32_t weight; };

static uint32_t murmur3(const uint8_t *p, size_t len, uint32_t seed)
{
	uint32_t h = seed, k;
	size_t i, blocks = len & ~(size_t)3;

	for (i = 0; i < blocks; i += 4) {
		memcpy(&k, p + i, 4);
		k *= 0xcc9e2d51u; k = (k << 15) | (k >> 17); k *= 0x1b873593u;
		h ^= k; h = (h << 13) | (h >> 19); h = h * 5 + 0xe6546b64u;
	}
	k = 0;
	switch (len & 3) {
	case 3: k ^= (uint32_t)p[blocks + 2] << 16; /* fall through */
	case 2: k ^= (uint32_t)p[blocks + 1] << 8;  /* fall through */
	case 1: k ^= p[blocks];
		k *= 0xcc9e2d51u; k = (k << 15) | (k >> 17); k *= 0x1b873593u; h ^= k;
	}
	h ^= (uint32_t)len;
	h ^= h >> 16; h *= 0x85ebca6bu; h ^= h >> 13; h *= 0xc2b2ae35u; h ^= h >> 16;
	return h;
}

static int by_key(const void *a, const void *b) { return strcmp(((const struct backend *)a)->key, ((const struct backend *)b)->key); }

static const double *g_rem;
static int by_remainder(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	if (g_rem[x] != g_rem[y]) return g_rem[x] < g_rem[y] ? 1 : -1;
	return x < y ? -1 : 1;
}

/* One fresh table; `input` is in any order, `bs` is scratch of the same size. */
static void build(const struct backend *input, struct backend *bs, uint32_t n, uint32_t m, int32_t *owner,
		  uint32_t *offset, uint32_t *skip, int32_t *need, uint32_t *pos, uint32_t *active, double *rem, uint32_t *cand)
{
	uint64_t total = 0;
	uint32_t i, ncand = 0, nactive = 0;
	int64_t left = m;

	memcpy(bs, input, n * sizeof(*bs));
	qsort(bs, n, sizeof(*bs), by_key);
	for (i = 0; i < n; i++) {
		size_t len = strlen(bs[i].key);
		offset[i] = murmur3((const uint8_t *)bs[i].key, len, OFFSET_SEED) % m;
		skip[i] = murmur3((const uint8_t *)bs[i].key, len, SKIP_SEED) % (m - 1) + 1;
		total += bs[i].weight;
	}
	for (i = 0; i < n; i++) {
		uint64_t scaled = (uint64_t)m * bs[i].weight;
		need[i] = (int32_t)(scaled / total);
		rem[i] = (double)(scaled % total);
		left -= need[i];
		if (rem[i] > 0) cand[ncand++] = i;
	}
	g_rem = rem;
	qsort(cand, ncand, sizeof(*cand), by_remainder);
	for (i = 0; i < left; i++) need[cand[i]]++;

	for (i = 0; i < m; i++) owner[i] = -1;
	for (i = 0; i < n; i++) {
		pos[i] = offset[i];
		if (need[i] > 0) active[nactive++] = i;
	}
	while (nactive > 0) {
		uint32_t kept = 0;
		for (uint32_t a = 0; a < nactive; a++) {
			uint32_t b = active[a], stride = skip[b], p = pos[b];
			while (owner[p] != -1) { p += stride; if (p >= m) p -= m; }
			owner[p] = (int32_t)b;
			p += stride; if (p >= m) p -= m;
			pos[b] = p;
			if (--need[b] > 0) active[kept++] = b;
		}
		nactive = kept;
	}
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

int main(int argc, char **argv)
{
	if (argc != 4) { fprintf(stderr, "usage: maglev N M MIN_MS\n"); return 2; }
	uint32_t n = strtoul(argv[1], 0, 10), m = strtoul(argv[2], 0, 10);
	double min_ms = strtod(argv[3], 0), samples[1000];
	struct backend *in = calloc(n, sizeof(*in)), *bs = calloc(n, sizeof(*bs));
	int32_t *owner = malloc(m * sizeof(*owner)), *need = malloc(n * sizeof(*need));
	uint32_t *offset = malloc(n * 4), *skip = malloc(n * 4), *pos = malloc(n * 4), *active = malloc(n * 4), *cand = malloc(n * 4);
	double *rem = malloc(n * sizeof(double));
	int runs = 0;
	double spent = 0;

	for (uint32_t i = 0; i < n; i++) {
		snprintf(in[i].key, sizeof(in[i].key), "backend-%u", i);
		in[i].weight = 1 + i % 4;
	}
	while ((spent < min_ms || runs < 5) && runs < 1000) {
		double t0 = now_ms();
		build(in, bs, n, m, owner, offset, skip, need, pos, active, rem, cand);
		samples[runs] = now_ms() - t0;
		spent += samples[runs++];
	}
	qsort(samples, runs, sizeof(double), cmp_double);
	uint32_t fnv = 0x811c9dc5u;
	for (uint32_t s = 0; s < m; s++) {
		uint32_t v = (uint32_t)owner[s];
		for (int k = 0; k < 4; k++) { fnv ^= (v >> (8 * k)) & 0xff; fnv *= 16777619u; }
	}
	printf("{\"medianMs\": %.4f, \"runs\": %d, \"checksum\": %u}\n", samples[runs / 2], runs, fnv);
	return 0;
}
