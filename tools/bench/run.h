/*
 * Running one job under one engine, inside a child process of its own (so
 * each engine starts from a fresh address space and, for the kernel
 * engines, lives inside the benchmark's memory cgroup). The child maps the
 * region, populates it with the job's content, runs the timed phase and
 * hands a struct bench_result back to the parent through a pipe.
 */
#ifndef UPG_BENCH_RUN_H
#define UPG_BENCH_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include <upager/upager.h>

#include "job.h"

#define BENCH_NOTE_MAX	256

struct bench_result {
	enum bench_engine engine;
	int status;		/* 0, or -errno: the run failed (see note) */
	bool skipped;		/* the engine could not run here (see note) */
	char note[BENCH_NOTE_MAX];
	uint64_t size, budget;	/* bytes; budget as the engine applied it */
	uint64_t ops;		/* accesses in the timed phase */
	uint64_t bytes;		/* ... times bs */
	double populate_sec, run_sec;	/* populate_sec 0: region_reused */
	bool region_reused;	/* populated by an earlier job of the group */
	double cpu_sec;		/* the child's user + system time, timed phase */
	double sys_busy_pct;	/* all CPUs, from /proc/stat, timed phase */
	uint64_t faults;	/* major faults (kernel) or upager faults */
	/* Sampled single accesses, ns, in upg_lat_bucket() buckets. */
	uint64_t lat_hist[UPG_LAT_BUCKETS];
	uint64_t lat_min, lat_max, lat_samples;
	/* RAM at the end of the timed phase, bytes (see FAIRNESS in the man page). */
	uint64_t ram_resident;	/* resident pages of the process or cgroup */
	uint64_t ram_store;	/* compressed store (zram pool, upager zpool) */
	uint64_t ram_meta;	/* page tables, upager state tables */
	double compr_ratio;	/* 0: not known */
};

/* One access in this many is timed for the latency histogram. */
#define BENCH_LAT_SAMPLE	16

/*
 * Run each of @jobs (@nr >= 1) under @engine in this (child) process, one
 * after the other on one region: mapped and populated once, with the first
 * job's size, content and seed (the caller groups jobs that agree on them;
 * each job's ramp_time then warms the region up from where the previous
 * job left it). The kernel engines' limit is the parent's cgroup, upager's
 * its options. @res is filled for each job in turn and handed to @measured
 * (may be NULL) while the region is still mapped, so the parent can read
 * the cgroup's and zram's usage as they were. With @progress, a live
 * progress line goes to stderr. @populated (may be NULL) is called once the
 * region is populated, before the first job: the parent applies the
 * kernel engines' limit then (see bench/run-standard).
 */
void bench_run_group(const struct bench_job *const *jobs, size_t nr,
		     enum bench_engine engine, struct bench_result *res,
		     bool progress, void (*populated)(void *arg),
		     void (*measured)(struct bench_result *res, void *arg),
		     void *arg);

/* The @q quantile (0..1) of the sampled access latencies, ns. */
uint64_t bench_lat_quantile_ns(const struct bench_result *res, double q);

#endif
