/*
 * loop_baseline: the plainest C loop doing what an upager-bench "ram" job
 * does — touch random (or sequential) 4 KiB units of a populated anonymous
 * region, reading every word of each — with nothing else in the loop. The
 * quality bar of issue 3: upager-bench's ram engine must reach at least 90%
 * of this loop's ops/s (bench/check-loop-overhead runs both).
 *
 * usage: loop_baseline SIZE_MIB SECONDS seq|rand
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	uint64_t x = 88172645463325252ull, sum = 0, ops = 0;
	size_t size, units;
	double secs, t0, t;
	uint8_t *p;
	int rand;

	if (argc != 4)
		return fprintf(stderr, "usage: loop_baseline SIZE_MIB SECONDS seq|rand\n"), 2;
	size = strtoull(argv[1], NULL, 10) << 20;
	secs = atof(argv[2]);
	rand = !strcmp(argv[3], "rand");
	units = size / 4096;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return perror("mmap"), 1;
	for (size_t i = 0; i < size; i += 8)
		*(uint64_t *)(p + i) = i * 0x9e3779b97f4a7c15ull;	/* not zero pages */
	t0 = now();
	do {
		for (int k = 0; k < 4096; k++, ops++) {
			size_t u;
			const uint64_t *w;

			x ^= x << 13;	/* xorshift64: the cheapest decent draw */
			x ^= x >> 7;
			x ^= x << 17;
			u = rand ? (size_t)((__extension__ (unsigned __int128)x * units) >> 64) : ops % units;
			w = (const uint64_t *)(p + u * 4096);
			for (int i = 0; i < 512; i++)
				sum += w[i];
		}
		t = now();
	} while (t - t0 < secs);
	printf("loop_baseline: %s ops/s=%.0f (sum %llx)\n", argv[3], (double)ops / (t - t0),
	       (unsigned long long)sum);
	return 0;
}
