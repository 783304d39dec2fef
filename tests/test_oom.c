/*
 * The oom and overcommit policies (issue 4): when the budget cannot be
 * kept, oom=kill ends the process naming the figures, oom=wait waits for
 * room up to its limit, oom=callback asks the application, whose unpin
 * lets the fill finish; overcommit refuses regions that cannot fit.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

#define KIB	1024ul
#define MIB	(1024ul * 1024)

static void oom_options(struct upg_options *o, enum upg_oom_policy policy)
{
	t_options_default(o);
	o->block_size = 64 * KIB;
	o->budget = 1 * MIB;
	o->oom = policy;
}

/*
 * A region of twice the budget with all of the budget pinned: touching
 * the unpinned half needs room that cannot be made.
 */
static uint8_t *pinned_full(struct upg_runtime *rt)
{
	uint8_t *base = upg_region_addr(t_region_create(rt, 2 * MIB));

	for (size_t pg = 0; pg < MIB / T_PAGE; pg++)
		t_page_fill(base + pg * T_PAGE, pg, 1);
	cr_assert_eq(upg_pin(base, 1 * MIB), 0);
	return base;
}

struct child {
	int status;
	double seconds;
	char log[4096];
};

/* Run @fn in a child with stderr captured; its status and log in @out. */
static void run_child(void (*fn)(void), struct child *out)
{
	struct timespec t0, t1;
	int pfd[2];
	size_t used = 0;
	ssize_t n;
	pid_t pid;

	cr_assert_eq(pipe(pfd), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (!pid) {
		dup2(pfd[1], 2);
		close(pfd[0]);
		fn();
		_exit(0);
	}
	close(pfd[1]);
	while ((n = read(pfd[0], out->log + used, sizeof(out->log) - 1 - used)) > 0)
		used += (size_t)n;
	out->log[used] = '\0';
	close(pfd[0]);
	cr_assert_eq(waitpid(pid, &out->status, 0), pid);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	out->seconds = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
}

static void assert_killed(const struct child *ch, const char *why, const char *policy)
{
	cr_assert(WIFSIGNALED(ch->status) && WTERMSIG(ch->status) == SIGKILL,
		  "status %#x, log:\n%s", ch->status, ch->log);
	cr_assert(strstr(ch->log, why), "no \"%s\" in:\n%s", why, ch->log);
	cr_assert(strstr(ch->log, policy), "no \"%s\" in:\n%s", policy, ch->log);
	cr_assert(strstr(ch->log, "KiB of a 1024 KiB budget"), "%s", ch->log);
}

static void touch_past_pins(enum upg_oom_policy policy, unsigned int wait_ms)
{
	struct upg_options o;
	struct upg_runtime *rt;
	uint8_t *base;

	oom_options(&o, policy);
	o.oom_wait_ms = wait_ms;
	if (upg_runtime_create(&o, &rt))
		_exit(77);
	base = pinned_full(rt);
	base[1 * MIB] = 1;	/* no room: never returns */
	_exit(1);
}

static void kill_child(void)
{
	touch_past_pins(UPG_OOM_KILL, 0);
}

Test(oom, kill_ends_the_process_naming_the_figures, .timeout = 60)
{
	struct child ch;

	upg_runtime_destroy(t_runtime_create(64 * KIB, UPG_FEAT_ALL));	/* or skip */
	run_child(kill_child, &ch);
	assert_killed(&ch, "out of memory (everything pinned)", "oom=kill");
	cr_assert(strstr(ch.log, "1024 KiB of it pinned"), "%s", ch.log);
}

static void wait_child(void)
{
	touch_past_pins(UPG_OOM_WAIT, 1500);
}

Test(oom, wait_gives_up_after_its_limit, .timeout = 60)
{
	struct child ch;

	upg_runtime_destroy(t_runtime_create(64 * KIB, UPG_FEAT_ALL));
	run_child(wait_child, &ch);
	assert_killed(&ch, "out of memory (everything pinned)", "oom=wait");
	/* The limit counts from the start of the wait with nothing freed. */
	cr_assert_geq(ch.seconds, 1.4, "killed after %.2f s", ch.seconds);
}

static void *toucher(void *arg)
{
	uint8_t *p = arg;

	t_page_fill(p, 1 * MIB / T_PAGE, 2);	/* waits for room */
	return NULL;
}

/*
 * An oom=wait runtime with @threads fault threads (0: the default), the
 * budget pinned full, and a thread stalled touching past it; returns once
 * the stall is noticed (one oom_event).
 */
static uint8_t *stalled_toucher(unsigned int threads, struct upg_runtime **rt, pthread_t *t)
{
	struct upg_options o;
	struct upg_stats st;
	uint8_t *base;

	oom_options(&o, UPG_OOM_WAIT);
	o.oom_wait_ms = 30000;
	o.fault_threads = threads;
	*rt = t_runtime_create_opts(&o);
	base = pinned_full(*rt);
	pthread_create(t, NULL, toucher, base + 1 * MIB);
	for (int i = 0; i < 500; i++) {
		t_stats(*rt, &st);
		if (st.oom_events)
			break;
		usleep(10000);
	}
	cr_assert_eq(st.oom_events, 1, "the stall was not noticed");
	return base;
}

Test(oom, wait_resumes_when_an_unpin_makes_room, .timeout = 60)
{
	struct upg_runtime *rt;
	pthread_t t;
	uint8_t *base = stalled_toucher(0, &rt, &t);

	cr_assert_eq(upg_unpin(base, 1 * MIB), 0);
	pthread_join(t, NULL);
	cr_assert(t_page_check(base + 1 * MIB, 1 * MIB / T_PAGE, 2));
	for (size_t pg = 0; pg < MIB / T_PAGE; pg++)
		cr_assert(t_page_check(base + pg * T_PAGE, pg, 1), "page %zu", pg);
	upg_runtime_destroy(rt);
}

struct asked {
	uint8_t *base;
	int calls;
	struct upg_oom_info info;
	char why[64];
	enum upg_oom_action answer;
};

static enum upg_oom_action on_oom(const struct upg_oom_info *info, void *arg)
{
	struct asked *a = arg;

	a->calls++;
	a->info = *info;
	snprintf(a->why, sizeof(a->why), "%s", info->why);
	if (a->answer == UPG_OOM_RETRY)
		upg_unpin(a->base, 1 * MIB);	/* make room, as the callback may */
	return a->answer;
}

Test(oom, callback_is_asked_and_its_unpin_lets_the_fill_finish, .timeout = 60)
{
	struct asked a = { .answer = UPG_OOM_RETRY };
	struct upg_options o;
	struct upg_runtime *rt;
	struct upg_stats st;

	oom_options(&o, UPG_OOM_CALLBACK);
	o.oom_callback = on_oom;
	o.oom_callback_arg = &a;
	rt = t_runtime_create_opts(&o);
	a.base = pinned_full(rt);
	t_page_fill(a.base + 1 * MIB, 1 * MIB / T_PAGE, 2);
	cr_assert_eq(a.calls, 1);
	cr_assert_str_eq(a.why, "everything pinned");
	cr_assert_eq(a.info.pinned, 1 * MIB);
	cr_assert_eq(a.info.budget, 1 * MIB);
	cr_assert_geq(a.info.waited_ms, 1000);
	t_stats(rt, &st);
	cr_assert_eq(st.oom_callbacks, 1);
	for (size_t pg = 0; pg < MIB / T_PAGE; pg++)
		cr_assert(t_page_check(a.base + pg * T_PAGE, pg, 1), "page %zu", pg);
	upg_runtime_destroy(rt);
}

static void callback_die_child(void)
{
	static struct asked a = { .answer = UPG_OOM_DIE };
	struct upg_options o;
	struct upg_runtime *rt;

	oom_options(&o, UPG_OOM_CALLBACK);
	o.oom_callback = on_oom;
	o.oom_callback_arg = &a;
	if (upg_runtime_create(&o, &rt))
		_exit(77);
	a.base = pinned_full(rt);
	a.base[1 * MIB] = 1;
	_exit(1);
}

Test(oom, callback_that_answers_die_ends_the_process, .timeout = 60)
{
	struct child ch;

	upg_runtime_destroy(t_runtime_create(64 * KIB, UPG_FEAT_ALL));
	run_child(callback_die_child, &ch);
	assert_killed(&ch, "out of memory (everything pinned)", "oom=callback");
}

/* Incompressible pages into a zpool capped at a quarter MiB. */
static void zpool_full_child(void)
{
	struct upg_options o;
	struct upg_runtime *rt;
	struct upg_region *r;
	uint64_t x = 88172645463325252ull;

	oom_options(&o, UPG_OOM_KILL);
	o.zpool_max = 256 * KIB;
	o.overcommit = UPG_OVERCOMMIT_ALWAYS;
	if (upg_runtime_create(&o, &rt) || upg_region_create(rt, 8 * MIB, &r))
		_exit(77);
	uint64_t *p = upg_region_addr(r);
	for (size_t i = 0; i < 8 * MIB / 8; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		p[i] = x;
	}
	_exit(1);
}

Test(oom, full_zpool_is_named_as_the_reason, .timeout = 60)
{
	struct child ch;

	upg_runtime_destroy(t_runtime_create(64 * KIB, UPG_FEAT_ALL));
	run_child(zpool_full_child, &ch);
	assert_killed(&ch, "out of memory (zpool full)", "oom=kill");
}

static struct upg_runtime *overcommit_runtime(enum upg_overcommit policy)
{
	struct upg_options o;

	t_options_default(&o);
	o.block_size = 64 * KIB;
	o.budget = 1 * MIB;
	o.zpool_max = 1 * MIB;
	o.overcommit = policy;
	return t_runtime_create_opts(&o);
}

Test(oom, overcommit_never_refuses_what_could_not_fit_uncompressed, .timeout = 30)
{
	struct upg_runtime *rt = overcommit_runtime(UPG_OVERCOMMIT_NEVER);
	struct upg_region *a, *b;
	struct upg_stats st;

	t_log_capture();
	cr_assert_eq(upg_region_create(rt, 2 * MIB + T_PAGE, &a), -ENOMEM);
	cr_assert(t_log_contains("overcommit=never"));
	cr_assert_eq(upg_region_create(rt, 1536 * KIB, &a), 0);
	cr_assert_eq(upg_region_create(rt, 1 * MIB, &b), -ENOMEM);
	cr_assert_eq(upg_region_create(rt, 512 * KIB, &b), 0);
	upg_region_destroy(a);
	cr_assert_eq(upg_region_create(rt, 1 * MIB, &a), 0, "destroy gave the room back");
	t_stats(rt, &st);
	cr_assert_eq(st.overcommit_refused, 2);
	upg_set_log_fn(NULL, NULL);
	upg_runtime_destroy(rt);
}

Test(oom, overcommit_heuristic_counts_on_compression_and_always_never_refuses, .timeout = 30)
{
	struct upg_runtime *rt = overcommit_runtime(UPG_OVERCOMMIT_HEURISTIC);
	struct upg_region *r;

	/* budget + 4 x zpool_max */
	cr_assert_eq(upg_region_create(rt, 5 * MIB + T_PAGE, &r), -ENOMEM);
	cr_assert_eq(upg_region_create(rt, 5 * MIB, &r), 0);
	upg_runtime_destroy(rt);
	rt = overcommit_runtime(UPG_OVERCOMMIT_ALWAYS);
	cr_assert_eq(upg_region_create(rt, 1ul << 40, &r), 0);
	upg_runtime_destroy(rt);
}

/*
 * Review: with oom=wait, a MADV_DONTNEED meant to make room needs a fault
 * thread free to read its event; one that waited for room in its reader
 * never read it. Fills without room are handed to the evictor now.
 */
Test(oom, wait_resumes_when_a_dontneed_makes_room_with_one_fault_thread, .timeout = 60)
{
	struct upg_runtime *rt;
	struct upg_stats st;
	pthread_t t;
	uint8_t *base = stalled_toucher(1, &rt, &t);

	cr_assert_eq(madvise(base, 1 * MIB, MADV_DONTNEED), 0);
	pthread_join(t, NULL);
	cr_assert(t_page_check(base + 1 * MIB, 1 * MIB / T_PAGE, 2));
	cr_assert(t_page_is_zero(base));
	t_stats(rt, &st);
	cr_assert_eq(st.pinned_bytes, 0);
	upg_runtime_destroy(rt);
}
