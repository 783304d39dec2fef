/*
 * upager-demo: a program whose heap is served by upager, side by side with
 * the same work on the kernel's own anonymous memory.
 *
 * Two threads build an open-addressing hash table of 64-bit keys in a
 * region much larger than the caches (--size, default 1 GiB), then look
 * every key up again and check a checksum of the values. Every first touch
 * of a page is a page fault: upager's fault threads serve them for the
 * managed table, the kernel for the plain one. Both tables must give the
 * same checksum; the times and upager's fault counts are printed.
 *
 * A memory budget smaller than the working set (eviction to compressed
 * RAM) arrives with the pager issue; until then this demo shows the fault
 * engine alone.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <upager/upager.h>

#define NR_THREADS	2

struct table {
	uint64_t *slots;	/* key, value pairs; key 0 = empty */
	size_t nr_slots;	/* a power of two */
};

struct job {
	struct table *t;
	uint64_t first, count;	/* keys first .. first + count - 1 */
	uint64_t sum;
};

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

static void insert(struct table *t, uint64_t key, uint64_t value)
{
	for (size_t i = mix(key) & (t->nr_slots - 1);; i = (i + 1) & (t->nr_slots - 1)) {
		uint64_t expected = 0;

		if (__atomic_compare_exchange_n(&t->slots[2 * i], &expected, key, false,
						__ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
			t->slots[2 * i + 1] = value;
			return;
		}
	}
}

static uint64_t lookup(const struct table *t, uint64_t key)
{
	for (size_t i = mix(key) & (t->nr_slots - 1);; i = (i + 1) & (t->nr_slots - 1))
		if (t->slots[2 * i] == key)
			return t->slots[2 * i + 1];
}

static void *build(void *arg)
{
	struct job *j = arg;

	for (uint64_t k = j->first; k < j->first + j->count; k++)
		insert(j->t, k, mix(k * 7));
	return NULL;
}

static void *probe(void *arg)
{
	struct job *j = arg;

	for (uint64_t k = j->first; k < j->first + j->count; k++)
		j->sum += lookup(j->t, k);
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Fill the table to half its slots, then probe all; returns the checksum. */
static uint64_t run(struct table *t, double *build_s, double *probe_s)
{
	uint64_t keys = t->nr_slots / 2, sum = 0;
	struct job jobs[NR_THREADS];
	pthread_t th[NR_THREADS];
	double t0;

	for (int pass = 0; pass < 2; pass++) {
		t0 = now_s();
		for (int i = 0; i < NR_THREADS; i++) {
			jobs[i] = (struct job){ t, 1 + keys * (uint64_t)i / NR_THREADS,
				keys / NR_THREADS, 0 };
			pthread_create(&th[i], NULL, pass ? probe : build, &jobs[i]);
		}
		for (int i = 0; i < NR_THREADS; i++)
			pthread_join(th[i], NULL);
		*(pass ? probe_s : build_s) = now_s() - t0;
	}
	for (int i = 0; i < NR_THREADS; i++)
		sum += jobs[i].sum;
	return sum;
}

static size_t parse_size(const char *s)
{
	char *end;
	size_t v = strtoull(s, &end, 10);

	switch (*end) {
	case 'G': case 'g': v <<= 30; break;
	case 'M': case 'm': v <<= 20; break;
	}
	return v;
}

int main(int argc, char **argv)
{
	size_t size = 1ul << 30;
	struct upg_runtime *rt;
	struct upg_region *region;
	struct upg_stats st = { .size = sizeof(st) };
	struct table plain, managed;
	double kb, kp, ub, up;
	uint64_t ksum, usum;
	int ret;

	if (argc > 1 && !strncmp(argv[1], "--size=", 7))
		size = parse_size(argv[1] + 7);
	if (size < (1 << 20) || (size & (size - 1))) {
		fprintf(stderr, "upager-demo: --size must be a power of two, at least 1M\n");
		return 2;
	}
	plain.nr_slots = managed.nr_slots = size / 16;

	plain.slots = mmap(NULL, size, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (plain.slots == MAP_FAILED)
		return perror("mmap"), 1;
	ksum = run(&plain, &kb, &kp);
	munmap(plain.slots, size);

	ret = upg_runtime_create(NULL, &rt);	/* defaults + UPAGER_* */
	if (ret) {
		fprintf(stderr, "upager-demo: %s\n", strerror(-ret));
		return 1;
	}
	ret = upg_region_create(rt, size, &region);
	if (ret) {
		fprintf(stderr, "upager-demo: region: %s\n", strerror(-ret));
		return 1;
	}
	managed.slots = upg_region_addr(region);
	usum = run(&managed, &ub, &up);
	upg_stats_get(rt, &st);
	upg_region_destroy(region);
	upg_runtime_destroy(rt);

	printf("hash table of %zu MiB, %d threads, %zu keys\n", size >> 20,
	       NR_THREADS, plain.nr_slots / 2);
	printf("%-8s %10s %10s  %s\n", "memory", "build s", "probe s", "checksum");
	printf("%-8s %10.3f %10.3f  %016llx\n", "kernel", kb, kp, (unsigned long long)ksum);
	printf("%-8s %10.3f %10.3f  %016llx\n", "upager", ub, up, (unsigned long long)usum);
	printf("upager: %llu faults served, %llu pages filled, service p50 %.1f us p99 %.1f us\n",
	       (unsigned long long)st.faults, (unsigned long long)st.fill_pages,
	       (double)st.fault_ns_p50 / 1e3, (double)st.fault_ns_p99 / 1e3);
	if (ksum != usum) {
		fprintf(stderr, "upager-demo: CHECKSUMS DIFFER\n");
		return 1;
	}
	printf("checksums match\n");
	return 0;
}
