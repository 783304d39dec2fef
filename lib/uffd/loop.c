/*
 * Reader threads. Each polls the userfaultfd and a stop eventfd, reads a
 * batch of messages without blocking (another reader may have taken them)
 * and hands each to the core. Readers never touch managed memory: their
 * stacks and buffers come from ordinary allocations.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define UPG_LOG_PREFIX "uffd: "
#include "../log.h"
#include "compat.h"
#include "uffd.h"

/*
 * Messages read per read(2): one. A reader that took two faults served
 * them one after the other, the second waiting out the first's swap-store
 * read while the other reader went back to sleep (upager-bench uniform
 * read from the store, 2 threads: fault service p50 115 -> 94 us, ops/s
 * +11 %). Batches of 16 saved no measurable time on zpool jobs.
 */
#define READ_BATCH	1

struct reader {
	pthread_t thread;
	struct upg_uffd_loop *loop;
	struct upg_counters *counters;
	int cpu;		/* -1: not pinned */
	bool started;
	/*
	 * Odd from just before a read(2) until its messages are handled. The
	 * kernel lets munmap/madvise return once their event is read, not
	 * handled; upg_uffd_loop_quiesce() waits on this to close that gap.
	 */
	uint64_t batch_seq;
	/*
	 * Odd from just before a read(2) until the events among its messages
	 * are handled (a batch handles its events first, then its faults).
	 * A SIGBUS-mode fault at an address we do not know waits on it
	 * (upg_uffd_loop_wait_events): the address may be the new range of
	 * an mremap whose event the reader holds.
	 */
	uint64_t event_seq;
};

struct upg_uffd_loop {
	struct upg_uffd *u;
	/*
	 * Held from read(2) until the events read are handled: events are
	 * handled in the order the kernel queued them (an mremap's REMAP
	 * before its UNMAP; its REMAP before a fault at the new address,
	 * which another reader would otherwise take for memory of no
	 * region). Faults are handled after it is dropped, in parallel.
	 */
	pthread_mutex_t read_lock;
	const struct upg_uffd_ops *ops;
	void *ctx;
	int stop_fd;
	unsigned int nr_readers;
	struct reader readers[];
};

static void dispatch(struct upg_uffd_loop *l, struct upg_counters *c,
		     const struct uffd_msg *m, uint64_t read_ns)
{
	switch (m->event) {
	case UFFD_EVENT_PAGEFAULT:
		l->ops->fault(l->ctx, c, (uintptr_t)m->arg.pagefault.address,
			      m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE,
			      m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP,
			      (l->u->features & UPG_FEAT_THREAD_ID) ? m->arg.pagefault.feat.ptid : 0);
		upg_lat_record(c, upg_now_ns() - read_ns);
		break;
	case UFFD_EVENT_REMOVE:
		l->ops->remove(l->ctx, c, (uintptr_t)m->arg.remove.start,
			       (uintptr_t)m->arg.remove.end);
		break;
	case UFFD_EVENT_UNMAP:
		l->ops->unmap(l->ctx, c, (uintptr_t)m->arg.remove.start,
			      (uintptr_t)m->arg.remove.end);
		break;
	case UFFD_EVENT_REMAP:
		l->ops->remap(l->ctx, c, (uintptr_t)m->arg.remap.from,
			      (uintptr_t)m->arg.remap.to, (size_t)m->arg.remap.len);
		break;
	default:
		/* Only events we asked for arrive; anything else is a bug. */
		upg_warn("unexpected event %u", (unsigned int)m->event);
		break;
	}
}

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	struct upg_uffd_loop *l = r->loop;
	struct pollfd pfd[2] = {
		{ .fd = l->u->fd, .events = POLLIN },
		{ .fd = l->stop_fd, .events = POLLIN },
	};
	struct uffd_msg msgs[READ_BATCH];

	for (;;) {
		ssize_t n;
		uint64_t now;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			upg_err("poll: %s", strerror(errno));
			break;
		}
		if (pfd[1].revents)
			break;
		upg_stat_inc(r->counters, reader_wakeups);
		pthread_mutex_lock(&l->read_lock);
		__atomic_fetch_add(&r->batch_seq, 1, __ATOMIC_SEQ_CST);
		__atomic_fetch_add(&r->event_seq, 1, __ATOMIC_SEQ_CST);
		n = read(l->u->fd, msgs, sizeof(msgs));
		if (n < 0) {
			__atomic_fetch_add(&r->event_seq, 1, __ATOMIC_RELEASE);
			pthread_mutex_unlock(&l->read_lock);
			__atomic_fetch_add(&r->batch_seq, 1, __ATOMIC_RELEASE);
			if (errno == EAGAIN || errno == EINTR) {
				/* Another reader took it: plain poll wakes all. */
				upg_stat_inc(r->counters, reader_empty);
				continue;
			}
			upg_err("read: %s", strerror(errno));
			break;
		}
		now = upg_now_ns();
		n /= (ssize_t)sizeof(msgs[0]);
		/*
		 * Events first, in order: a fault read with them is at worst
		 * one the event makes moot (its range gone), which it
		 * answers with a wake and a refault.
		 */
		for (ssize_t i = 0; i < n; i++)
			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				dispatch(l, r->counters, &msgs[i], now);
		__atomic_fetch_add(&r->event_seq, 1, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&l->read_lock);
		for (ssize_t i = 0; i < n; i++)
			if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
				dispatch(l, r->counters, &msgs[i], now);
		__atomic_fetch_add(&r->batch_seq, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static int start_reader(struct reader *r)
{
	pthread_attr_t attr;
	int ret;

	ret = -pthread_attr_init(&attr);
	if (ret)
		return ret;
	if (r->cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(r->cpu, &set);
		pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
	}
	ret = -pthread_create(&r->thread, &attr, reader_main, r);
	pthread_attr_destroy(&attr);
	if (!ret) {
		r->started = true;
		pthread_setname_np(r->thread, "upager-fault");
	}
	return ret;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wait until @seq, if odd now, has moved on, or until @deadline_ms. */
static void wait_past(uint64_t *seq, uint64_t deadline_ms)
{
	uint64_t s = __atomic_load_n(seq, __ATOMIC_ACQUIRE);

	/* A batch takes microseconds; yielding lets it finish here too. */
	while (s % 2 && __atomic_load_n(seq, __ATOMIC_ACQUIRE) == s &&
	       (!deadline_ms || now_ms() < deadline_ms))
		sched_yield();
}

void upg_uffd_loop_quiesce(struct upg_uffd_loop *l)
{
	uint64_t deadline = now_ms() + UPG_QUIESCE_MAX_MS;

	for (unsigned int i = 0; l && i < l->nr_readers; i++)
		wait_past(&l->readers[i].batch_seq, deadline);
}

void upg_uffd_loop_wait_events(struct upg_uffd_loop *l)
{
	for (unsigned int i = 0; l && i < l->nr_readers; i++)
		wait_past(&l->readers[i].event_seq, 0);
}

void upg_uffd_loop_stop(struct upg_uffd_loop *l)
{
	uint64_t one = 1;

	if (!l)
		return;
	if (write(l->stop_fd, &one, sizeof(one)) != sizeof(one))
		upg_err("cannot signal the fault threads to stop");
	for (unsigned int i = 0; i < l->nr_readers; i++)
		if (l->readers[i].started)
			pthread_join(l->readers[i].thread, NULL);
	close(l->stop_fd);
	free(l);
}

int upg_uffd_loop_start(struct upg_uffd *u, unsigned int nr_threads, bool pin,
			const struct upg_uffd_ops *ops, void *ctx,
			struct upg_counters *counters,
			struct upg_uffd_loop **out)
{
	long nr_cpus = sysconf(_SC_NPROCESSORS_ONLN);
	struct upg_uffd_loop *l;
	int ret;

	l = calloc(1, sizeof(*l) + nr_threads * sizeof(l->readers[0]));
	if (!l)
		return -ENOMEM;
	l->u = u;
	l->ops = ops;
	l->ctx = ctx;
	l->nr_readers = nr_threads;
	pthread_mutex_init(&l->read_lock, NULL);
	l->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (l->stop_fd < 0) {
		ret = -errno;
		free(l);
		return ret;
	}
	for (unsigned int i = 0; i < nr_threads; i++) {
		struct reader *r = &l->readers[i];

		r->loop = l;
		r->counters = &counters[i];
		r->cpu = pin && nr_cpus > 0 ? (int)(i % (unsigned long)nr_cpus) : -1;
		ret = start_reader(r);
		if (ret) {
			upg_err("cannot start fault thread %u: %s", i, strerror(-ret));
			upg_uffd_loop_stop(l);
			return ret;
		}
	}
	*out = l;
	return 0;
}
