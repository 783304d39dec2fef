/*
 * Regions and the extent table. A region is an anonymous mapping registered
 * with the runtime's userfaultfd, with its block state table. The extent
 * table maps addresses to regions for the fault path; it holds only what is
 * still mapped, because the application may munmap or mremap parts of a
 * region, and the addresses freed may be handed out again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define UPG_LOG_PREFIX "region: "
#include "core.h"
#include "pager.h"
#include "log.h"
#include "oom.h"
#include "pagestate.h"

#define PAGE	UPG_PAGE_SIZE

static uintptr_t align_up(uintptr_t v, size_t a)
{
	return (v + a - 1) & ~(uintptr_t)(a - 1);
}

/* Index of the first extent that ends after @addr. */
static size_t extent_index(const struct upg_runtime *rt, uintptr_t addr)
{
	size_t lo = 0, hi = rt->nr_extents;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (rt->extents[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct upg_extent *upg_extent_find(struct upg_runtime *rt, uintptr_t addr)
{
	size_t i = extent_index(rt, addr);

	if (i < rt->nr_extents && rt->extents[i].start <= addr)
		return &rt->extents[i];
	return NULL;
}

const struct upg_extent *upg_extent_next(struct upg_runtime *rt, uintptr_t addr)
{
	size_t i = extent_index(rt, addr);

	return i < rt->nr_extents ? &rt->extents[i] : NULL;
}

/* Room for @more extents; call with rt->lock exclusive. */
static int extents_reserve(struct upg_runtime *rt, size_t more)
{
	struct upg_extent *n;
	size_t cap;

	if (rt->nr_extents + more <= rt->cap_extents)
		return 0;
	cap = rt->cap_extents ? 2 * rt->cap_extents : 16;
	while (cap < rt->nr_extents + more)
		cap *= 2;
	n = realloc(rt->extents, cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	rt->extents = n;
	rt->cap_extents = cap;
	return 0;
}

static void extent_insert_at(struct upg_runtime *rt, size_t i, struct upg_extent e)
{
	memmove(&rt->extents[i + 1], &rt->extents[i],
		(rt->nr_extents - i) * sizeof(e));
	rt->extents[i] = e;
	rt->nr_extents++;
	e.region->mapped_len += e.end - e.start;
}

static void extent_remove_at(struct upg_runtime *rt, size_t i)
{
	memmove(&rt->extents[i], &rt->extents[i + 1],
		(rt->nr_extents - i - 1) * sizeof(rt->extents[0]));
	rt->nr_extents--;
}

/* Cut [start, end) out of extent @i; returns the index to look at next. */
static size_t cut_one(struct upg_runtime *rt, size_t i, uintptr_t start,
		      uintptr_t end)
{
	struct upg_extent *e = &rt->extents[i];
	struct upg_region *r = e->region;
	uintptr_t s = start > e->start ? start : e->start;
	uintptr_t t = end < e->end ? end : e->end;

	upg_blocks_set(r, s, t, UPG_PS_UNMAPPED, UPG_PS_UNMAPPED);
	r->mapped_len -= t - s;
	if (s > e->start && t < e->end) {
		struct upg_extent tail = { t, e->end, r };

		e->end = s;
		r->mapped_len -= tail.end - tail.start;	/* insert adds it back */
		extent_insert_at(rt, i + 1, tail);
		return i + 2;
	}
	if (s > e->start) {
		e->end = s;
		return i + 1;
	}
	if (t < e->end) {
		e->start = t;
		return i + 1;
	}
	extent_remove_at(rt, i);
	return i;
}

void upg_extents_cut(struct upg_runtime *rt, uintptr_t start, uintptr_t end)
{
	size_t i;

	pthread_rwlock_wrlock(&rt->lock);
	i = extent_index(rt, start);
	while (i < rt->nr_extents && rt->extents[i].start < end) {
		if (rt->extents[i].start < start && rt->extents[i].end > end &&
		    extents_reserve(rt, 1)) {
			/*
			 * No room to split: destroy would munmap the cut range
			 * again, and it may hold another mapping by then. Not
			 * unmapping the region at all is the safe answer.
			 */
			upg_err("out of memory splitting an extent: region %p "
				"will not be unmapped by destroy",
				(void *)rt->extents[i].region->start);
			rt->extents[i].region->lost_track = true;
			i++;
			continue;
		}
		i = cut_one(rt, i, start, end);
	}
	pthread_rwlock_unlock(&rt->lock);
}

void upg_extents_set_blocks(struct upg_runtime *rt, uintptr_t start,
			    uintptr_t end, unsigned int to, unsigned int keep)
{
	pthread_rwlock_rdlock(&rt->lock);
	for (size_t i = extent_index(rt, start);
	     i < rt->nr_extents && rt->extents[i].start < end; i++) {
		const struct upg_extent *e = &rt->extents[i];

		upg_blocks_set(e->region, start > e->start ? start : e->start,
			       end < e->end ? end : e->end, to, keep);
	}
	pthread_rwlock_unlock(&rt->lock);
}

/* Map @len bytes aligned to @align by trimming an over-sized mapping. */
static void *map_aligned(size_t len, size_t align)
{
	size_t slop = align > PAGE ? align - PAGE : 0;
	uintptr_t raw, start;
	void *p;

	p = mmap(NULL, len + slop, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	raw = (uintptr_t)p;
	start = align_up(raw, align);
	if (start > raw)
		munmap(p, start - raw);
	if (raw + len + slop > start + len)
		munmap((void *)(start + len), raw + len + slop - (start + len));
	return (void *)start;
}

static void region_free(struct upg_region *r)
{
	if (r->state)
		munmap(r->state, r->state_len);
	free(r);
}

static void list_add(struct upg_runtime *rt, struct upg_region *r)
{
	r->next = rt->regions;
	r->prev = NULL;
	if (rt->regions)
		rt->regions->prev = r;
	rt->regions = r;
	rt->nr_regions++;
}

static void list_del(struct upg_runtime *rt, struct upg_region *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		rt->regions = r->next;
	if (r->next)
		r->next->prev = r->prev;
	rt->nr_regions--;
}

static int region_link(struct upg_runtime *rt, struct upg_region *r)
{
	int ret;

	/* An unmap of these addresses read before now must be applied first. */
	upg_uffd_loop_wait_events(rt->loop);
	pthread_rwlock_wrlock(&rt->lock);
	ret = extents_reserve(rt, 1);
	if (!ret) {
		size_t i = extent_index(rt, r->start);

		/* The kernel gave us the range: nothing of ours can be there. */
		if (i < rt->nr_extents && rt->extents[i].start < r->end) {
			upg_err("new mapping %p overlaps a live extent", (void *)r->start);
			ret = -EEXIST;
		} else {
			extent_insert_at(rt, i, (struct upg_extent){ r->start, r->end, r });
			list_add(rt, r);
		}
	}
	pthread_rwlock_unlock(&rt->lock);
	return ret;
}

UPG_API int upg_region_create(struct upg_runtime *rt, size_t len,
			      struct upg_region **out)
{
	size_t bs = rt->opts.block_size;
	struct upg_region *r;
	void *p;
	int ret;

	if (!len || len > SIZE_MAX - 2 * UPG_FILL_MAX)
		return -EINVAL;
	len = align_up(len, PAGE);
	ret = upg_oom_admit(rt, len);
	if (ret)
		return ret;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->rt = rt;
	r->block_shift = (unsigned int)__builtin_ctzl(bs);
	r->nr_blocks = (len + bs - 1) >> r->block_shift;
	/* The table is a mapping of its own: zero pages until written. */
	r->state_len = align_up(r->nr_blocks * sizeof(r->state[0]), PAGE);
	r->state = mmap(NULL, r->state_len, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r->state == MAP_FAILED) {
		r->state = NULL;
		ret = -ENOMEM;
		goto err_free;
	}
	p = map_aligned(len, bs);
	if (!p) {
		ret = -ENOMEM;
		goto err_free;
	}
	r->start = (uintptr_t)p;
	r->end = r->start + len;
	ret = upg_uffd_register(&rt->uffd, r->start, len,
				upg_pager_write_protects(rt->pager));
	if (ret) {
		upg_err("register %zu bytes: %s", len, strerror(-ret));
		goto err_unmap;
	}
	ret = region_link(rt, r);
	if (ret)
		goto err_unregister;
	*out = r;
	return 0;

err_unregister:
	upg_uffd_unregister(&rt->uffd, r->start, len);
err_unmap:
	munmap(p, len);
err_free:
	region_free(r);
	return ret;
}

/*
 * Take @r's extents out of the table into @out (malloc'd; *nr set).
 * Call with rt->lock exclusive.
 */
static struct upg_extent *region_unlink(struct upg_runtime *rt,
					struct upg_region *r, size_t *nr)
{
	struct upg_extent *out = malloc((rt->nr_extents + 1) * sizeof(*out));
	size_t i = 0;

	*nr = 0;
	while (i < rt->nr_extents) {
		if (rt->extents[i].region != r) {
			i++;
			continue;
		}
		if (out)
			out[(*nr)++] = rt->extents[i];
		extent_remove_at(rt, i);
	}
	if (!out)
		r->lost_track = true;	/* no list: leave the mapping be */
	list_del(rt, r);
	return out;
}

/*
 * Unregister first: it wakes threads still waiting on faults there, which
 * then retry, and it keeps our own munmap from raising an unmap event.
 */
static void region_teardown(struct upg_region *r, struct upg_extent *ext, size_t nr)
{
	for (size_t i = 0; i < nr; i++) {
		int ret = upg_uffd_unregister(&r->rt->uffd, ext[i].start,
					      ext[i].end - ext[i].start);

		if (ret && ret != -ENOENT)
			upg_warn("unregister %p: %s", (void *)ext[i].start, strerror(-ret));
	}
	for (size_t i = 0; i < nr && !r->lost_track; i++)
		munmap((void *)ext[i].start, ext[i].end - ext[i].start);
	free(ext);
	region_free(r);
}

UPG_API void upg_region_destroy(struct upg_region *r)
{
	struct upg_runtime *rt;
	struct upg_extent *ext;
	size_t nr;

	if (!r)
		return;
	rt = r->rt;
	/* A copy-out in flight holds @r with no lock: let it finish. */
	upg_pager_copy_lock(rt->pager);
	/* Unmaps the application made just before must be in the table. */
	upg_uffd_loop_wait_events(rt->loop);
	/* Waits for every fault handler that may hold @r. */
	pthread_rwlock_wrlock(&rt->lock);
	ext = region_unlink(rt, r, &nr);
	upg_pager_region_gone(rt->pager, r);
	pthread_rwlock_unlock(&rt->lock);
	upg_pager_copy_unlock(rt->pager);
	region_teardown(r, ext, nr);
}

void upg_region_destroy_all(struct upg_runtime *rt)
{
	for (;;) {
		struct upg_region *r;

		pthread_rwlock_rdlock(&rt->lock);
		r = rt->regions;
		pthread_rwlock_unlock(&rt->lock);
		if (!r)
			break;
		upg_region_destroy(r);
	}
}

/*
 * mremap moved [from, from + len) of @old to @to (rt->lock exclusive). The
 * moved range becomes a region of its own, laid out so that its blocks
 * line up with the old ones: its start is @to less the offset of @from in
 * its block, and only [to, to + len) is in the extent table. Resident
 * pages moved with the mapping; evicted blocks keep their data by taking
 * the old blocks' state words (pager.c moves or copies what the two
 * regions now share). Nothing is copied into the application's memory
 * here: the kernel refuses fills while the mremap is still in progress.
 */
static int adopt(struct upg_runtime *rt, struct upg_region *old, uintptr_t from,
		 uintptr_t to, size_t len)
{
	size_t bs = 1ul << old->block_shift, off = (from - old->start) & (bs - 1);
	size_t j0 = (from - old->start) >> old->block_shift, i;
	struct upg_region *r;
	int ret;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->rt = rt;
	r->block_shift = old->block_shift;
	r->start = to - off;
	r->end = to + len;
	r->nr_blocks = (r->end - r->start + bs - 1) >> r->block_shift;
	r->adopted = true;
	r->state_len = align_up(r->nr_blocks * sizeof(r->state[0]), PAGE);
	r->state = mmap(NULL, r->state_len, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ret = -ENOMEM;
	if (r->state == MAP_FAILED) {
		r->state = NULL;
		goto err_free;
	}
	if (extents_reserve(rt, 1))
		goto err_free;
	i = extent_index(rt, to);
	if (i < rt->nr_extents && rt->extents[i].start < r->end) {
		upg_err("mremap to %p: it overlaps a live extent", (void *)to);
		ret = -EEXIST;
		goto err_free;
	}
	for (size_t k = 0; k < r->nr_blocks && j0 + k < old->nr_blocks; k++)
		upg_pager_block_moved(rt, old, j0 + k, r, k, from, from + len);
	extent_insert_at(rt, i, (struct upg_extent){ to, to + len, r });
	list_add(rt, r);
	return 0;

err_free:
	region_free(r);
	return ret;
}

int upg_region_adopt_remap(struct upg_runtime *rt, uintptr_t from, uintptr_t to,
			   size_t len)
{
	const struct upg_extent *e;
	int ret = -ENOENT;

	pthread_rwlock_wrlock(&rt->lock);
	e = upg_extent_find(rt, from);
	/* One region's piece, moved whole (what realloc's mremap does). */
	if (e && from + len <= e->end)
		ret = adopt(rt, e->region, from, to, len);
	pthread_rwlock_unlock(&rt->lock);
	return ret;
}

UPG_API void *upg_region_addr(const struct upg_region *r)
{
	return (void *)r->start;
}

UPG_API size_t upg_region_len(const struct upg_region *r)
{
	struct upg_runtime *rt = r->rt;
	size_t len;

	/* An munmap that just returned must show here. */
	upg_uffd_loop_wait_events(rt->loop);
	pthread_rwlock_rdlock(&rt->lock);
	len = r->mapped_len;
	pthread_rwlock_unlock(&rt->lock);
	return len;
}
