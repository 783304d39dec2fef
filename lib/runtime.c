/*
 * The runtime's lifetime: options, the userfaultfd, the fault threads (or
 * the SIGBUS handler), and the statistics gathered from all of them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define UPG_LOG_PREFIX ""
#include "core.h"
#include "pager.h"
#include "log.h"
#include "options.h"

static const char *const feature_names[] = {
	"devnode", "zeropage", "event_remove", "thread_id", "sigbus",
	"move", "wp_async", "poison", "pagemap_scan", "wp", "tmpfile", "direct",
};

UPG_API const char *upg_feature_name(unsigned int feature)
{
	if (!feature || (feature & (feature - 1)) || !(feature & UPG_FEAT_ALL))
		return NULL;
	return feature_names[__builtin_ctz(feature)];
}

/*
 * Readers: one per CPU, two with a swap store. A reader serves one fault
 * at a time, and a load from the store holds it for a device read (70-90
 * us here), so with one per CPU no more loads are in flight than there
 * are CPUs, however many threads fault. Measured (upager-bench uniform
 * read, 1 GiB of random content at a 25 % budget, against kernel-swapfile
 * in the same run, 3 runs each, 2 CPUs): 4 jobs, one reader per CPU
 * 0.49-0.64x, two 0.69-1.00x, four 0.69-0.94x. With 2 jobs (4 rounds, one
 * and two a CPU in turn) two cost nothing outside the noise: uniform
 * 0.73-0.98x against 0.76-0.93x, zipf(0.99) 0.67-0.73x against
 * 0.63-0.91x. Not more: each fault wakes every reader waiting in poll().
 */
static unsigned int reader_count(const struct upg_options *o)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN), n;

	if (o->fault_mode == UPG_FAULT_SIGBUS)
		return 1;	/* events only: faults never reach the fd */
	if (o->fault_threads)
		return o->fault_threads;
	n = (cpus > 0 ? cpus : 1) * (o->swap[0] ? 2 : 1);
	return n < UPG_FAULT_THREADS_MAX ? (unsigned int)n : UPG_FAULT_THREADS_MAX;
}

static void log_features(const struct upg_runtime *rt)
{
	char buf[256];
	size_t n = 0;

	buf[0] = '\0';
	for (unsigned int bit = 1; bit & UPG_FEAT_ALL; bit <<= 1)
		if ((rt->uffd.features & bit) && n < sizeof(buf))
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, " %s",
					      upg_feature_name(bit));
	upg_info("features:%s", buf);
}

static int start_faults(struct upg_runtime *rt)
{
	unsigned int readers = rt->nr_counters - 1;
	bool sigbus = rt->opts.fault_mode == UPG_FAULT_SIGBUS;
	int ret;

	if (sigbus) {
		ret = upg_sigbus_attach(rt);
		if (ret)
			return ret;
	}
	ret = upg_uffd_loop_start(&rt->uffd, readers, rt->opts.pin_threads && !sigbus,
				  &upg_fault_ops, rt, rt->counters, &rt->loop);
	if (ret && sigbus)
		upg_sigbus_detach(rt);
	return ret;
}

/*
 * Live runtimes. Readers (upg_advise and friends) hold the lock across
 * their call, so a runtime is not destroyed under them. Recursive read
 * locking is fine with glibc's default, reader-first rwlock: an
 * oom_callback may call upg_unpin() inside upg_pin().
 */
static pthread_rwlock_t live_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct upg_runtime *live_runtimes;

struct upg_runtime *upg_runtime_find(uintptr_t addr)
{
	pthread_rwlock_rdlock(&live_lock);
	for (struct upg_runtime *rt = live_runtimes; rt; rt = rt->next_live) {
		bool found;

		pthread_rwlock_rdlock(&rt->lock);
		found = upg_extent_find(rt, addr) != NULL;
		pthread_rwlock_unlock(&rt->lock);
		if (found)
			return rt;
	}
	pthread_rwlock_unlock(&live_lock);
	return NULL;
}

void upg_runtime_find_done(void)
{
	pthread_rwlock_unlock(&live_lock);
}

static void live_del(struct upg_runtime *rt)
{
	pthread_rwlock_wrlock(&live_lock);
	for (struct upg_runtime **p = &live_runtimes; *p; p = &(*p)->next_live)
		if (*p == rt) {
			*p = rt->next_live;
			break;
		}
	pthread_rwlock_unlock(&live_lock);
}

UPG_API int upg_runtime_create(const struct upg_options *opts,
			       struct upg_runtime **out)
{
	struct upg_runtime *rt;
	int ret;

	rt = calloc(1, sizeof(*rt));
	if (!rt)
		return -ENOMEM;
	if (opts)
		rt->opts = *opts;
	else if ((ret = upg_options_init(&rt->opts)))
		goto err_free;
	ret = upg_options_validate(&rt->opts);
	if (ret)
		goto err_free;
	if (rt->opts.verbose) {
		upg_log_set_level(UPG_LOG_INFO);
		upg_options_dump(&rt->opts);
	}
	rt->nr_counters = reader_count(&rt->opts) + 1;
	rt->counters = aligned_alloc(64, rt->nr_counters * sizeof(rt->counters[0]));
	if (!rt->counters) {
		ret = -ENOMEM;
		goto err_free;
	}
	memset(rt->counters, 0, rt->nr_counters * sizeof(rt->counters[0]));
	upg_shared_counters(rt)->shared = true;
	pthread_rwlock_init(&rt->lock, NULL);
	ret = upg_uffd_init(&rt->uffd, rt->opts.features,
			    rt->opts.fault_mode == UPG_FAULT_SIGBUS);
	if (ret)
		goto err_lock;
	if (rt->opts.verbose)
		log_features(rt);
	ret = upg_pager_create(rt, &rt->pager);
	if (ret)
		goto err_uffd;
	ret = start_faults(rt);
	if (ret)
		goto err_pager;
	pthread_rwlock_wrlock(&live_lock);
	rt->next_live = live_runtimes;
	live_runtimes = rt;
	pthread_rwlock_unlock(&live_lock);
	*out = rt;
	return 0;

err_pager:
	upg_pager_destroy(rt->pager);
err_uffd:
	upg_uffd_fini(&rt->uffd);
err_lock:
	pthread_rwlock_destroy(&rt->lock);
	free(rt->counters);
err_free:
	free(rt);
	return ret;
}

UPG_API void upg_runtime_destroy(struct upg_runtime *rt)
{
	if (!rt)
		return;
	live_del(rt);
	/* Regions first: readers must still run to read their unmap events. */
	upg_region_destroy_all(rt);
	upg_pager_destroy(rt->pager);
	upg_uffd_loop_stop(rt->loop);
	if (rt->opts.fault_mode == UPG_FAULT_SIGBUS)
		upg_sigbus_detach(rt);
	upg_uffd_fini(&rt->uffd);
	pthread_rwlock_destroy(&rt->lock);
	free(rt->extents);
	free(rt->counters);
	free(rt);
}

UPG_API unsigned int upg_runtime_features(const struct upg_runtime *rt)
{
	/* The store's features are only known once it opens: the options'. */
	return __atomic_load_n(&rt->uffd.features, __ATOMIC_RELAXED) |
	       (rt->opts.features & (UPG_FEAT_TMPFILE | UPG_FEAT_DIRECT));
}

static void gather(struct upg_runtime *rt, struct upg_stats *st)
{
	/* Count what the reads before this call did, not half of it. */
	upg_uffd_loop_quiesce(rt->loop);
	memset(st, 0, sizeof(*st));
	for (unsigned int i = 0; i < rt->nr_counters; i++)
		upg_counters_sum(st, &rt->counters[i]);
	upg_stats_finish(st);
	pthread_rwlock_rdlock(&rt->lock);
	st->regions = rt->nr_regions;
	for (struct upg_region *r = rt->regions; r; r = r->next) {
		st->mapped_bytes += r->mapped_len;
		st->meta_bytes += r->nr_blocks * sizeof(uint64_t);
	}
	pthread_rwlock_unlock(&rt->lock);
	upg_pager_stats(rt->pager, st);
}

UPG_API int upg_stats_get(struct upg_runtime *rt, struct upg_stats *st)
{
	struct upg_stats *all;
	size_t size;

	if (st->size < sizeof(st->size))
		return -EINVAL;
	size = st->size < sizeof(*all) ? st->size : sizeof(*all);
	/* The histogram makes it big; keep it off the caller's small stack. */
	all = malloc(sizeof(*all));
	if (!all)
		return -ENOMEM;
	gather(rt, all);
	all->size = size;
	memcpy(st, all, size);
	free(all);
	return 0;
}
