/*
 * The kernel engines' set-up: what users would run instead of upager. A
 * memory cgroup whose limit is the job's budget (the resident limit), and
 * swap behind it: zram with lz4 (kernel-zram) or a swap file
 * (kernel-swapfile). Root only. Everything set up is undone by
 * bench_kernel_teardown(), which is also run at exit and on SIGINT,
 * SIGTERM and SIGHUP, so a benchmark never leaves swap on, zram
 * configured or a cgroup behind.
 */
#ifndef UPG_BENCH_KERNEL_H
#define UPG_BENCH_KERNEL_H

#include <stdint.h>
#include <sys/types.h>

#include "job.h"

struct bench_kernel_env;

struct bench_kernel_usage {
	uint64_t cgroup_bytes;		/* memory charged to the cgroup now */
	uint64_t cgroup_peak;		/* its maximum (v1 max_usage, v2 peak) */
	uint64_t zram_orig_bytes;	/* zram mm_stat: data stored, before */
	uint64_t zram_compr_bytes;	/* ... after compression */
	uint64_t zram_mem_bytes;	/* ... memory zram uses (not charged) */
	uint64_t zram_mem_peak;
	uint64_t swap_used_bytes;	/* of our swap device or file */
};

/*
 * Can this process run kernel engines? 0, or -EPERM (not root) / -ENOENT
 * (no memory cgroup, no zram module) with the reason in @err.
 */
int bench_kernel_check(enum bench_engine e, char *err, size_t err_len);

/*
 * Set up @e: a cgroup "upager-bench-PID" limited to @budget bytes of
 * memory, and swap of @swap_size bytes: /dev/zram0 (lz4) or a file in
 * @swap_dir. Refuses (-EBUSY, with why in @err) to touch a zram device
 * that is configured or a swap something else has on. Returns 0 and sets
 * *@out.
 */
int bench_kernel_setup(enum bench_engine e, uint64_t budget, uint64_t swap_size,
		       const char *swap_dir, struct bench_kernel_env **out,
		       char *err, size_t err_len);

/*
 * Change the cgroup's limit: UINT64_MAX for none. Lowering it reclaims
 * (swaps out) down to the new limit before it returns.
 */
int bench_kernel_set_limit(struct bench_kernel_env *env, uint64_t bytes);

/* Move @pid into the cgroup (before it allocates what it measures). */
int bench_kernel_enter(struct bench_kernel_env *env, pid_t pid);

int bench_kernel_usage(struct bench_kernel_env *env, struct bench_kernel_usage *u);

/* Undo all of it, in reverse order; NULL is fine; idempotent. */
void bench_kernel_teardown(struct bench_kernel_env *env);

#endif
