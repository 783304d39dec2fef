/*
 * Out of memory: what happens when the budget cannot be kept at run time
 * (the oom policy: wait, kill or ask the application), and whether a
 * region that could not fit budget + store is created at all (the
 * overcommit policy).
 */
#ifndef UPG_OOM_H
#define UPG_OOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <upager/upager.h>

struct upg_runtime;
struct upg_counters;

/*
 * A fill that has waited this long for room with nothing freed anywhere
 * meets the policy. Long enough that an evictor between two batches, or
 * a zpool compacting, is never taken for it.
 */
#define UPG_OOM_DETECT_MS	1000
#define UPG_OOM_WAIT_MS_DEFAULT	10000
/* overcommit=heuristic: the best compression it counts on (LZ4, text ~2.7). */
#define UPG_OVERCOMMIT_RATIO	4

/* One fill's wait for room, across its retries; zero it first. */
struct upg_room_wait {
	uint64_t since_ns;	/* waiting with nothing freed since */
	uint64_t freed_seq;	/* the pager's release count then */
	uint64_t asked_ns;	/* oom_callback last asked */
	bool reported;		/* logged and counted already */
};

/*
 * The budget cannot be kept: apply rt's policy. Returns when the fill
 * should keep waiting (oom=wait within its limit, or the callback says
 * retry); ends the process otherwise.
 */
void upg_oom(struct upg_runtime *rt, struct upg_counters *c,
	     struct upg_room_wait *w, uint64_t now_ns);

/*
 * May a region of @len bytes be created? 0, or -ENOMEM (logged, counted)
 * when the overcommit policy refuses it. Always 0 without a budget.
 */
int upg_oom_admit(struct upg_runtime *rt, size_t len);

#endif
