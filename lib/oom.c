/*
 * The oom and overcommit policies (oom.h). The pager notices that room
 * cannot be made (room_check in pager.c: a fill waited UPG_OOM_DETECT_MS
 * and nothing was freed); this file decides what follows, logs it and
 * counts it. Ending the process is the one place the library does so: it
 * is what the application asked for with oom=kill (or oom=wait's limit),
 * and a silent hang or a wrong page are the alternatives.
 */
#include <errno.h>
#include <signal.h>
#include <unistd.h>

#define UPG_LOG_PREFIX "oom: "
#include "core.h"
#include "log.h"
#include "oom.h"
#include "pager.h"

#define KIB(b)	((b) >> 10)

static const char *const policy_name[] = { "wait", "kill", "callback" };

/* SIGKILL, as the kernel's OOM killer: no handler runs on a heap in doubt. */
static _Noreturn void die(const struct upg_runtime *rt, const struct upg_oom_info *i)
{
	upg_err("out of memory (%s) for %llu ms: resident %zu KiB of a %zu KiB budget, "
		"%zu KiB of it pinned; zpool %zu KiB of %zu KiB (0: no cap); "
		"ending the process (oom=%s)", i->why, (unsigned long long)i->waited_ms,
		KIB(i->resident), KIB(i->budget), KIB(i->pinned), KIB(i->zpool),
		KIB(i->zpool_max), policy_name[rt->opts.oom]);
	kill(getpid(), SIGKILL);
	for (;;)
		pause();
}

void upg_oom(struct upg_runtime *rt, struct upg_counters *c,
	     struct upg_room_wait *w, uint64_t now_ns)
{
	const struct upg_options *o = &rt->opts;
	unsigned int limit_ms = o->oom_wait_ms ? o->oom_wait_ms : UPG_OOM_WAIT_MS_DEFAULT;
	struct upg_oom_info info;

	upg_pager_oom_info(rt->pager, &info);
	info.waited_ms = (now_ns - w->since_ns) / 1000000;
	if (!w->reported) {
		w->reported = true;
		upg_stat_inc(c, oom_events);
		upg_warn("the budget cannot be kept (%s): resident %zu KiB of %zu KiB, "
			 "%zu KiB pinned, zpool %zu KiB; oom=%s", info.why,
			 KIB(info.resident), KIB(info.budget), KIB(info.pinned),
			 KIB(info.zpool), policy_name[o->oom]);
	}
	switch (o->oom) {
	case UPG_OOM_KILL:
		die(rt, &info);
	case UPG_OOM_WAIT:
		if (info.waited_ms >= limit_ms)
			die(rt, &info);
		return;
	case UPG_OOM_CALLBACK:
		if (w->asked_ns && now_ns - w->asked_ns < 1000000000ull)
			return;
		w->asked_ns = now_ns;
		upg_stat_inc(c, oom_callbacks);
		if (o->oom_callback(&info, o->oom_callback_arg) == UPG_OOM_DIE)
			die(rt, &info);
		return;
	}
}

static size_t sat_add(size_t a, size_t b)
{
	return a + b < a ? SIZE_MAX : a + b;
}

static size_t sat_mul(size_t a, size_t b)
{
	return b && a > SIZE_MAX / b ? SIZE_MAX : a * b;
}

/*
 * What budget + zpool can hold, in bytes of the application's data (a
 * swap store adds its size on top: it holds pages as they are).
 */
static size_t capacity(const struct upg_options *o)
{
	size_t budget = o->budget ? o->budget : o->budget_total;
	size_t store = o->zpool_max ? o->zpool_max : o->budget_total;
	size_t cap;

	if (!store)	/* no cap of its own: the zpool can grow to the RAM */
		store = (size_t)sysconf(_SC_PHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE);
	if (o->overcommit == UPG_OVERCOMMIT_HEURISTIC)
		return sat_add(budget, sat_mul(store, UPG_OVERCOMMIT_RATIO));
	/* never: as if no page compressed; budget_total holds both. */
	cap = sat_add(budget, store);
	return o->budget_total && cap > o->budget_total ? o->budget_total : cap;
}

int upg_oom_admit(struct upg_runtime *rt, size_t len)
{
	const struct upg_options *o = &rt->opts;
	size_t managed = 0, cap;

	if (!rt->pager || o->overcommit == UPG_OVERCOMMIT_ALWAYS)
		return 0;
	cap = sat_add(capacity(o), upg_pager_swap_capacity(rt->pager));
	pthread_rwlock_rdlock(&rt->lock);
	for (const struct upg_region *r = rt->regions; r; r = r->next)
		managed += r->mapped_len;
	pthread_rwlock_unlock(&rt->lock);
	if (len <= cap && managed <= cap - len)
		return 0;
	upg_stat_inc(upg_shared_counters(rt), overcommit_refused);
	upg_err("a region of %zu KiB refused (overcommit=%s): with the %zu KiB managed "
		"already it passes the %zu KiB that budget and store can hold",
		KIB(len), o->overcommit == UPG_OVERCOMMIT_NEVER ? "never" : "heuristic",
		KIB(managed), KIB(cap));
	return -ENOMEM;
}
