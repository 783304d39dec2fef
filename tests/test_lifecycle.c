/*
 * Runtime and region lifetimes, bad input, and the fallback path of each
 * optional kernel feature (forced by clearing it from options.features).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "helpers.h"
#include "testing.h"

Test(lifecycle, zero_length_region_is_refused)
{
	struct upg_runtime *rt = t_runtime_create(64 << 10, UPG_FEAT_ALL);
	struct upg_region *r = NULL;

	cr_assert_eq(upg_region_create(rt, 0, &r), -EINVAL);
	cr_assert_null(r);
	cr_assert_eq(upg_region_create(rt, SIZE_MAX - 4096, &r), -EINVAL);
	upg_runtime_destroy(rt);
}

Test(lifecycle, region_rounds_length_up_to_a_page)
{
	struct upg_runtime *rt = t_runtime_create(64 << 10, UPG_FEAT_ALL);
	struct upg_region *r = t_region_create(rt, 5000);
	char *p = upg_region_addr(r);

	cr_assert_eq(upg_region_len(r), 2 * T_PAGE);
	p[2 * T_PAGE - 1] = 1;
	cr_assert_eq(p[2 * T_PAGE - 1], 1);
	upg_runtime_destroy(rt);
}

Test(lifecycle, destroy_accepts_null)
{
	upg_region_destroy(NULL);
	upg_runtime_destroy(NULL);
}

Test(lifecycle, stats_copy_no_more_than_the_caller_knows)
{
	struct upg_runtime *rt = t_runtime_create(64 << 10, UPG_FEAT_ALL);
	struct upg_region *r = t_region_create(rt, 1 << 20);
	struct upg_stats st;

	memset(&st, 0xee, sizeof(st));
	st.size = 1;
	cr_assert_eq(upg_stats_get(rt, &st), -EINVAL);
	((volatile char *)upg_region_addr(r))[0] = 1;
	/* An older caller whose struct ends before the percentiles. */
	st.size = offsetof(struct upg_stats, fault_ns_p50);
	cr_assert_eq(upg_stats_get(rt, &st), 0);
	cr_assert_eq(st.faults, 1);
	cr_assert_eq(st.fault_ns_p50, 0xeeeeeeeeeeeeeeeeull, "wrote past st.size");
	st.size = sizeof(st);
	cr_assert_eq(upg_stats_get(rt, &st), 0);
	cr_assert_eq(st.regions, 1);
	cr_assert_eq(st.mapped_bytes, 1 << 20);
	cr_assert_eq(st.meta_bytes, 16 * sizeof(uint64_t), "8 bytes a 64K block");
	cr_assert_gt(st.fault_ns_p50, 0);
	cr_assert_geq(st.fault_ns_p99, st.fault_ns_p50);
	upg_runtime_destroy(rt);
}

Test(lifecycle, features_in_use_are_the_allowed_ones)
{
	unsigned int allowed = UPG_FEAT_ALL & ~(UPG_FEAT_MOVE | UPG_FEAT_POISON);
	struct upg_runtime *rt = t_runtime_create(64 << 10, allowed);

	cr_assert_eq(upg_runtime_features(rt) & ~allowed, 0);
	cr_assert(upg_runtime_features(rt) & UPG_FEAT_ZEROPAGE);
	upg_runtime_destroy(rt);
}

Test(lifecycle, verbose_logs_options_and_features)
{
	struct upg_options o;
	struct upg_runtime *rt;

	t_options_default(&o);
	o.verbose = true;
	t_log_capture();
	rt = t_runtime_create_opts(&o);
	cr_assert(t_log_contains("UPAGER_BLOCK_SIZE"));
	cr_assert(t_log_contains("features: devnode") || t_log_contains("features: zeropage"));
	upg_runtime_destroy(rt);
}

Test(lifecycle, fault_threads_can_be_one_unpinned_or_more_than_cpus)
{
	unsigned int counts[] = { 1, 3 };

	for (int i = 0; i < 2; i++) {
		struct upg_options o;
		struct upg_runtime *rt;
		struct upg_region *r;
		char *p;

		t_options_default(&o);
		o.fault_threads = counts[i];
		o.pin_threads = i == 1;
		rt = t_runtime_create_opts(&o);
		r = t_region_create(rt, 4 << 20);
		p = upg_region_addr(r);
		for (size_t off = 0; off < (4 << 20); off += T_PAGE)
			p[off] = (char)(off >> 12);
		for (size_t off = 0; off < (4 << 20); off += T_PAGE)
			cr_assert_eq(p[off], (char)(off >> 12));
		upg_runtime_destroy(rt);
	}
}

/* --- faults in flight at destroy ------------------------------------- */

struct reader_arg {
	char *dst;
	int fd;
	ssize_t ret;
	int err;
};

/* A kernel-mode fault: read(2) into untouched memory returns, never dies. */
static void *read_into(void *arg)
{
	struct reader_arg *a = arg;

	a->ret = read(a->fd, a->dst, T_PAGE);
	a->err = errno;
	return NULL;
}

static void start_stuck_read(struct upg_runtime *rt, struct upg_region *r,
			     pthread_t *th, struct reader_arg *a, int pipefd[2])
{
	static char buf[T_PAGE];

	(void)rt;
	cr_assert_eq(pipe(pipefd), 0);
	memset(buf, 'x', sizeof(buf));
	cr_assert_eq(write(pipefd[1], buf, sizeof(buf)), (ssize_t)sizeof(buf));
	*a = (struct reader_arg){ .dst = upg_region_addr(r), .fd = pipefd[0] };
	upg_test_fill_delay_us = 300000;
	pthread_create(th, NULL, read_into, a);
	usleep(100000);		/* the fault is now held in the fill delay */
}

static void check_read_ended(pthread_t th, struct reader_arg *a)
{
	pthread_join(th, NULL);
	/* Filled before the unmap, or the unmap came first: never a hang. */
	cr_assert(a->ret == (ssize_t)T_PAGE || (a->ret == -1 && a->err == EFAULT),
		  "read returned %zd (%s)", a->ret, strerror(a->err));
}

Test(lifecycle, region_destroy_with_a_fault_in_flight_returns, .timeout = 20)
{
	struct upg_runtime *rt = t_runtime_create(64 << 10, UPG_FEAT_ALL);
	struct upg_region *r = t_region_create(rt, 1 << 20);
	struct reader_arg a;
	int pipefd[2];
	pthread_t th;

	start_stuck_read(rt, r, &th, &a, pipefd);
	upg_region_destroy(r);
	check_read_ended(th, &a);
	upg_test_fill_delay_us = 0;
	upg_runtime_destroy(rt);
}

Test(lifecycle, runtime_destroy_with_a_fault_in_flight_returns, .timeout = 20)
{
	struct upg_runtime *rt = t_runtime_create(64 << 10, UPG_FEAT_ALL);
	struct upg_region *r = t_region_create(rt, 1 << 20);
	struct reader_arg a;
	int pipefd[2];
	pthread_t th;

	start_stuck_read(rt, r, &th, &a, pipefd);
	upg_runtime_destroy(rt);
	check_read_ended(th, &a);
}

/* --- forced fallbacks ------------------------------------------------ */

static void touch_and_check(struct upg_runtime *rt)
{
	struct upg_region *r = t_region_create(rt, 2 << 20);
	char *p = upg_region_addr(r);

	for (size_t off = 0; off < (1 << 20); off += T_PAGE)
		cr_assert(t_page_is_zero(p + off));
	for (size_t off = 1 << 20; off < (2 << 20); off += T_PAGE)
		t_page_fill(p + off, off / T_PAGE, 5);
	for (size_t off = 1 << 20; off < (2 << 20); off += T_PAGE)
		cr_assert(t_page_check(p + off, off / T_PAGE, 5));
	upg_region_destroy(r);
}

Test(lifecycle, without_devnode_the_syscall_opens_the_fd)
{
	struct upg_runtime *rt = t_runtime_create(64 << 10, UPG_FEAT_ALL & ~UPG_FEAT_DEVNODE);

	cr_assert_eq(upg_runtime_features(rt) & UPG_FEAT_DEVNODE, 0);
	touch_and_check(rt);
	upg_runtime_destroy(rt);
}

Test(lifecycle, devnode_is_used_where_allowed)
{
	struct upg_runtime *rt;

	if (access("/dev/userfaultfd", R_OK | W_OK))
		cr_skip_test("/dev/userfaultfd is not usable here");
	rt = t_runtime_create(64 << 10, UPG_FEAT_ALL);
	cr_assert(upg_runtime_features(rt) & UPG_FEAT_DEVNODE);
	upg_runtime_destroy(rt);
}

Test(lifecycle, without_zeropage_reads_fill_by_copy)
{
	struct upg_runtime *rt = t_runtime_create(64 << 10, UPG_FEAT_ALL & ~UPG_FEAT_ZEROPAGE);
	struct upg_stats st;

	touch_and_check(rt);
	t_stats(rt, &st);
	cr_assert_eq(st.fill_zeropage, 0);
	cr_assert_eq(st.fill_copy, st.fills);
	cr_assert_gt(st.faults_read, 0);
	upg_runtime_destroy(rt);
}

Test(lifecycle, with_zeropage_reads_map_the_zero_page)
{
	struct upg_runtime *rt = t_runtime_create(64 << 10, UPG_FEAT_ALL);
	struct upg_stats st;

	touch_and_check(rt);
	t_stats(rt, &st);
	/*
	 * 1 MiB of reads in a stream, then writes: readahead makes fewer,
	 * longer read fills, and may run into the written half.
	 */
	cr_assert_gt(st.fill_zeropage, 0);
	cr_assert_geq(st.fill_pages, 256);
	cr_assert_eq(st.fill_zeropage + st.fill_copy, st.fills);
	upg_runtime_destroy(rt);
}

/* --- fault_mode=sigbus ------------------------------------------------ */

static struct upg_runtime *sigbus_runtime(void)
{
	struct upg_options o;

	t_options_default(&o);
	o.fault_mode = UPG_FAULT_SIGBUS;
	return t_runtime_create_opts(&o);
}

Test(lifecycle, sigbus_mode_resolves_faults_in_the_faulting_thread)
{
	struct upg_runtime *rt = sigbus_runtime();
	struct upg_stats st;

	touch_and_check(rt);
	t_stats(rt, &st);
	cr_assert_gt(st.faults, 0);
	cr_assert_eq(st.reader_wakeups, st.events_unmap + st.events_remove,
		     "no fault went through the reader");
	upg_runtime_destroy(rt);
}

/* The documented price of sigbus mode: kernel-mode access gets EFAULT. */
Test(lifecycle, sigbus_mode_read_syscall_into_untouched_memory_fails)
{
	struct upg_runtime *rt = sigbus_runtime();
	struct upg_region *r = t_region_create(rt, 1 << 20);
	int fd = open("/dev/zero", O_RDONLY);

	cr_assert_eq(read(fd, upg_region_addr(r), T_PAGE), -1);
	cr_assert_eq(errno, EFAULT);
	close(fd);
	upg_runtime_destroy(rt);
}

Test(lifecycle, second_sigbus_runtime_is_refused)
{
	struct upg_runtime *rt = sigbus_runtime(), *rt2 = NULL;
	struct upg_options o;

	t_options_default(&o);
	o.fault_mode = UPG_FAULT_SIGBUS;
	cr_assert_eq(upg_runtime_create(&o, &rt2), -EBUSY);
	upg_runtime_destroy(rt);
}

static sigjmp_buf bus_jump;
static volatile sig_atomic_t app_handler_ran;

static void app_sigbus(int sig)
{
	(void)sig;
	app_handler_ran = 1;
	siglongjmp(bus_jump, 1);
}

/* A real SIGBUS elsewhere (past the end of a file) reaches the app's handler. */
Test(lifecycle, sigbus_outside_regions_goes_to_the_previous_handler)
{
	struct upg_runtime *rt;
	FILE *f = tmpfile();
	volatile char *map;

	signal(SIGBUS, app_sigbus);
	rt = sigbus_runtime();
	map = mmap(NULL, 2 * T_PAGE, PROT_READ, MAP_SHARED, fileno(f), 0);
	cr_assert_neq((void *)map, MAP_FAILED);
	if (!sigsetjmp(bus_jump, 1))
		(void)map[T_PAGE];
	cr_assert_eq(app_handler_ran, 1);
	touch_and_check(rt);	/* and ours still works */
	upg_runtime_destroy(rt);
}

Test(lifecycle, sigbus_mode_without_the_feature_is_refused)
{
	struct upg_runtime *rt = NULL;
	struct upg_options o;
	int ret;

	t_options_default(&o);
	o.fault_mode = UPG_FAULT_SIGBUS;
	o.features &= ~UPG_FEAT_SIGBUS;
	ret = upg_runtime_create(&o, &rt);
	if (ret == -EPERM || ret == -ENOSYS)
		cr_skip_test("userfaultfd not available here");
	cr_assert_eq(ret, -EOPNOTSUPP);
	cr_assert_null(rt);
}

/* A process without the right gets -EPERM and a message naming the fixes. */
Test(lifecycle, unprivileged_process_gets_eperm_with_the_fix)
{
	struct upg_runtime *rt = NULL;
	FILE *f = fopen("/proc/sys/vm/unprivileged_userfaultfd", "r");
	int allowed = 1;

	if (f) {
		if (fscanf(f, "%d", &allowed) != 1)
			allowed = 1;
		fclose(f);
	}
	if (geteuid() != 0 || allowed)
		cr_skip_test("needs root and vm.unprivileged_userfaultfd=0");
	/* This test runs in its own process: dropping root is for good. */
	cr_assert_eq(setgid(65534), 0);
	cr_assert_eq(setuid(65534), 0);
	t_log_capture();
	cr_assert_eq(upg_runtime_create(NULL, &rt), -EPERM);
	cr_assert_null(rt);
	cr_assert(t_log_contains("vm.unprivileged_userfaultfd=1"));
	cr_assert(t_log_contains("/dev/userfaultfd"));
}
