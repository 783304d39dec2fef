/*
 * upager-bench jobs: what one job asks for, read from a fio-shaped INI file
 * and/or from --key=value command-line options (fio's key names where fio
 * has one). A job is engine-neutral: the same struct is run under each
 * engine of --compare.
 */
#ifndef UPG_BENCH_JOB_H
#define UPG_BENCH_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum bench_rw {
	BENCH_READ,		/* sequential reads */
	BENCH_WRITE,		/* sequential writes */
	BENCH_RANDREAD,
	BENCH_RANDWRITE,
	BENCH_RW,		/* sequential, rwmixread % reads */
	BENCH_RANDRW,		/* random, rwmixread % reads */
};

enum bench_dist_kind {
	BENCH_DIST_RANDOM,	/* uniform */
	BENCH_DIST_ZIPF,	/* param: theta, > 0 and != 1 */
	BENCH_DIST_PARETO,	/* param: h, 0 < h < 1 */
	BENCH_DIST_NORMAL,	/* param: deviation in % of the range, > 0 */
};

enum bench_content {
	BENCH_CONTENT_TEXT,	/* words: LZ4 compresses it ~2.5-3x */
	BENCH_CONTENT_RANDOM,	/* incompressible */
	BENCH_CONTENT_ZERO,	/* all zero pages */
	BENCH_CONTENT_MIXED,	/* a fixed mix of the three, page by page */
};

enum bench_engine {
	BENCH_ENGINE_RAM,		/* plain anonymous memory, no limit */
	BENCH_ENGINE_KERNEL_ZRAM,	/* memory cgroup limit + zram (lz4) swap */
	BENCH_ENGINE_KERNEL_SWAPFILE,	/* memory cgroup limit + swap file */
	BENCH_ENGINE_UPAGER,		/* link mode, through the public API */
	BENCH_NR_ENGINES
};

#define BENCH_NAME_MAX	64

struct bench_job {
	char name[BENCH_NAME_MAX];	/* the [section]; "cmdline" if none */
	uint64_t size;			/* bytes of the region */
	uint64_t bs;			/* access unit, bytes */
	enum bench_rw rw;
	unsigned int rwmixread;		/* % of reads in rw/randrw */
	enum bench_dist_kind dist;
	double dist_param;
	unsigned int numjobs;		/* threads sharing the region */
	uint64_t runtime_ms;		/* 0: until loops are done */
	uint64_t ramp_ms;		/* untimed warm-up */
	bool time_based;		/* repeat passes until runtime */
	unsigned int loops;		/* passes over the region */
	/* Resident limit: budget_pct of size if budget_is_pct, else bytes. */
	bool budget_is_pct;
	double budget_pct;
	uint64_t budget;
	enum bench_content content;
	unsigned int engines;		/* 1 << enum bench_engine */
	uint64_t seed;
};

/* fio's defaults plus ours: 4 KiB, read, random dist, 1 thread, 1 loop. */
void bench_job_defaults(struct bench_job *job);

/*
 * Set one key from its text, as in a job file or "--key=value". Returns 0,
 * or -EINVAL / -ENOENT (unknown key) with "key: why" in @err (no file or
 * line: the caller adds those). Flags such as time_based take value NULL.
 */
int bench_job_set(struct bench_job *job, const char *key, const char *value,
		  char *err, size_t err_len);

/*
 * Check a whole job (budget within one page..size, numjobs > 0, size a
 * multiple of bs, ...) and resolve budget. Returns 0 or -EINVAL with @err.
 */
int bench_job_finish(struct bench_job *job, char *err, size_t err_len);

/* The budget in bytes (after bench_job_finish). */
uint64_t bench_job_budget(const struct bench_job *job);

/*
 * Parse a job file: [global] applies to every job that follows; each other
 * section is a job. @overrides (NULL-terminated "key=value" strings, from
 * the command line) apply after the file, to every job. On error returns
 * -EINVAL with "FILE:LINE: key: why" in @err (-errno if the file cannot be
 * read). On success *@jobs is a malloc'd array of *@nr_jobs finished jobs.
 * @path NULL: one job, "cmdline", from the defaults and @overrides.
 */
int bench_job_parse_file(const char *path, const char *const *overrides,
			 struct bench_job **jobs, size_t *nr_jobs,
			 char *err, size_t err_len);

/* Names for output: "randread", "zipf:0.99", "text", "kernel-zram". */
const char *bench_rw_name(enum bench_rw rw);
const char *bench_content_name(enum bench_content c);
const char *bench_engine_name(enum bench_engine e);
int bench_engine_parse(const char *name, enum bench_engine *out);
bool bench_rw_is_random(enum bench_rw rw);

#endif
