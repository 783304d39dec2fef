/*
 * upg_advise, upg_pin, upg_unpin: calls that name managed memory by
 * address, as madvise(2) and mlock(2) do. They find the runtime that
 * manages the range, then act a block at a time: a prefetch goes through
 * the fault path (so it reserves room, reclaims and meets the OOM policy
 * like a fault), COLD through the pager's eviction, DONTNEED through the
 * kernel (its REMOVE event drops the state as for any MADV_DONTNEED).
 */
#include <errno.h>
#include <sched.h>
#include <sys/mman.h>

#define UPG_LOG_PREFIX "advise: "
#include "core.h"
#include "log.h"
#include "pagestate.h"
#include "pager.h"

#define PAGE		UPG_PAGE_SIZE
#define ADV_ALL		(UPG_ADV_WILLNEED | UPG_ADV_COLD | UPG_ADV_DONTNEED | UPG_ADV_HOT)

/* Is every page of [start, end) in an extent of @rt? (rt->lock held) */
static bool covered(struct upg_runtime *rt, uintptr_t start, uintptr_t end)
{
	while (start < end) {
		const struct upg_extent *e = upg_extent_find(rt, start);

		if (!e)
			return false;
		start = e->end;
	}
	return true;
}

/*
 * The runtime that manages all of [start, end), held until
 * upg_runtime_find_done(); -ENOMEM if there is none.
 */
static int find_range(uintptr_t start, uintptr_t end, struct upg_runtime **out)
{
	struct upg_runtime *rt = upg_runtime_find(start);
	bool ok;

	if (!rt)
		return -ENOMEM;
	pthread_rwlock_rdlock(&rt->lock);
	ok = covered(rt, start, end);
	pthread_rwlock_unlock(&rt->lock);
	if (!ok) {
		upg_runtime_find_done();
		return -ENOMEM;
	}
	*out = rt;
	return 0;
}

/* The block at @a and where the next one (or the extent) starts. */
struct block_at {
	struct upg_region *r;
	size_t b;
	uint64_t word;
	uintptr_t next;
};

/* Call with rt->lock held. */
static bool find_block(struct upg_runtime *rt, uintptr_t a, struct block_at *out)
{
	const struct upg_extent *e = upg_extent_find(rt, a);
	uintptr_t bend;

	if (!e)
		return false;
	out->r = e->region;
	out->b = (a - e->region->start) >> e->region->block_shift;
	out->word = __atomic_load_n(&out->r->state[out->b], __ATOMIC_ACQUIRE);
	bend = e->region->start + ((out->b + 1) << e->region->block_shift);
	out->next = bend < e->end ? bend : e->end;
	return true;
}

static bool block_at(struct upg_runtime *rt, uintptr_t a, struct block_at *out)
{
	bool ok;

	pthread_rwlock_rdlock(&rt->lock);
	ok = find_block(rt, a, out);
	pthread_rwlock_unlock(&rt->lock);
	return ok;
}

/* WILLNEED: bring back every evicted block; HOT: mark it referenced too. */
static void prefetch(struct upg_runtime *rt, uintptr_t start, uintptr_t end, bool hot)
{
	struct upg_counters *c = upg_shared_counters(rt);
	struct block_at at;

	for (uintptr_t a = start; a < end && block_at(rt, a, &at); a = at.next) {
		enum upg_ps s = upg_ps_state(at.word);

		/* HOT leaves compressed blocks where they are: no decompression. */
		if (s == UPG_PS_INACTIVE || (s == UPG_PS_COMPRESSED && !hot)) {
			upg_fault_handle(rt, c, a, UPG_FH_PREFETCH);
			upg_stat_inc(c, prefetch_blocks);
		} else if (hot && s == UPG_PS_RESIDENT) {
			/* A lost race is a block in use anyway. */
			__atomic_compare_exchange_n(&at.r->state[at.b], &at.word,
						    at.word | UPG_PS_REF, false,
						    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
		}
	}
	upg_pager_drops_flush(rt->pager, c);
}

/* Locks are taken a chunk at a time: unmap events and fork wait on them. */
#define COLD_CHUNK	(1ul << 20)

/* A block busy longer than this is left as it is (COLD is a hint). */
#define COLD_BUSY_NS	1000000000ull

static void cold(struct upg_runtime *rt, uintptr_t start, uintptr_t end)
{
	struct upg_counters *c = upg_shared_counters(rt);
	uint64_t busy_since = 0;

	for (uintptr_t a = start; a < end;) {
		uintptr_t stop = end - a > COLD_CHUNK ? a + COLD_CHUNK : end;
		const struct upg_extent *e;
		uintptr_t past_busy = 0;

		upg_pager_copy_lock(rt->pager);
		upg_pager_hold(rt->pager);
		pthread_rwlock_rdlock(&rt->lock);
		e = upg_extent_next(rt, a);
		if (e && e->start < stop) {
			struct upg_region *r = e->region;
			uintptr_t s = a > e->start ? a : e->start;
			uintptr_t t = stop < e->end ? stop : e->end;
			size_t b0 = (s - r->start) >> r->block_shift;
			size_t b1 = (t - 1 - r->start) >> r->block_shift;
			size_t done = upg_pager_cold(rt->pager, c, r, b0, b1 - b0 + 1);
			uintptr_t next = r->start + ((b0 + done) << r->block_shift);

			/* It stops at a busy block, and without UFFDIO_MOVE after each run. */
			stop = next < t ? next : t;
			past_busy = r->start + ((b0 + done + 1) << r->block_shift);
		}
		pthread_rwlock_unlock(&rt->lock);
		upg_pager_unhold(rt->pager);
		upg_pager_cold_finish(rt->pager, c);
		upg_pager_copy_unlock(rt->pager);
		if (stop > a) {
			busy_since = 0;
			a = stop;
			continue;
		}
		/* A busy block: a fill or an eviction, microseconds. */
		if (!busy_since) {
			busy_since = upg_now_ns();
		} else if (upg_now_ns() - busy_since > COLD_BUSY_NS) {
			busy_since = 0;
			a = past_busy > a ? past_busy : end;
			continue;
		}
		sched_yield();
	}
}

static int check_range(void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr;

	if ((a & (PAGE - 1)) || !len || a + len < a)
		return -EINVAL;
	return 0;
}

UPG_API int upg_advise(void *addr, size_t len, unsigned int advice)
{
	uintptr_t start = (uintptr_t)addr, end;
	struct upg_runtime *rt;
	int ret;

	ret = check_range(addr, len);
	if (ret || !advice || (advice & ~ADV_ALL) ||
	    ((advice & UPG_ADV_COLD) && (advice & (UPG_ADV_WILLNEED | UPG_ADV_HOT))) ||
	    ((advice & UPG_ADV_DONTNEED) && advice != UPG_ADV_DONTNEED))
		return -EINVAL;
	end = (start + len + PAGE - 1) & ~(PAGE - 1);
	ret = find_range(start, end, &rt);
	if (ret)
		return ret;
	if (advice & UPG_ADV_DONTNEED) {
		/* The kernel's REMOVE event drops blocks, slots and pins. */
		ret = madvise(addr, end - start, MADV_DONTNEED) ? -errno : 0;
	} else if (rt->pager) {
		if (advice & UPG_ADV_COLD)
			cold(rt, start, end);
		else
			prefetch(rt, start, end, advice & UPG_ADV_HOT);
	}
	upg_runtime_find_done();
	return ret;
}

/* Fill the pages of [start, end) that are not there (dropped since). */
static void fill_holes(struct upg_runtime *rt, uintptr_t start, uintptr_t end)
{
	unsigned char vec[UPG_FILL_MAX / PAGE];

	if (mincore((void *)start, end - start, vec))
		return;
	for (uintptr_t p = start; p < end; p += PAGE)
		if (!(vec[(p - start) / PAGE] & 1))
			upg_fault_handle(rt, upg_shared_counters(rt), p,
					 UPG_FH_PREFETCH | UPG_FH_POPULATE | UPG_FH_WRITE);
}

/*
 * Bring the block at @a in (filling it if never touched), pin it, then
 * fill what of [a, next) was dropped from it. -EIO if it will not stay in
 * for a second (a block that does not decode).
 */
static int pin_block(struct upg_runtime *rt, uintptr_t a, uintptr_t next)
{
	struct upg_counters *c = upg_shared_counters(rt);
	uint64_t t0 = upg_now_ns();
	struct block_at at;
	int ret;

	for (;;) {
		upg_fault_handle(rt, c, a, UPG_FH_PREFETCH | UPG_FH_POPULATE | UPG_FH_WRITE);
		if (!rt->pager)
			break;
		ret = 0;
		pthread_rwlock_rdlock(&rt->lock);
		if (find_block(rt, a, &at))
			ret = upg_pager_pin(rt->pager, at.r, at.b, true);
		pthread_rwlock_unlock(&rt->lock);
		if (ret != -EAGAIN)
			break;
		/* Evicted again, or refused for now: again, not for ever. */
		if (upg_now_ns() - t0 > 1000000000ull) {
			upg_err("pin: the block at %p does not stay in memory", (void *)a);
			return -EIO;
		}
		sched_yield();
	}
	fill_holes(rt, a, next);
	return 0;
}

static int pin_range(void *addr, size_t len, bool pin)
{
	uintptr_t start = (uintptr_t)addr, end, bs;
	struct upg_runtime *rt;
	struct block_at at;
	int ret;

	ret = check_range(addr, len);
	if (ret)
		return ret;
	end = (start + len + PAGE - 1) & ~(PAGE - 1);
	ret = find_range(start, end, &rt);
	if (ret)
		return ret;
	bs = rt->opts.block_size;
	if (pin && rt->pager &&
	    !upg_pager_pin_fits(rt->pager, ((end + bs - 1) / bs) - start / bs)) {
		upg_runtime_find_done();
		return -ENOMEM;
	}
	for (uintptr_t a = start; a < end && !ret && block_at(rt, a, &at); a = at.next) {
		if (pin) {
			ret = pin_block(rt, a, at.next);
			continue;
		}
		pthread_rwlock_rdlock(&rt->lock);
		if (rt->pager && find_block(rt, a, &at))
			upg_pager_pin(rt->pager, at.r, at.b, false);
		pthread_rwlock_unlock(&rt->lock);
	}
	upg_runtime_find_done();
	return ret;
}

UPG_API int upg_pin(void *addr, size_t len)
{
	return pin_range(addr, len, true);
}

UPG_API int upg_unpin(void *addr, size_t len)
{
	return pin_range(addr, len, false);
}
