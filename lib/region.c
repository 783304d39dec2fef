/*
 * Regions: anonymous mappings registered with the runtime's userfaultfd,
 * kept in a table sorted by address for the fault path's lookup, each with
 * its block state table and the list of holes the application unmapped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define UPG_LOG_PREFIX "region: "
#include "core.h"
#include "log.h"

#define PAGE	UPG_PAGE_SIZE

static uintptr_t align_up(uintptr_t v, size_t a)
{
	return (v + a - 1) & ~(uintptr_t)(a - 1);
}

struct upg_region *upg_region_find(struct upg_runtime *rt, uintptr_t addr)
{
	size_t lo = 0, hi = rt->nr_regions;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct upg_region *r = rt->regions[mid];

		if (addr < r->start)
			hi = mid;
		else if (addr >= r->end)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

static int table_insert(struct upg_runtime *rt, struct upg_region *r)
{
	size_t i;

	if (rt->nr_regions == rt->cap_regions) {
		size_t cap = rt->cap_regions ? 2 * rt->cap_regions : 16;
		struct upg_region **n = realloc(rt->regions, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		rt->regions = n;
		rt->cap_regions = cap;
	}
	for (i = rt->nr_regions; i > 0 && rt->regions[i - 1]->start > r->start; i--)
		rt->regions[i] = rt->regions[i - 1];
	rt->regions[i] = r;
	rt->nr_regions++;
	return 0;
}

static void table_remove(struct upg_runtime *rt, struct upg_region *r)
{
	size_t i;

	for (i = 0; i < rt->nr_regions && rt->regions[i] != r; i++)
		;
	if (i == rt->nr_regions)
		return;
	memmove(&rt->regions[i], &rt->regions[i + 1],
		(rt->nr_regions - i - 1) * sizeof(rt->regions[0]));
	rt->nr_regions--;
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

/*
 * Record [start, end) as unmapped, merged with the holes already known: the
 * kernel reports one range twice when mremap moves it (REMAP, then UNMAP).
 * Holes stay sorted and disjoint.
 */
void upg_region_add_hole(struct upg_region *r, uintptr_t start, uintptr_t end)
{
	struct upg_hole *h, *n;
	size_t i, j, len = 0;

	start = start < r->start ? r->start : start;
	end = end > r->end ? r->end : end;
	if (start >= end)
		return;
	pthread_mutex_lock(&r->holes_lock);
	if (r->nr_holes == SIZE_MAX)
		goto out;
	n = realloc(r->holes, (r->nr_holes + 1) * sizeof(*n));
	if (!n) {
		/*
		 * Without the record, destroy would munmap this range again,
		 * and it may hold another mapping by then. Leaking the whole
		 * region's address range is the safe answer.
		 */
		upg_err("out of memory recording an unmap: region %p leaks on destroy",
			(void *)r->start);
		r->unmapped_len = r->end - r->start;
		r->nr_holes = SIZE_MAX;
		goto out;
	}
	h = r->holes = n;
	/* Holes before ours stay; those touching ours fold into it. */
	for (i = 0; i < r->nr_holes && h[i].end < start; i++)
		;
	for (j = i; j < r->nr_holes && h[j].start <= end; j++) {
		start = h[j].start < start ? h[j].start : start;
		end = h[j].end > end ? h[j].end : end;
	}
	memmove(&h[i + 1], &h[j], (r->nr_holes - j) * sizeof(*h));
	h[i] = (struct upg_hole){ start, end };
	r->nr_holes = r->nr_holes - (j - i) + 1;
	for (i = 0; i < r->nr_holes; i++)
		len += h[i].end - h[i].start;
	r->unmapped_len = len;
out:
	pthread_mutex_unlock(&r->holes_lock);
}

/* Call @fn on each part of the region that is still mapped. */
static void for_each_mapped(struct upg_region *r,
			    void (*fn)(struct upg_region *r, uintptr_t s, size_t len))
{
	uintptr_t at = r->start;

	/* Only after the region left the table: no event changes the holes. */
	if (r->nr_holes == SIZE_MAX)
		return;
	for (size_t i = 0; i < r->nr_holes; i++) {
		if (r->holes[i].start > at)
			fn(r, at, r->holes[i].start - at);
		at = r->holes[i].end;
	}
	if (r->end > at)
		fn(r, at, r->end - at);
}

static void unregister_part(struct upg_region *r, uintptr_t s, size_t len)
{
	/* Wakes any thread still waiting on a fault here: it then refaults. */
	int ret = upg_uffd_unregister(&r->rt->uffd, s, len);

	if (ret && ret != -ENOENT)
		upg_warn("unregister %p+%zu: %s", (void *)s, len, strerror(-ret));
}

static void unmap_part(struct upg_region *r, uintptr_t s, size_t len)
{
	(void)r;
	munmap((void *)s, len);
}

static void region_free(struct upg_region *r)
{
	if (r->state)
		munmap(r->state, r->state_len);
	pthread_mutex_destroy(&r->holes_lock);
	free(r->holes);
	free(r);
}

/* Unregister and unmap; the region is already out of the table. */
static void region_teardown(struct upg_region *r)
{
	for_each_mapped(r, unregister_part);
	for_each_mapped(r, unmap_part);
	region_free(r);
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
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->holes_lock, NULL);
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
	ret = upg_uffd_register(&rt->uffd, r->start, len);
	if (ret) {
		upg_err("register %zu bytes: %s", len, strerror(-ret));
		goto err_unmap;
	}
	pthread_rwlock_wrlock(&rt->lock);
	ret = table_insert(rt, r);
	pthread_rwlock_unlock(&rt->lock);
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

UPG_API void upg_region_destroy(struct upg_region *r)
{
	struct upg_runtime *rt;

	if (!r)
		return;
	rt = r->rt;
	/* Holes the application made just before must be known to teardown. */
	upg_uffd_loop_quiesce(rt->loop);
	/* Waits for every fault and event handler that may hold @r. */
	pthread_rwlock_wrlock(&rt->lock);
	table_remove(rt, r);
	pthread_rwlock_unlock(&rt->lock);
	region_teardown(r);
}

void upg_region_unlink_all(struct upg_runtime *rt)
{
	upg_uffd_loop_quiesce(rt->loop);
	pthread_rwlock_wrlock(&rt->lock);
	while (rt->nr_regions) {
		struct upg_region *r = rt->regions[--rt->nr_regions];

		pthread_rwlock_unlock(&rt->lock);
		region_teardown(r);
		pthread_rwlock_wrlock(&rt->lock);
	}
	pthread_rwlock_unlock(&rt->lock);
}

UPG_API void *upg_region_addr(const struct upg_region *r)
{
	return (void *)r->start;
}

size_t upg_region_mapped_len(struct upg_region *r)
{
	size_t len;

	pthread_mutex_lock(&r->holes_lock);
	len = (r->end - r->start) - r->unmapped_len;
	pthread_mutex_unlock(&r->holes_lock);
	return len;
}

UPG_API size_t upg_region_len(const struct upg_region *r)
{
	struct upg_region *m = (struct upg_region *)r;

	/* An munmap that just returned must show here. */
	upg_uffd_loop_quiesce(m->rt->loop);
	return upg_region_mapped_len(m);
}
