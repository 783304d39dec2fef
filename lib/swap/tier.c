/*
 * The tiered store: the zpool first, a swap store (io.c, slot.c) behind
 * it. See tier.h for the shape; here, the entry table, the write batches
 * and the writer thread.
 *
 * Locking: t->lock guards the entry table, the zpool's LRU, the batches
 * and the slot allocator. Nothing slow runs under it except copies of a
 * batch's pages (a load of an object still in a batch, a store going
 * straight to one): decompression, checksums of writeback and every I/O
 * run without it. A load of a ZPOOL entry counts itself in the entry
 * (`loading`) while it decodes unlocked; the writer frees a zpool object
 * it has copied only when no load is counted, else gives up on that
 * entry for now.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define UPG_LOG_PREFIX "swap: "
#include "log.h"
#include "io.h"
#include "slot.h"
#include "tier.h"

#define PAGE		UPG_SLOT_SIZE
/*
 * A write batch: 2 MiB (the largest block fits), the most one write
 * carries. Its buffer is paid for once used, and counted while it holds
 * pages.
 */
#define BATCH_PAGES	512
#define NR_BATCHES	4
/* An open batch nobody adds to is written after this long. */
#define BATCH_IDLE_MS	10
/*
 * Writeback keeps the zpool under 7/8 of its share, so that a store
 * rarely finds it full (which sends its pages straight to a batch).
 */
#define SHARE_START(s)	((s) / 8 * 7)

#define CHUNK_SHIFT	12
#define CHUNK_ENTRIES	(1u << CHUNK_SHIFT)
#define MAX_CHUNKS	(1u << 16)

enum where { W_FREE, W_ZPOOL, W_BATCH, W_FILE };

#define E_WRITEBACK	1	/* ZPOOL: the writer is copying it to a batch */
#define E_DEAD		2	/* freed while the writer had it: the writer frees it */
#define E_LRU		4	/* ZPOOL: on the LRU (a candidate for writeback) */

struct entry {
	uint64_t loc;		/* ZPOOL: zpool handle; BATCH: batch << 16 | page; FILE: slot */
	uint32_t bytes;		/* zpool bytes when stored (tier.h, object_bytes) */
	uint16_t nr_pages;
	uint8_t where, flags;
	uint32_t prev, next;	/* ZPOOL: the LRU, oldest first; FREE: next free */
	uint32_t loading;	/* loads decoding its zpool object now */
	uint32_t unused;
};

enum batch_state { B_FREE, B_OPEN, B_FILLING, B_SEALED, B_INFLIGHT, B_FAILED };

struct batch {
	uint8_t *buf;			/* BATCH_PAGES pages, in t->area */
	enum batch_state state;
	unsigned int used;		/* pages placed */
	unsigned int ios;		/* writes in flight */
	unsigned int next;		/* INFLIGHT: the first page not submitted yet */
	unsigned int live;		/* FAILED: entries still held here */
	int err;
	struct timespec touched;	/* OPEN: when a page was last added */
	uint64_t run_first;		/* OPEN, FILLING: its run of slots (batch_reserve) */
	unsigned int run_len, run_used;
	uint32_t ent[BATCH_PAGES];	/* each page's entry; 0: dead, not written */
	uint64_t slot[BATCH_PAGES];
};

struct upg_tier {
	struct upg_zpool *zp;
	struct upg_swap_io *io;		/* NULL: the tier is the zpool */
	struct upg_slots *slots;
	uint64_t *slot_sum;		/* XXH3 of each slot's page */
	size_t share;

	pthread_mutex_t lock;
	pthread_cond_t writer_cv;	/* the writer waits for work */
	pthread_cond_t batch_cv;	/* stores wait for a free batch */
	pthread_t writer;
	bool stop, degraded, store_full;

	struct entry *chunks[MAX_CHUNKS];
	uint32_t nr_chunks;
	uint32_t free_head;		/* free entries, through next */
	uint32_t lru_head, lru_tail;
	uint64_t grown;			/* bytes of the store made writable */

	uint8_t *area;			/* the batches' buffers */
	struct batch batch[NR_BATCHES];
	int open;			/* the batch stores add to, -1: none */

	/*
	 * Pages the batches hold and bytes of entry table, for
	 * upg_tier_mem_used(), which a fill under budget_total asks every
	 * time: atomics, so it needs no lock.
	 */
	size_t held_pages, table_bytes;
	struct upg_tier_stats st;	/* counters, under lock */
};

static struct entry *ent(struct upg_tier *t, uint32_t id)
{
	assert(id && id - 1 < t->nr_chunks * CHUNK_ENTRIES);
	return &t->chunks[(id - 1) >> CHUNK_SHIFT][(id - 1) & (CHUNK_ENTRIES - 1)];
}

/* A free entry, or 0 (lock held). */
static uint32_t entry_get(struct upg_tier *t)
{
	uint32_t id = t->free_head;

	if (!id) {
		struct entry *c;

		if (t->nr_chunks == MAX_CHUNKS)
			return 0;
		c = calloc(CHUNK_ENTRIES, sizeof(*c));
		if (!c)
			return 0;
		t->chunks[t->nr_chunks++] = c;
		__atomic_fetch_add(&t->table_bytes, CHUNK_ENTRIES * sizeof(*c), __ATOMIC_RELAXED);
		/* Thread the new chunk's entries onto the free list, in order. */
		for (uint32_t i = CHUNK_ENTRIES; i-- > 0;) {
			c[i].next = t->free_head;
			t->free_head = (t->nr_chunks - 1) * CHUNK_ENTRIES + i + 1;
		}
		id = t->free_head;
	}
	t->free_head = ent(t, id)->next;
	return id;
}

static void entry_put(struct upg_tier *t, uint32_t id)
{
	struct entry *e = ent(t, id);

	*e = (struct entry){ .where = W_FREE, .next = t->free_head };
	t->free_head = id;
}

/* Put @id on the LRU: at its tail (newest), or back at its head. */
static void lru_add(struct upg_tier *t, uint32_t id, bool head)
{
	struct entry *e = ent(t, id);
	uint32_t *end = head ? &t->lru_head : &t->lru_tail;
	uint32_t *other = head ? &t->lru_tail : &t->lru_head;

	e->flags |= E_LRU;
	e->prev = head ? 0 : *end;
	e->next = head ? *end : 0;
	if (*end)
		*(head ? &ent(t, *end)->prev : &ent(t, *end)->next) = id;
	else
		*other = id;
	*end = id;
}

static void lru_del(struct upg_tier *t, uint32_t id)
{
	struct entry *e = ent(t, id);

	if (!(e->flags & E_LRU))
		return;
	e->flags &= (uint8_t)~E_LRU;
	if (e->prev)
		ent(t, e->prev)->next = e->next;
	else
		t->lru_head = e->next;
	if (e->next)
		ent(t, e->next)->prev = e->prev;
	else
		t->lru_tail = e->prev;
	e->prev = e->next = 0;
}

static void slots_put(struct upg_tier *t, uint64_t first, unsigned int n)
{
	upg_slots_free(t->slots, first, n);
	t->store_full = false;
}

/* Grow the store to cover slots [first, first + n) (lock held). */
static int slots_cover(struct upg_tier *t, uint64_t first, unsigned int n)
{
	uint64_t end = (first + n) * PAGE;
	int ret;

	if (end <= t->grown)
		return 0;
	ret = upg_swap_io_grow(t->io, end);
	if (ret)
		return ret;
	t->grown = end;
	t->st.swap_bytes = end;
	return 0;
}

/* @n neighbouring slots, the store grown to cover them (lock held). */
static int slots_get(struct upg_tier *t, unsigned int n, uint64_t *first)
{
	int ret;

	if (t->store_full)
		return -ENOSPC;
	ret = upg_slots_alloc(t->slots, n, first);
	if (ret)
		goto full;
	ret = slots_cover(t, *first, n);
	if (ret) {
		upg_slots_free(t->slots, *first, n);
		goto full;
	}
	return 0;
full:
	if (ret == -ENOSPC)
		t->store_full = true;	/* until a slot is freed */
	else
		upg_warn("cannot grow the store: %s", strerror(-ret));
	return ret;
}

static size_t zpool_used(struct upg_tier *t)
{
	struct upg_zpool_stats zs;

	upg_zpool_stats(t->zp, &zs);
	return zs.mem_used;
}

static bool writeback_wanted(struct upg_tier *t, size_t used)
{
	return !t->degraded && !t->store_full && t->lru_head && used > SHARE_START(t->share);
}

/* Batch @b holds nothing any more (lock held). */
static void batch_release(struct upg_tier *t, struct batch *b)
{
	__atomic_fetch_sub(&t->held_pages, b->used, __ATOMIC_RELAXED);
	b->used = 0;
	b->state = B_FREE;
}

static int free_batch(struct upg_tier *t)
{
	for (int i = 0; i < NR_BATCHES; i++)
		if (t->batch[i].state == B_FREE)
			return i;
	return -1;
}

/*
 * Reserve a run of slots for the whole of batch @b (lock held), which
 * then goes out in one write: taken one object at a time, next fit, its
 * slots were the holes that pages freed at random had left (seen: 1.7
 * pages a write with zipf writes). The kernel's swap clusters do the
 * same. Not at the price of a store mostly holes: `high` (the file) is
 * raised for a run only while at most half the slots below it are
 * free; past that, or without room, the batch takes slots one object at
 * a time.
 */
static void batch_reserve(struct upg_tier *t, struct batch *b)
{
	uint64_t high = upg_slots_high(t->slots), first;
	/* A small store is not held up by the runs of batches half full. */
	uint64_t len = upg_swap_io_capacity(t->io) / PAGE / (2 * NR_BATCHES);
	int ret;

	b->run_len = b->run_used = 0;
	len = len < BATCH_PAGES ? len : BATCH_PAGES;
	if (t->store_full || len < 2)
		return;
	ret = upg_slots_alloc_below_high(t->slots, (unsigned int)len, &first);
	if (ret && upg_slots_used(t->slots) >= high / 2)
		ret = upg_slots_alloc(t->slots, (unsigned int)len, &first);
	if (ret)
		return;
	if (slots_cover(t, first, (unsigned int)len)) {
		upg_slots_free(t->slots, first, (unsigned int)len);
		return;
	}
	b->run_first = first;
	b->run_len = (unsigned int)len;
}

/* @n neighbouring slots for batch @b: from its run, else as slots_get. */
static int batch_slots(struct upg_tier *t, struct batch *b, unsigned int n, uint64_t *first)
{
	if (b->run_used + n > b->run_len)
		return slots_get(t, n, first);
	*first = b->run_first + b->run_used;
	b->run_used += n;
	return 0;
}

/*
 * Give back what @b's run has not handed out. Not through slots_put: an
 * object that found no slots while the run held them (store_full) may
 * not fit in them either, and the writer would loop reserving the run
 * and handing it back; store_full goes with the next slot freed.
 */
static void batch_unreserve(struct upg_tier *t, struct batch *b)
{
	if (b->run_used < b->run_len)
		upg_slots_free(t->slots, b->run_first + b->run_used, b->run_len - b->run_used);
	b->run_len = b->run_used = 0;
}

static void batch_seal(struct upg_tier *t, struct batch *b)
{
	batch_unreserve(t, b);
	if (t->open >= 0 && &t->batch[t->open] == b)
		t->open = -1;
	b->state = B_SEALED;
	if (!b->used)
		batch_release(t, b);
	pthread_cond_signal(&t->writer_cv);
}

/* ---- stores straight to a batch ---- */

/*
 * Put @n pages from @src in the open batch, with slots of their own
 * (lock held; may wait for the writer to free a batch). Sets *@id.
 */
static int batch_add(struct upg_tier *t, const void *src, unsigned int n, uint32_t *id)
{
	struct batch *b;
	uint64_t first;
	uint32_t e_id;
	int ret;

	for (;;) {
		if (t->degraded || t->stop)
			return -ENOSPC;
		if (t->open >= 0 && t->batch[t->open].used + n <= BATCH_PAGES)
			break;
		if (t->open >= 0)
			batch_seal(t, &t->batch[t->open]);
		t->open = free_batch(t);
		if (t->open >= 0) {
			t->batch[t->open].state = B_OPEN;
			t->batch[t->open].used = 0;
			batch_reserve(t, &t->batch[t->open]);
			break;
		}
		pthread_cond_wait(&t->batch_cv, &t->lock);
	}
	b = &t->batch[t->open];
	ret = batch_slots(t, b, n, &first);
	if (ret)
		goto err_empty;
	e_id = entry_get(t);
	if (!e_id) {
		slots_put(t, first, n);
		ret = -ENOMEM;
		goto err_empty;
	}
	memcpy(b->buf + (size_t)b->used * PAGE, src, (size_t)n * PAGE);
	for (unsigned int i = 0; i < n; i++) {
		b->ent[b->used + i] = e_id;
		b->slot[b->used + i] = first + i;
		t->slot_sum[first + i] = XXH3_64bits(b->buf + (size_t)(b->used + i) * PAGE, PAGE);
	}
	*ent(t, e_id) = (struct entry){ .where = W_BATCH, .nr_pages = (uint16_t)n,
					.loc = (uint64_t)t->open << 16 | b->used };
	b->used += n;
	__atomic_fetch_add(&t->held_pages, n, __ATOMIC_RELAXED);
	clock_gettime(CLOCK_MONOTONIC, &b->touched);
	t->st.direct_pages += n;
	t->st.swap_pages += n;
	if (b->used == BATCH_PAGES)
		batch_seal(t, b);
	*id = e_id;
	return 0;

err_empty:
	/* A batch still empty keeps no run: the idle flush never seals it. */
	if (!b->used)
		batch_unreserve(t, b);
	return ret;
}

/* A ZPOOL entry for zpool handle @zh (lock held): its id, or 0. */
static uint32_t zpool_entry(struct upg_tier *t, uint64_t zh, size_t nr_pages)
{
	uint32_t id = entry_get(t);

	if (!id)
		return 0;
	*ent(t, id) = (struct entry){ .where = W_ZPOOL, .loc = zh, .nr_pages = (uint16_t)nr_pages,
				      .bytes = (uint32_t)upg_zpool_object_bytes(t->zp, zh) };
	lru_add(t, id, false);
	if (writeback_wanted(t, zpool_used(t)))
		pthread_cond_signal(&t->writer_cv);
	return id;
}

int upg_tier_store(struct upg_tier *t, const void *src, size_t nr_pages, uint64_t *handle)
{
	bool to_store = false;
	uint64_t zh = 0;
	uint32_t id = 0;
	int ret;

	if (!t->io)
		return upg_zpool_store(t->zp, src, nr_pages, handle);
	/*
	 * Pages that do not compress go straight to the store: kept raw in
	 * RAM they would only pass through on their way there. So do pages
	 * the zpool has no room for. Once the store takes no more, the
	 * zpool keeps them raw.
	 */
	if (nr_pages <= BATCH_PAGES && !t->degraded && !t->store_full) {
		ret = upg_zpool_store_compressed(t->zp, src, nr_pages, &zh);
		to_store = ret == -E2BIG || ret == -ENOSPC;
	} else {
		ret = upg_zpool_store(t->zp, src, nr_pages, &zh);
	}
	pthread_mutex_lock(&t->lock);
	if (to_store) {
		ret = batch_add(t, src, (unsigned int)nr_pages, &id);
		if (ret == -ENOSPC) {
			/* The store is full or failing: the zpool, raw, if it has room. */
			pthread_mutex_unlock(&t->lock);
			ret = upg_zpool_store(t->zp, src, nr_pages, &zh);
			pthread_mutex_lock(&t->lock);
			to_store = false;
		}
	}
	if (!ret && !to_store) {
		id = zpool_entry(t, zh, nr_pages);
		if (!id) {
			upg_zpool_free(t->zp, zh);
			ret = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&t->lock);
	if (ret)
		return ret;
	*handle = id;
	return 0;
}

/* ---- loads ---- */

/* Read @n pages at @slot into @dst: 0 or -EIO (counted, logged). */
static int read_slots(struct upg_tier *t, uint64_t slot, void *dst, size_t n)
{
	int ret = upg_swap_io_read(t->io, slot * PAGE, dst, n * PAGE);

	/* Counters of the hot path: relaxed atomics, not the lock. */
	__atomic_fetch_add(&t->st.swap_reads, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&t->st.swap_read_pages, n, __ATOMIC_RELAXED);
	if (ret)
		__atomic_fetch_add(&t->st.read_errors, 1, __ATOMIC_RELAXED);
	if (!ret)
		return 0;
	upg_err("reading %zu pages at slot %llu failed: %s", n, (unsigned long long)slot,
		strerror(-ret));
	return -EIO;
}

/* Do @n pages read from @slot match their checksums? 0 or -EIO (counted). */
static int verify(struct upg_tier *t, uint64_t slot, const void *dst, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		/* The slot is ours until the caller frees the handle: no lock. */
		if (XXH3_64bits((const uint8_t *)dst + i * PAGE, PAGE) == t->slot_sum[slot + i])
			continue;
		__atomic_fetch_add(&t->st.checksum_errors, 1, __ATOMIC_RELAXED);
		upg_err("slot %llu does not match its checksum: not handed back",
			(unsigned long long)(slot + i));
		return -EIO;
	}
	return 0;
}

static int load_store(struct upg_tier *t, uint64_t slot, void *dst, size_t n)
{
	int ret = read_slots(t, slot, dst, n);

	return ret ? ret : verify(t, slot, dst, n);
}

int upg_tier_load(struct upg_tier *t, uint64_t handle, void *dst, size_t nr_pages)
{
	struct entry *e;
	uint64_t loc;
	int ret;

	if (!t->io)
		return upg_zpool_load(t->zp, handle, dst, nr_pages);
	pthread_mutex_lock(&t->lock);
	e = ent(t, (uint32_t)handle);
	if (e->nr_pages != nr_pages) {
		pthread_mutex_unlock(&t->lock);
		return -EINVAL;
	}
	loc = e->loc;
	switch (e->where) {
	case W_ZPOOL:
		e->loading++;
		pthread_mutex_unlock(&t->lock);
		ret = upg_zpool_load(t->zp, loc, dst, nr_pages);
		pthread_mutex_lock(&t->lock);
		e->loading--;
		pthread_mutex_unlock(&t->lock);
		return ret;
	case W_BATCH:
		memcpy(dst, t->batch[loc >> 16].buf + (loc & 0xffff) * PAGE, nr_pages * PAGE);
		pthread_mutex_unlock(&t->lock);
		return 0;
	case W_FILE:
		pthread_mutex_unlock(&t->lock);
		return load_store(t, loc, dst, nr_pages);
	default:
		pthread_mutex_unlock(&t->lock);
		assert(!"load of a free entry");
		return -EINVAL;
	}
}

void upg_tier_load_many(struct upg_tier *t, unsigned int n, const uint64_t *handles,
			const size_t *nr_pages, uint8_t *const *dsts, int *rets)
{
	uint64_t slot[UPG_TIER_LOAD_MANY_MAX];
	bool on_store[UPG_TIER_LOAD_MANY_MAX];

	assert(n <= UPG_TIER_LOAD_MANY_MAX);
	if (t->io) {
		pthread_mutex_lock(&t->lock);
		for (unsigned int k = 0; k < n; k++) {
			const struct entry *e = handles[k] ? ent(t, (uint32_t)handles[k]) : NULL;

			on_store[k] = e && e->where == W_FILE && e->nr_pages == nr_pages[k];
			slot[k] = on_store[k] ? e->loc : 0;
		}
		pthread_mutex_unlock(&t->lock);
	}
	for (unsigned int k = 0, j; k < n; k = j) {
		size_t pages = nr_pages[k];

		j = k + 1;
		if (!handles[k])
			continue;
		if (!t->io || !on_store[k]) {
			rets[k] = upg_tier_load(t, handles[k], dsts[k], nr_pages[k]);
			continue;
		}
		/* Neighbours on the store and in memory: one read. */
		while (j < n && handles[j] && on_store[j] && slot[j] == slot[k] + pages &&
		       dsts[j] == dsts[k] + pages * PAGE && pages + nr_pages[j] <= BATCH_PAGES)
			pages += nr_pages[j++];
		int ret = read_slots(t, slot[k], dsts[k], pages);

		for (unsigned int i = k; i < j; i++)
			rets[i] = ret ? ret : verify(t, slot[i], dsts[i], nr_pages[i]);
	}
}

/* ---- frees ---- */

void upg_tier_free(struct upg_tier *t, uint64_t handle)
{
	uint32_t id = (uint32_t)handle;
	struct entry *e;
	struct batch *b;

	if (!t->io) {
		upg_zpool_free(t->zp, handle);
		return;
	}
	pthread_mutex_lock(&t->lock);
	e = ent(t, id);
	switch (e->where) {
	case W_ZPOOL:
		if (e->flags & E_WRITEBACK) {
			e->flags |= E_DEAD;
			break;
		}
		lru_del(t, id);
		upg_zpool_free(t->zp, e->loc);
		entry_put(t, id);
		break;
	case W_BATCH:
		b = &t->batch[e->loc >> 16];
		if (b->state == B_INFLIGHT) {
			e->flags |= E_DEAD;	/* its slots are written to now */
			break;
		}
		for (unsigned int i = 0; i < e->nr_pages; i++)
			b->ent[(e->loc & 0xffff) + i] = 0;
		t->st.swap_pages -= e->nr_pages;
		if (b->state == B_FAILED) {
			if (!--b->live)
				batch_release(t, b);
		} else {
			slots_put(t, b->slot[e->loc & 0xffff], e->nr_pages);
		}
		entry_put(t, id);
		break;
	case W_FILE:
		slots_put(t, e->loc, e->nr_pages);
		t->st.swap_pages -= e->nr_pages;
		entry_put(t, id);
		break;
	default:
		assert(!"double free of a tier handle");
	}
	pthread_mutex_unlock(&t->lock);
}

/* ---- compaction ---- */

/*
 * Relocate, a chunk of the entry table at a time (loads and stores wait
 * for the lock), every zpool object the drain holds. The state words hold
 * entry ids, which stay: only the entry's zpool handle changes. An object
 * being loaded (its handle read before the move) or written back stays
 * where it is; its arena is not emptied this time.
 */
size_t upg_tier_relocate_draining(struct upg_tier *t)
{
	size_t moved = 0;
	uint32_t nr_chunks;

	if (!t->io)
		return 0;
	pthread_mutex_lock(&t->lock);
	nr_chunks = t->nr_chunks;
	pthread_mutex_unlock(&t->lock);
	for (uint32_t c = 0; c < nr_chunks; c++) {
		pthread_mutex_lock(&t->lock);
		for (uint32_t i = 0; i < CHUNK_ENTRIES; i++) {
			struct entry *e = &t->chunks[c][i];
			uint64_t nh;

			if (e->where != W_ZPOOL || e->loading || (e->flags & E_WRITEBACK) ||
			    !upg_zpool_draining(t->zp, e->loc))
				continue;
			if (upg_zpool_relocate(t->zp, e->loc, &nh)) {
				/* No room to move to: the rest stay. */
				pthread_mutex_unlock(&t->lock);
				return moved;
			}
			upg_zpool_free(t->zp, e->loc);
			e->loc = nh;
			moved++;
		}
		pthread_mutex_unlock(&t->lock);
	}
	return moved;
}

/* ---- the writer ---- */

/*
 * Fill batch @bi with the zpool's oldest entries: claimed under the lock,
 * decoded into the batch without it, then switched to BATCH (their zpool
 * objects freed) unless freed or loaded meanwhile.
 */
static void writeback(struct upg_tier *t, int bi)
{
	struct batch *b = &t->batch[bi];
	uint32_t ids[BATCH_PAGES];
	uint64_t zh[BATCH_PAGES];
	unsigned int nr = 0, pos = 0;

	b->state = B_FILLING;
	b->used = 0;
	batch_reserve(t, b);
	while (t->lru_head && pos < BATCH_PAGES) {
		uint32_t id = t->lru_head;
		struct entry *e = ent(t, id);
		uint64_t first;

		if (pos + e->nr_pages > BATCH_PAGES || batch_slots(t, b, e->nr_pages, &first))
			break;
		lru_del(t, id);
		e->flags |= E_WRITEBACK;
		for (unsigned int i = 0; i < e->nr_pages; i++) {
			b->ent[pos + i] = id;
			b->slot[pos + i] = first + i;
		}
		ids[nr] = id;
		zh[nr++] = e->loc;
		pos += e->nr_pages;
	}
	pthread_mutex_unlock(&t->lock);

	pos = 0;
	for (unsigned int k = 0; k < nr; k++) {
		unsigned int n = upg_tier_object_pages(t, ids[k]);
		uint8_t *dst = b->buf + (size_t)pos * PAGE;

		if (upg_zpool_load(t->zp, zh[k], dst, n))
			zh[k] = 0;
		for (unsigned int i = 0; zh[k] && i < n; i++)
			t->slot_sum[b->slot[pos + i]] = XXH3_64bits(dst + (size_t)i * PAGE, PAGE);
		pos += n;
	}

	pthread_mutex_lock(&t->lock);
	pos = 0;
	for (unsigned int k = 0; k < nr; k++) {
		struct entry *e = ent(t, ids[k]);
		unsigned int n = e->nr_pages;
		uint64_t first = b->slot[pos];

		e->flags &= (uint8_t)~E_WRITEBACK;
		if (e->flags & E_DEAD) {
			upg_zpool_free(t->zp, e->loc);
			entry_put(t, ids[k]);
		} else if (!zh[k]) {
			/* Undecodable: it stays in the zpool, off the LRU, to fail its load. */
		} else if (e->loading) {
			/* A load is reading the zpool object: try it later. */
			lru_add(t, ids[k], true);
		} else {
			upg_zpool_free(t->zp, zh[k]);
			e->where = W_BATCH;
			e->loc = (uint64_t)bi << 16 | pos;
			t->st.writeback_pages += n;
			t->st.swap_pages += n;
			pos += n;
			continue;
		}
		slots_put(t, first, n);
		memset(&b->ent[pos], 0, n * sizeof(b->ent[0]));
		pos += n;
	}
	b->used = pos;
	__atomic_fetch_add(&t->held_pages, pos, __ATOMIC_RELAXED);
	batch_seal(t, b);
}

static void batch_done(struct upg_tier *t, int bi);

/*
 * Queue the writes of a sealed batch, one per run of neighbouring slots,
 * or the rest of one that found the queue full.
 */
static void submit(struct upg_tier *t, int bi)
{
	struct batch *b = &t->batch[bi];
	unsigned int i = b->next;

	if (b->state == B_SEALED) {
		b->state = B_INFLIGHT;
		b->err = 0;
		i = 0;
	}
	while (i < b->used) {
		unsigned int j = i + 1;

		if (!b->ent[i]) {
			i++;
			continue;
		}
		while (j < b->used && b->ent[j] && b->slot[j] == b->slot[j - 1] + 1)
			j++;
		/* A full queue: the rest goes once some writes are back. */
		if (upg_swap_io_write(t->io, b->slot[i] * PAGE, b->buf + (size_t)i * PAGE,
				      (size_t)(j - i) * PAGE, (uint64_t)bi))
			break;
		b->ios++;
		t->st.swap_writes++;
		t->st.swap_written_pages += j - i;
		i = j;
	}
	b->next = i;
	if (!b->ios && i >= b->used)
		batch_done(t, bi);	/* nothing left alive to write */
}

static bool batch_unsubmitted(const struct batch *b)
{
	return b->state == B_SEALED || (b->state == B_INFLIGHT && b->next < b->used);
}

/* Every write of batch @bi is back: its entries are on the store, or not. */
static void batch_done(struct upg_tier *t, int bi)
{
	struct batch *b = &t->batch[bi];

	if (b->err && !t->degraded) {
		upg_err("a write to the store failed (%s): it is degraded, its pages stay in memory",
			strerror(-b->err));
		t->degraded = true;
	}
	if (b->err)
		t->st.write_errors++;
	b->live = 0;
	for (unsigned int i = 0; i < b->used; i++) {
		uint32_t id = b->ent[i];
		struct entry *e;

		if (!id || (i && b->ent[i - 1] == id))
			continue;
		e = ent(t, id);
		if (e->flags & E_DEAD) {
			slots_put(t, b->slot[i], e->nr_pages);
			t->st.swap_pages -= e->nr_pages;
			entry_put(t, id);
		} else if (b->err) {
			slots_put(t, b->slot[i], e->nr_pages);
			b->live++;
		} else {
			e->where = W_FILE;
			e->loc = b->slot[i];
		}
	}
	if (b->err && b->live)
		b->state = B_FAILED;
	else
		batch_release(t, b);
	pthread_cond_broadcast(&t->batch_cv);
}

static bool open_batch_idle(struct upg_tier *t)
{
	struct timespec now;
	struct batch *b;

	if (t->open < 0)
		return false;
	b = &t->batch[t->open];
	clock_gettime(CLOCK_MONOTONIC, &now);
	return b->used && (now.tv_sec - b->touched.tv_sec) * 1000 +
			  (now.tv_nsec - b->touched.tv_nsec) / 1000000 >= BATCH_IDLE_MS;
}

static bool writer_has_work(struct upg_tier *t)
{
	for (int i = 0; i < NR_BATCHES; i++)
		if (batch_unsubmitted(&t->batch[i]))
			return true;
	return upg_swap_io_pending(t->io) ||
	       (free_batch(t) >= 0 && writeback_wanted(t, zpool_used(t)));
}

static void *writer_main(void *arg)
{
	struct upg_tier *t = arg;
	struct upg_swap_io_done done[NR_BATCHES * BATCH_PAGES];

	pthread_mutex_lock(&t->lock);
	for (;;) {
		struct timespec ts;
		int n;

		while (!writer_has_work(t) && !t->stop) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += BATCH_IDLE_MS * 1000000l;
			if (ts.tv_nsec >= 1000000000l) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000l;
			}
			if (pthread_cond_timedwait(&t->writer_cv, &t->lock, &ts) == ETIMEDOUT &&
			    open_batch_idle(t))
				batch_seal(t, &t->batch[t->open]);
		}
		if (t->stop && !upg_swap_io_pending(t->io))
			break;
		for (int i = 0; i < NR_BATCHES; i++)
			if (batch_unsubmitted(&t->batch[i]))
				submit(t, i);
		if (!t->stop && writeback_wanted(t, zpool_used(t))) {
			int bi = free_batch(t);

			if (bi >= 0) {
				writeback(t, bi);	/* drops the lock meanwhile */
				continue;
			}
		}
		pthread_mutex_unlock(&t->lock);
		n = upg_swap_io_wait(t->io, done, NR_BATCHES * BATCH_PAGES,
				     upg_swap_io_pending(t->io) ? 1 : 0);
		pthread_mutex_lock(&t->lock);
		if (n < 0) {
			upg_err("the store's ring failed: %s", strerror(-n));
			t->degraded = true;
			n = 0;
		}
		for (int k = 0; k < n; k++) {
			struct batch *b = &t->batch[done[k].tag];

			if (done[k].res && !b->err)
				b->err = done[k].res;
			if (!--b->ios && b->next >= b->used)
				batch_done(t, (int)done[k].tag);
		}
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

/* ---- the rest ---- */

size_t upg_tier_object_pages(struct upg_tier *t, uint64_t handle)
{
	if (!t->io)
		return upg_zpool_object_pages(handle);
	/* Set at store, unchanged while the handle lives: no lock. */
	return ent(t, (uint32_t)handle)->nr_pages;
}

size_t upg_tier_object_bytes(struct upg_tier *t, uint64_t handle)
{
	if (!t->io)
		return upg_zpool_object_bytes(t->zp, handle);
	return ent(t, (uint32_t)handle)->bytes;
}

size_t upg_tier_store_capacity(const struct upg_tier *t)
{
	return t->io ? upg_swap_io_capacity(t->io) : 0;
}

bool upg_tier_has_store(const struct upg_tier *t)
{
	return t->io;
}

struct upg_zpool *upg_tier_zpool(struct upg_tier *t)
{
	return t->zp;
}

size_t upg_tier_mem_used(struct upg_tier *t)
{
	size_t used = zpool_used(t);

	if (!t->io)
		return used;
	return used + __atomic_load_n(&t->table_bytes, __ATOMIC_RELAXED) +
	       __atomic_load_n(&t->held_pages, __ATOMIC_RELAXED) * PAGE;
}

void upg_tier_stats(struct upg_tier *t, struct upg_tier_stats *st)
{
	struct upg_zpool_stats zs;
	struct upg_slots_stats ss;
	size_t mem_used = upg_tier_mem_used(t);

	upg_zpool_stats(t->zp, &zs);
	if (!t->io) {
		*st = (struct upg_tier_stats){ .zpool = zs, .mem_used = mem_used };
		return;
	}
	pthread_mutex_lock(&t->lock);
	upg_slots_stats(t->slots, &ss);
	*st = t->st;
	st->degraded = t->degraded;
	pthread_mutex_unlock(&t->lock);
	st->zpool = zs;
	st->mem_used = mem_used;
	st->swap_fragmentation_pct = (uint64_t)(ss.fragmentation * 100);
}

static int open_store(struct upg_tier *t, const struct upg_tier_config *cfg)
{
	size_t area_len = (size_t)NR_BATCHES * BATCH_PAGES * PAGE;
	struct upg_swap_io_config ic = {
		.path = cfg->swap_path, .max_bytes = cfg->swap_size,
		.no_tmpfile = cfg->no_tmpfile, .no_direct = cfg->no_direct,
		.readers = cfg->readers,
	};
	uint64_t nr_slots;
	int ret;

	if (posix_memalign((void **)&t->area, PAGE, area_len))
		return -ENOMEM;
	ic.fixed_buf = t->area;
	ic.fixed_len = area_len;
	ret = upg_swap_io_open(&ic, &t->io);
	if (ret)
		return ret;
	nr_slots = upg_swap_io_capacity(t->io) / PAGE;
	ret = upg_slots_create(nr_slots, &t->slots);
	if (ret)
		return ret;
	/* calloc of this size maps fresh zero pages: paid for as slots are used. */
	t->slot_sum = calloc(nr_slots, sizeof(*t->slot_sum));
	if (!t->slot_sum)
		return -ENOMEM;
	for (int i = 0; i < NR_BATCHES; i++)
		t->batch[i].buf = t->area + (size_t)i * BATCH_PAGES * PAGE;
	t->open = -1;
	t->share = cfg->zpool_share ? cfg->zpool_share : cfg->zpool.max_bytes;
	if (!t->share)
		return -EINVAL;	/* the caller sets one: else nothing is written back */
	pthread_cond_init(&t->writer_cv, NULL);
	pthread_cond_init(&t->batch_cv, NULL);
	ret = -pthread_create(&t->writer, NULL, writer_main, t);
	if (ret) {
		pthread_cond_destroy(&t->writer_cv);
		pthread_cond_destroy(&t->batch_cv);
		return ret;
	}
	upg_info("store %s: up to %llu MiB, %s I/O, zpool share %zu KiB", cfg->swap_path,
		 (unsigned long long)(upg_swap_io_capacity(t->io) >> 20),
		 upg_swap_io_is_direct(t->io) ? "direct" : "buffered", t->share >> 10);
	return 0;
}

static void free_store(struct upg_tier *t)
{
	for (uint32_t i = 0; i < t->nr_chunks; i++)
		free(t->chunks[i]);
	free(t->slot_sum);
	upg_slots_destroy(t->slots);
	upg_swap_io_close(t->io);
	free(t->area);
}

int upg_tier_create(const struct upg_tier_config *cfg, struct upg_tier **out)
{
	struct upg_tier *t = calloc(1, sizeof(*t));
	int ret;

	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	ret = upg_zpool_create(&cfg->zpool, &t->zp);
	if (ret)
		goto err_free;
	if (cfg->swap_path) {
		ret = open_store(t, cfg);
		if (ret)
			goto err_store;
	}
	*out = t;
	return 0;

err_store:
	free_store(t);
	upg_zpool_destroy(t->zp);
err_free:
	pthread_mutex_destroy(&t->lock);
	free(t);
	return ret;
}

void upg_tier_destroy(struct upg_tier *t)
{
	if (!t)
		return;
	if (t->io) {
		pthread_mutex_lock(&t->lock);
		t->stop = true;
		pthread_cond_broadcast(&t->writer_cv);
		pthread_cond_broadcast(&t->batch_cv);
		pthread_mutex_unlock(&t->lock);
		pthread_join(t->writer, NULL);
		pthread_cond_destroy(&t->writer_cv);
		pthread_cond_destroy(&t->batch_cv);
		free_store(t);
	}
	upg_zpool_destroy(t->zp);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* ---- tests ---- */

void upg_tier_test_flush(struct upg_tier *t)
{
	if (!t->io)
		return;
	pthread_mutex_lock(&t->lock);
	for (;;) {
		bool busy = false;

		if (t->open >= 0 && t->batch[t->open].used)
			batch_seal(t, &t->batch[t->open]);
		for (int i = 0; i < NR_BATCHES; i++)
			busy |= t->batch[i].state == B_SEALED || t->batch[i].state == B_INFLIGHT ||
				t->batch[i].state == B_FILLING;
		if (!busy && !writeback_wanted(t, zpool_used(t)))
			break;
		pthread_cond_signal(&t->writer_cv);
		pthread_mutex_unlock(&t->lock);
		struct timespec ms = { 0, 1000000 };
		nanosleep(&ms, NULL);
		pthread_mutex_lock(&t->lock);
	}
	pthread_mutex_unlock(&t->lock);
}

bool upg_tier_test_on_store(struct upg_tier *t, uint64_t handle)
{
	bool on;

	if (!t->io)
		return false;
	pthread_mutex_lock(&t->lock);
	on = ent(t, (uint32_t)handle)->where == W_FILE;
	pthread_mutex_unlock(&t->lock);
	return on;
}

int upg_tier_test_corrupt(struct upg_tier *t, uint64_t handle)
{
	int fd, ret = -EIO;
	uint8_t *page;
	off_t off;

	if (!upg_tier_test_on_store(t, handle))
		return -EINVAL;
	/* Whole aligned pages: the descriptor may be O_DIRECT. */
	if (posix_memalign((void **)&page, PAGE, PAGE))
		return -ENOMEM;
	off = (off_t)(ent(t, (uint32_t)handle)->loc * PAGE);
	fd = upg_swap_io_test_fd(t->io);
	if (pread(fd, page, PAGE, off) == PAGE) {
		page[100] ^= 0x5a;
		if (pwrite(fd, page, PAGE, off) == PAGE)
			ret = 0;
	}
	free(page);
	return ret;
}

void upg_tier_test_fail(struct upg_tier *t, bool write, int err, unsigned int count)
{
	if (t->io)
		upg_swap_io_test_fail(t->io, write, err, count);
}

int upg_tier_test_fd(struct upg_tier *t)
{
	return t->io ? upg_swap_io_test_fd(t->io) : -1;
}
