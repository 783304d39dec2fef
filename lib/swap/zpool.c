/*
 * The in-RAM compressed page store. Each 4 KiB page is kept on its own, so
 * its ratio compares with plain LZ4 per page: a page of one repeated word
 * as that word (nothing at all for zeros), a page LZ4 cannot bring under
 * raw_threshold as it is (decoding would cost more than it saves), the
 * rest as LZ4. A multi-page object is a record of page handles stored in
 * the pool too.
 *
 * Slots come from size classes (8 bytes for a word, then steps of 32 bytes
 * up to a page) carved from 256 KiB arenas, each mmapped once. An arena is
 * handed out by a bump pointer, so only the pages under it are touched, and
 * only those count in mem_used. When its last slot is freed its pages are
 * dropped and it waits, still mapped, for any class to need an arena.
 *
 * Freed slots stay counted while their arena holds one slot in use, so a
 * pool whose contents shrank holds arenas mostly empty (zram's zsmalloc
 * compacts them the same way): upg_zpool_drain_begin() takes the emptiest
 * of each class out of use, as many as the others have room for; their
 * objects' owners move them (upg_zpool_relocate()) and free the old ones,
 * and the emptied arenas go back to the empty list.
 *
 * Locks: a class lock covers its arenas' slots, lists and draining flags;
 * arena_lock (taken inside a class lock, never outside one) covers the
 * empty arenas and the table. Encoding and decoding run with no lock held.
 */
#include <assert.h>
#include <errno.h>
#include <lz4.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/queue.h>

#define UPG_LOG_PREFIX "zpool: "
#include "../log.h"
#include "zpool.h"

#define PAGE		UPG_ZPOOL_PAGE
#define ARENA_LEN	(256u << 10)
#define CLASS_STEP	32u
#define NR_CLASSES	(1 + PAGE / CLASS_STEP)	/* class 0 holds one word */
#define DEFAULT_RAW	(PAGE * 3 / 4)

/*
 * A handle, from bit 0: kind (3 bits, never 0), arena (20), slot offset in
 * 8-byte units (15), length (13): LZ4 bytes, or a record's pages. The
 * length in the handle spares a header in each slot.
 */
enum kind { K_ZERO = 1, K_SAME, K_RAW, K_LZ4, K_RECORD };
#define H_ARENA_SHIFT	3
#define H_OFF_SHIFT	23
#define H_LEN_SHIFT	38
#define H_END		51
#define MAX_ARENAS	(1u << (H_OFF_SHIFT - H_ARENA_SHIFT))
#define FIELD(h, lo, hi) ((uint32_t)((h) >> (lo) & ((1ull << ((hi) - (lo))) - 1)))

_Static_assert(H_END <= UPG_ZPOOL_HANDLE_BITS, "a handle must fit the state word");
_Static_assert(ARENA_LEN / 8 <= 1u << (H_LEN_SHIFT - H_OFF_SHIFT), "offset field");
_Static_assert(PAGE < 1u << (H_END - H_LEN_SHIFT), "length field");

struct ref {
	enum kind kind;
	uint32_t arena, off, len;	/* off in bytes */
};

struct arena {
	TAILQ_ENTRY(arena) link;	/* a class's partial list, or empty */
	bool listed;
	bool draining;		/* upg_zpool_drain_begin(): no new slots here */
	char *mem;		/* ARENA_LEN bytes, unmapped only by destroy */
	uint32_t used;		/* slots in use */
	uint32_t bump;		/* bytes handed out from the start */
	uint32_t free_head;	/* offset + 1 of a freed slot; 0: none */
	uint32_t committed;	/* bytes counted in mem_used */
	unsigned int cls;
};

TAILQ_HEAD(arena_list, arena);

struct zclass {
	pthread_mutex_t lock;
	/*
	 * Arenas with a free slot or room to bump, those with free slots
	 * first, so alloc looks at the head only. At most one has room to
	 * bump: a new arena is taken only when this list is empty.
	 */
	struct arena_list partial;
	uint32_t size;
} __attribute__((aligned(64)));

/* Stats kept as relaxed atomics; readers accept skew. */
enum { C_PAGES, C_ORIG, C_STORED, C_SAME, C_RAW, C_NOSPC, C_SLOT, C_PAYLOAD, C_NR };

struct upg_zpool {
	struct zclass cls[NR_CLASSES];
	size_t max_bytes;
	int raw_threshold;
	/*
	 * Reserved whole at create (MAP_NORESERVE; pages count in mem_used
	 * as entries are used) and never moved, so load() reads an entry with
	 * no lock: an arena's mem is set before any handle into it exists and
	 * stays until destroy.
	 */
	struct arena *arenas;
	uint32_t max_arenas;
	pthread_mutex_t arena_lock;
	uint32_t nr_arenas;		/* ever mapped; written under arena_lock */
	struct arena_list empty;	/* no slot in use, pages dropped */
	uint64_t mem_used, mem_peak;
	uint64_t count[C_NR];
};

static size_t round_up(size_t v, size_t a)
{
	return (v + a - 1) / a * a;
}

static unsigned int class_of(size_t len)
{
	return len <= 8 ? 0 : (unsigned int)((len + CLASS_STEP - 1) / CLASS_STEP);
}

static uint64_t handle_make(struct upg_zpool *zp, enum kind k,
			    const struct arena *a, uint32_t off, uint32_t len)
{
	uint64_t id = a ? (uint64_t)(a - zp->arenas) : 0;

	return (uint64_t)k | id << H_ARENA_SHIFT |
	       (uint64_t)(off / 8) << H_OFF_SHIFT | (uint64_t)len << H_LEN_SHIFT;
}

static struct ref handle_parse(uint64_t h)
{
	return (struct ref){ .kind = (enum kind)FIELD(h, 0, H_ARENA_SHIFT),
		.arena = FIELD(h, H_ARENA_SHIFT, H_OFF_SHIFT),
		.off = FIELD(h, H_OFF_SHIFT, H_LEN_SHIFT) * 8,
		.len = FIELD(h, H_LEN_SHIFT, H_END) };
}

static uint32_t payload_len(struct ref r)
{
	switch (r.kind) {
	case K_SAME:	return sizeof(uint64_t);
	case K_RAW:	return PAGE;
	case K_LZ4:	return r.len;
	case K_RECORD:	return r.len * (uint32_t)sizeof(uint64_t);
	default:	return 0;
	}
}

static char *slot_ptr(struct upg_zpool *zp, struct ref r)
{
	return zp->arenas[r.arena].mem + r.off;
}

/*
 * Could @r be one of ours? Checked on load, where a handle may come from a
 * record in pool memory that something overwrote.
 */
static bool ref_is_sane(struct upg_zpool *zp, struct ref r, bool record_ok)
{
	if (r.kind < K_ZERO || r.kind > (record_ok ? K_RECORD : K_LZ4))
		return false;
	return r.kind == K_ZERO ||
	       (r.arena < __atomic_load_n(&zp->nr_arenas, __ATOMIC_ACQUIRE) &&
		r.off + payload_len(r) <= ARENA_LEN);
}

static void count_add(struct upg_zpool *zp, unsigned int c, uint64_t n)
{
	__atomic_fetch_add(&zp->count[c], n, __ATOMIC_RELAXED);
}

/* Add (@sign 1) or take out (-1) one stored page's or record's stats. */
static void account(struct upg_zpool *zp, struct ref r, int sign)
{
	uint64_t d = sign > 0 ? 1 : (uint64_t)-1, len = payload_len(r);

	if (r.kind != K_ZERO) {
		count_add(zp, C_SLOT, d * zp->cls[class_of(len)].size);
		count_add(zp, C_PAYLOAD, d * len);
	}
	if (r.kind == K_RECORD)
		return;
	count_add(zp, C_PAGES, d);
	count_add(zp, C_ORIG, d * PAGE);
	count_add(zp, C_STORED, d * len);
	if (r.kind == K_ZERO || r.kind == K_SAME)
		count_add(zp, C_SAME, d);
	else if (r.kind == K_RAW)
		count_add(zp, C_RAW, d);
}

/* Count @len more bytes of memory, unless that passes max_bytes. */
static bool mem_reserve(struct upg_zpool *zp, size_t len)
{
	uint64_t cur = __atomic_load_n(&zp->mem_used, __ATOMIC_RELAXED), peak;

	do {
		if (zp->max_bytes && cur + len > zp->max_bytes)
			return false;
	} while (!__atomic_compare_exchange_n(&zp->mem_used, &cur, cur + len, true,
					      __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	peak = __atomic_load_n(&zp->mem_peak, __ATOMIC_RELAXED);
	while (peak < cur + len &&
	       !__atomic_compare_exchange_n(&zp->mem_peak, &peak, cur + len, true,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	return true;
}

static void mem_release(struct upg_zpool *zp, size_t len)
{
	__atomic_fetch_sub(&zp->mem_used, len, __ATOMIC_RELAXED);
}

static size_t index_bytes(uint32_t nr_arenas)
{
	return round_up(nr_arenas * sizeof(struct arena), PAGE);
}

/*
 * An arena with its first @len bytes counted: an empty one, else a new
 * mapping. Empty ones go first, so no more arenas are ever mapped than
 * hold a page at once. On -ENOSPC the pool is as it was.
 */
static int arena_get(struct upg_zpool *zp, uint32_t len, struct arena **out)
{
	struct arena *a;
	uint32_t nr;
	size_t index_len = 0;
	int ret = -ENOSPC;

	pthread_mutex_lock(&zp->arena_lock);
	nr = zp->nr_arenas;
	a = TAILQ_FIRST(&zp->empty);
	if (!a && nr == zp->max_arenas)
		goto out;
	if (!a)
		index_len = index_bytes(nr + 1) - index_bytes(nr);
	if (!mem_reserve(zp, index_len + len))
		goto out;
	if (a) {
		TAILQ_REMOVE(&zp->empty, a, link);
	} else {
		a = &zp->arenas[nr];
		a->mem = mmap(NULL, ARENA_LEN, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (a->mem == MAP_FAILED) {
			a->mem = NULL;
			mem_release(zp, index_len + len);
			ret = -ENOMEM;
			goto out;
		}
		__atomic_store_n(&zp->nr_arenas, nr + 1, __ATOMIC_RELEASE);
	}
	a->committed = len;
	*out = a;
	ret = 0;
out:
	pthread_mutex_unlock(&zp->arena_lock);
	return ret;
}

/* @a has no slot in use and is on no list, so nobody else can reach it. */
static void arena_put(struct upg_zpool *zp, struct arena *a)
{
	size_t len = a->committed;

	if (madvise(a->mem, len, MADV_DONTNEED))
		upg_err("dropping an empty arena's pages: %s", strerror(errno));
	a->committed = a->bump = a->free_head = 0;
	pthread_mutex_lock(&zp->arena_lock);
	TAILQ_INSERT_HEAD(&zp->empty, a, link);
	pthread_mutex_unlock(&zp->arena_lock);
	/* Only now, or a store could map a new arena while this one is out. */
	mem_release(zp, len);
}

enum where { UNLISTED, FIRST, LAST };

/* Move @a on or off its class's partial list. */
static void arena_list(struct zclass *c, struct arena *a, enum where where)
{
	if (a->listed)
		TAILQ_REMOVE(&c->partial, a, link);
	a->listed = where != UNLISTED;
	if (where == FIRST)
		TAILQ_INSERT_HEAD(&c->partial, a, link);
	else if (where == LAST)
		TAILQ_INSERT_TAIL(&c->partial, a, link);
}

static int slot_alloc(struct upg_zpool *zp, unsigned int ci, struct arena **ap,
		      uint32_t *off)
{
	struct zclass *c = &zp->cls[ci];
	struct arena *a;
	uint32_t need;
	int ret = -ENOSPC;

	pthread_mutex_lock(&c->lock);
	a = TAILQ_FIRST(&c->partial);
	if (a && a->free_head) {
		*off = a->free_head - 1;
		memcpy(&a->free_head, a->mem + *off, sizeof(a->free_head));
	} else if (a) {
		/* Count the pages the slot reaches into. */
		need = (uint32_t)round_up(a->bump + c->size, PAGE);
		if (need > a->committed) {
			if (!mem_reserve(zp, need - a->committed))
				goto out;
			a->committed = need;
		}
		*off = a->bump;
		a->bump += c->size;
	} else {
		ret = arena_get(zp, (uint32_t)round_up(c->size, PAGE), &a);
		if (ret)
			goto out;
		a->cls = ci;
		*off = 0;
		a->bump = c->size;
	}
	a->used++;
	/* Out of free slots: last if it can still bump, else off the list. */
	if (!a->free_head)
		arena_list(c, a, a->bump + c->size <= ARENA_LEN ? LAST : UNLISTED);
	*ap = a;
	ret = 0;
out:
	pthread_mutex_unlock(&c->lock);
	return ret;
}

static void slot_free(struct upg_zpool *zp, struct ref r)
{
	struct arena *a = &zp->arenas[r.arena];
	struct zclass *c = &zp->cls[class_of(payload_len(r))];
	bool had_free, empty;

	pthread_mutex_lock(&c->lock);
	assert(a->cls == (unsigned int)(c - zp->cls) && a->used);
	had_free = a->free_head;
	memcpy(a->mem + r.off, &a->free_head, sizeof(a->free_head));
	a->free_head = r.off + 1;
	empty = !--a->used;
	if (empty) {
		arena_list(c, a, UNLISTED);
		a->draining = false;
	} else if (!had_free && !a->draining) {
		arena_list(c, a, FIRST);	/* free slots go first */
	}
	pthread_mutex_unlock(&c->lock);
	if (empty)
		arena_put(zp, a);
}

/* Is the page one 8-byte word repeated? The word goes to *@w. */
static bool page_is_same(const char *p, uint64_t *w)
{
	uint64_t v;

	memcpy(w, p, sizeof(*w));
	for (size_t i = sizeof(v); i < PAGE; i += sizeof(v)) {
		memcpy(&v, p + i, sizeof(v));
		if (v != *w)
			return false;
	}
	return true;
}

static int page_store(struct upg_zpool *zp, const char *src, bool no_raw, uint64_t *handle)
{
	char buf[PAGE];		/* LZ4 output, at most raw_threshold */
	struct ref r = { .kind = K_LZ4 };
	const void *payload = buf;
	struct arena *a = NULL;
	uint64_t w;
	int ret;

	if (page_is_same(src, &w)) {
		r.kind = w ? K_SAME : K_ZERO;
		payload = &w;
	} else {
		/* 0 when the output would pass the threshold: LZ4 stops early. */
		r.len = (uint32_t)LZ4_compress_default(src, buf, PAGE, zp->raw_threshold);
		if (!r.len && no_raw)
			return -E2BIG;
		if (!r.len) {
			r.kind = K_RAW;
			payload = src;
		}
	}
	if (r.kind != K_ZERO) {
		ret = slot_alloc(zp, class_of(payload_len(r)), &a, &r.off);
		if (ret)
			return ret;
		memcpy(a->mem + r.off, payload, payload_len(r));
	}
	account(zp, r, 1);
	*handle = handle_make(zp, r.kind, a, r.off, r.len);
	return 0;
}

static void obj_free(struct upg_zpool *zp, struct ref r)
{
	if (r.kind != K_ZERO)
		slot_free(zp, r);
	account(zp, r, -1);
}

/*
 * A record of @nr_pages page handles, each made by @piece (page @i from
 * @arg), straight into the record's slot. On error nothing is stored.
 */
typedef int record_piece_fn(struct upg_zpool *zp, const void *arg, uint32_t i,
			    uint64_t *handle);

static int record_make(struct upg_zpool *zp, uint32_t nr_pages, record_piece_fn *piece,
		       const void *arg, uint64_t *handle)
{
	struct ref rec = { .kind = K_RECORD, .len = nr_pages };
	struct arena *a;
	uint64_t *h;
	uint32_t i;
	int ret;

	ret = slot_alloc(zp, class_of(payload_len(rec)), &a, &rec.off);
	if (ret)
		return ret;
	h = (uint64_t *)(void *)(a->mem + rec.off);
	for (i = 0; i < nr_pages; i++) {
		ret = piece(zp, arg, i, &h[i]);
		if (ret)
			goto err_free_pages;
	}
	account(zp, rec, 1);
	*handle = handle_make(zp, K_RECORD, a, rec.off, nr_pages);
	return 0;

err_free_pages:
	while (i--)
		obj_free(zp, handle_parse(h[i]));
	rec.arena = (uint32_t)(a - zp->arenas);
	slot_free(zp, rec);
	return ret;
}

static int store_piece(struct upg_zpool *zp, const void *src, uint32_t i, uint64_t *handle)
{
	return page_store(zp, (const char *)src + (size_t)i * PAGE, false, handle);
}

static int store_piece_no_raw(struct upg_zpool *zp, const void *src, uint32_t i,
			      uint64_t *handle)
{
	return page_store(zp, (const char *)src + (size_t)i * PAGE, true, handle);
}

static int page_load(struct upg_zpool *zp, struct ref r, char *dst)
{
	const char *p = r.kind == K_ZERO ? NULL : slot_ptr(zp, r);
	uint64_t w;

	switch (r.kind) {
	case K_ZERO:
		memset(dst, 0, PAGE);
		return 0;
	case K_SAME:
		memcpy(&w, p, sizeof(w));
		for (size_t i = 0; i < PAGE; i += sizeof(w))
			memcpy(dst + i, &w, sizeof(w));
		return 0;
	case K_RAW:
		memcpy(dst, p, PAGE);
		return 0;
	default:	/* K_LZ4; ref_is_sane() let no other kind through */
		/* The _safe decoder never writes past @dst; a short page is bad too. */
		if (LZ4_decompress_safe(p, dst, (int)r.len, PAGE) == PAGE)
			return 0;
		upg_err("object in arena %u at %u does not decode: corrupted",
			r.arena, r.off);
		return -EIO;
	}
}

static int store(struct upg_zpool *zp, const void *src, size_t nr_pages, bool no_raw,
		 uint64_t *handle)
{
	int ret;

	if (!nr_pages || nr_pages > UPG_ZPOOL_MAX_PAGES)
		return -EINVAL;
	if (nr_pages == 1)
		ret = page_store(zp, src, no_raw, handle);
	else
		ret = record_make(zp, (uint32_t)nr_pages,
				  no_raw ? store_piece_no_raw : store_piece, src, handle);
	if (ret == -ENOSPC)
		count_add(zp, C_NOSPC, 1);
	return ret;
}

int upg_zpool_store(struct upg_zpool *zp, const void *src, size_t nr_pages,
		    uint64_t *handle)
{
	return store(zp, src, nr_pages, false, handle);
}

int upg_zpool_store_compressed(struct upg_zpool *zp, const void *src, size_t nr_pages,
			       uint64_t *handle)
{
	return store(zp, src, nr_pages, true, handle);
}

int upg_zpool_load(struct upg_zpool *zp, uint64_t handle, void *dst,
		   size_t nr_pages)
{
	struct ref r = handle_parse(handle), p;
	const uint64_t *h;
	int ret;

	if (!ref_is_sane(zp, r, true))
		return -EIO;
	if (r.kind != K_RECORD)
		return nr_pages == 1 ? page_load(zp, r, dst) : -EINVAL;
	if (r.len != nr_pages)
		return -EINVAL;
	h = (const uint64_t *)(const void *)slot_ptr(zp, r);
	for (size_t i = 0; i < nr_pages; i++) {
		p = handle_parse(h[i]);
		if (!ref_is_sane(zp, p, false))
			return -EIO;
		ret = page_load(zp, p, (char *)dst + i * PAGE);
		if (ret)
			return ret;
	}
	return 0;
}

void upg_zpool_free(struct upg_zpool *zp, uint64_t handle)
{
	struct ref r = handle_parse(handle);
	const uint64_t *h;

	if (r.kind == K_RECORD) {
		h = (const uint64_t *)(const void *)slot_ptr(zp, r);
		for (uint32_t i = 0; i < r.len; i++)
			obj_free(zp, handle_parse(h[i]));
	}
	obj_free(zp, r);
}

size_t upg_zpool_object_bytes(struct upg_zpool *zp, uint64_t handle)
{
	struct ref r = handle_parse(handle);
	size_t len = r.kind == K_ZERO ? 0 : zp->cls[class_of(payload_len(r))].size;
	const uint64_t *h;

	if (r.kind == K_RECORD) {
		h = (const uint64_t *)(const void *)slot_ptr(zp, r);
		for (uint32_t i = 0; i < r.len; i++)
			len += upg_zpool_object_bytes(zp, h[i]);
	}
	return len;
}

size_t upg_zpool_waste_bytes(struct upg_zpool *zp)
{
	uint64_t used = __atomic_load_n(&zp->mem_used, __ATOMIC_RELAXED);
	uint64_t slots = __atomic_load_n(&zp->count[C_SLOT], __ATOMIC_RELAXED);
	uint64_t index = index_bytes(__atomic_load_n(&zp->nr_arenas, __ATOMIC_ACQUIRE));

	return used > slots + index ? used - slots - index : 0;
}

static int by_used(const void *a, const void *b)
{
	uint32_t x = (*(struct arena *const *)a)->used, y = (*(struct arena *const *)b)->used;

	return x < y ? -1 : x > y;
}

/*
 * In each class, the emptiest arenas whose objects fit in the freed slots
 * of the class's other arenas, as zsmalloc compacts: waste spread over
 * many arenas is given back too, not only that of arenas nearly empty.
 * The objects go where memory is counted already, so the drained arenas'
 * memory is what it frees.
 */
static size_t class_drain_begin(struct zclass *c, struct arena **v, size_t cap)
{
	size_t n = 0, k, freeable = 0, room = 0, moving = 0;
	struct arena *a;

	/* Arenas mapped since the caller counted them wait for the next drain. */
	TAILQ_FOREACH(a, &c->partial, link)
		if (n < cap)
			v[n++] = a;
	qsort(v, n, sizeof(*v), by_used);
	for (k = 0; k < n; k++)
		room += v[k]->bump / c->size - v[k]->used;
	/* Take v[k] while what moves still fits in the room the others have. */
	for (k = 0; k < n; k++) {
		room -= v[k]->bump / c->size - v[k]->used;
		if (moving + v[k]->used > room)
			break;
		moving += v[k]->used;
		freeable += v[k]->committed;
		arena_list(c, v[k], UNLISTED);
		__atomic_store_n(&v[k]->draining, true, __ATOMIC_RELAXED);
	}
	return freeable;
}

size_t upg_zpool_drain_begin(struct upg_zpool *zp)
{
	uint32_t nr = __atomic_load_n(&zp->nr_arenas, __ATOMIC_ACQUIRE);
	struct arena **v = malloc((nr ? nr : 1) * sizeof(*v));
	size_t freeable = 0;

	if (!v)
		return 0;
	for (unsigned int ci = 0; ci < NR_CLASSES; ci++) {
		pthread_mutex_lock(&zp->cls[ci].lock);
		freeable += class_drain_begin(&zp->cls[ci], v, nr);
		pthread_mutex_unlock(&zp->cls[ci].lock);
	}
	free(v);
	return freeable;
}

bool upg_zpool_draining(struct upg_zpool *zp, uint64_t handle)
{
	struct ref r = handle_parse(handle);
	const uint64_t *h;

	if (r.kind == K_ZERO)
		return false;
	if (__atomic_load_n(&zp->arenas[r.arena].draining, __ATOMIC_RELAXED))
		return true;
	if (r.kind != K_RECORD)
		return false;
	h = (const uint64_t *)(const void *)slot_ptr(zp, r);
	for (uint32_t i = 0; i < r.len; i++)
		if (upg_zpool_draining(zp, h[i]))
			return true;
	return false;
}

/* A copy of stored page @src in a slot of its class, not draining. */
static int page_copy(struct upg_zpool *zp, uint64_t src, uint64_t *out)
{
	struct ref r = handle_parse(src), to = r;
	struct arena *a = NULL;

	if (r.kind != K_ZERO) {
		int ret = slot_alloc(zp, class_of(payload_len(r)), &a, &to.off);

		if (ret)
			return ret;
		memcpy(a->mem + to.off, slot_ptr(zp, r), payload_len(r));
	}
	account(zp, to, 1);
	*out = handle_make(zp, to.kind, a, to.off, to.len);
	return 0;
}

static int copy_piece(struct upg_zpool *zp, const void *old, uint32_t i, uint64_t *handle)
{
	return page_copy(zp, ((const uint64_t *)old)[i], handle);
}

int upg_zpool_relocate(struct upg_zpool *zp, uint64_t handle, uint64_t *out)
{
	struct ref r = handle_parse(handle);

	if (r.kind != K_RECORD)
		return page_copy(zp, handle, out);
	return record_make(zp, r.len, copy_piece, slot_ptr(zp, r), out);
}

void upg_zpool_drain_end(struct upg_zpool *zp)
{
	uint32_t nr = __atomic_load_n(&zp->nr_arenas, __ATOMIC_ACQUIRE);

	for (uint32_t i = 0; i < nr; i++) {
		struct arena *a = &zp->arenas[i];
		struct zclass *c;

		if (!__atomic_load_n(&a->draining, __ATOMIC_RELAXED))
			continue;
		c = &zp->cls[a->cls];
		pthread_mutex_lock(&c->lock);
		if (a->draining) {	/* not emptied meanwhile */
			a->draining = false;
			if (a->free_head)
				arena_list(c, a, FIRST);
			else if (a->bump + c->size <= ARENA_LEN)
				arena_list(c, a, LAST);
		}
		pthread_mutex_unlock(&c->lock);
	}
}

size_t upg_zpool_object_pages(uint64_t handle)
{
	struct ref r = handle_parse(handle);

	return r.kind == K_RECORD ? r.len : 1;
}

void upg_zpool_stats(struct upg_zpool *zp, struct upg_zpool_stats *st)
{
	uint64_t c[C_NR];

	for (unsigned int i = 0; i < C_NR; i++)
		c[i] = __atomic_load_n(&zp->count[i], __ATOMIC_RELAXED);
	*st = (struct upg_zpool_stats){ .pages_stored = c[C_PAGES],
		.orig_bytes = c[C_ORIG], .stored_bytes = c[C_STORED],
		.mem_used = __atomic_load_n(&zp->mem_used, __ATOMIC_RELAXED),
		.mem_peak = __atomic_load_n(&zp->mem_peak, __ATOMIC_RELAXED),
		.same_pages = c[C_SAME], .raw_pages = c[C_RAW],
		.store_fail_nospc = c[C_NOSPC],
		.fragmentation = c[C_SLOT] ? 1.0 - (double)c[C_PAYLOAD] / (double)c[C_SLOT] : 0 };
}

void *upg_zpool_test_object_ptr(struct upg_zpool *zp, uint64_t handle,
				size_t *len)
{
	struct ref r = handle_parse(handle);

	*len = payload_len(r);
	return r.kind == K_ZERO ? NULL : slot_ptr(zp, r);
}

int upg_zpool_create(const struct upg_zpool_config *cfg, struct upg_zpool **out)
{
	size_t raw = cfg && cfg->raw_threshold ? cfg->raw_threshold : DEFAULT_RAW;
	struct upg_zpool *zp;

	if (raw >= PAGE)
		return -EINVAL;
	zp = aligned_alloc(64, round_up(sizeof(*zp), 64));
	if (!zp)
		return -ENOMEM;
	memset(zp, 0, sizeof(*zp));
	zp->max_bytes = cfg ? cfg->max_bytes : 0;
	zp->raw_threshold = (int)raw;
	/* Each arena in use holds a page, and empty ones are reused first. */
	zp->max_arenas = MAX_ARENAS;
	if (zp->max_bytes && zp->max_bytes / PAGE < MAX_ARENAS)
		zp->max_arenas = (uint32_t)(zp->max_bytes / PAGE) + 1;
	zp->arenas = mmap(NULL, index_bytes(zp->max_arenas), PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (zp->arenas == MAP_FAILED) {
		free(zp);
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < NR_CLASSES; i++) {
		pthread_mutex_init(&zp->cls[i].lock, NULL);
		TAILQ_INIT(&zp->cls[i].partial);
		zp->cls[i].size = i ? i * CLASS_STEP : sizeof(uint64_t);
	}
	pthread_mutex_init(&zp->arena_lock, NULL);
	TAILQ_INIT(&zp->empty);
	*out = zp;
	return 0;
}

void upg_zpool_destroy(struct upg_zpool *zp)
{
	if (!zp)
		return;
	for (uint32_t i = 0; i < zp->nr_arenas; i++)
		munmap(zp->arenas[i].mem, ARENA_LEN);
	munmap(zp->arenas, index_bytes(zp->max_arenas));
	for (unsigned int i = 0; i < NR_CLASSES; i++)
		pthread_mutex_destroy(&zp->cls[i].lock);
	pthread_mutex_destroy(&zp->arena_lock);
	free(zp);
}
