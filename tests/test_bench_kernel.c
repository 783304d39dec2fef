/*
 * upager-bench's kernel engines (tools/bench/kernel.c): the memory cgroup
 * and the zram or swap-file swap behind it. They change machine-wide
 * state, so what is checked above all is that the machine is left as it
 * was on every way out: teardown, exit, SIGINT/SIGTERM/SIGHUP/SIGQUIT, a
 * refused set-up. Also: a task over its budget really is swapped and gets
 * its data back, and set-up refuses swap that someone else configured
 * (issue 3). Needs root, a memory cgroup and zram; skips otherwise, and
 * skips rather than touch a machine that already has swap on.
 *
 * Ways out that end a process run the set-up in a forked child. The
 * fixture's fini undoes what a failed test may have left, so one failure
 * does not become the next test's.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <mntent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernel.h"

#define MiB		(1ull << 20)
#define PAGE		4096u
#define ZRAM_SYS	"/sys/block/zram0"
#define MAX_KIDS	8

/*
 * What a v1 memory cgroup may show over its limit: none (a charge over it
 * reclaims first), but v2's memory.current lags by a per-CPU batch.
 */
#define USAGE_SLACK	(2 * MiB)

static const int teardown_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

/* What a test made, for t_fini to undo whatever happened. */
static struct {
	struct bench_kernel_env *env;
	pid_t kids[MAX_KIDS];		/* to kill; 0 once reaped */
	int nr_kids;
	pid_t forked[MAX_KIDS];		/* all, for their cgroups */
	int nr_forked;
	bool zram_by_test;		/* the test configured zram0 itself */
	char own_swap[PATH_MAX];	/* the test's own swap file, on */
	char dir[256];			/* a swap dir of the test's own */
	bool dir_mounted;
	bool was_clean;			/* need() found nothing on */
	char zram_alg[64];		/* comp_algorithm to put back */
} t;

static char err[1024];

static void __attribute__((format(printf, 3, 4)))
appendf(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

/*
 * In a child: die of @sig when the parent does, so a test killed by its
 * timeout leaves no child behind (an owner gets SIGTERM: it tears down).
 */
static void die_with_parent(int sig, pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, sig);
	if (getppid() != parent)
		raise(sig);
}

/* waitpid() for at most @secs seconds: a child that should have died. */
static void reap(pid_t pid, int *status, int secs)
{
	pid_t got = 0;

	for (int i = 0; i < secs * 100 && !got; i++) {
		got = waitpid(pid, status, WNOHANG);
		if (!got)
			usleep(10000);
	}
	cr_assert_eq(got, pid, "%d still runs after %d s", (int)pid, secs);
}

static void add_kid(pid_t pid)
{
	cr_assert_gt(pid, 0, "fork: %s", strerror(errno));
	if (t.nr_kids < MAX_KIDS)
		t.kids[t.nr_kids++] = pid;
	if (t.nr_forked < MAX_KIDS)
		t.forked[t.nr_forked++] = pid;
}

static void write_sys(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (write(fd, val, strlen(val)) < 0)
			fprintf(stderr, "%s = %s: %s\n", path, val, strerror(errno));
		close(fd);
	}
}

static bool read_sys(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = read(fd, buf, len - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n >= 0;
}

static unsigned long long read_sys_u64(const char *path)
{
	char buf[64];

	return read_sys(path, buf, sizeof(buf)) ? strtoull(buf, NULL, 10) : ~0ull;
}

static void t_init(void)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };

	/* kernel.c takes over only default actions, as in upager-bench. */
	for (size_t i = 0; i < sizeof(teardown_signals) / sizeof(int); i++)
		sigaction(teardown_signals[i], &dfl, NULL);
	memset(&t, 0, sizeof(t));
}

static void t_fini(void);

TestSuite(bench_kernel, .init = t_init, .fini = t_fini);

/* The memory hierarchy's root, found as kernel.c finds it. */
static const char *memcg_root(bool *v2)
{
	static char root[PATH_MAX];
	char path[PATH_MAX + 32], list[512];
	struct mntent *m;
	FILE *f = setmntent("/proc/mounts", "re");

	root[0] = '\0';
	while (f && !root[0] && (m = getmntent(f))) {
		if (!strcmp(m->mnt_type, "cgroup") && hasmntopt(m, "memory")) {
			*v2 = false;
		} else if (!strcmp(m->mnt_type, "cgroup2")) {
			snprintf(path, sizeof(path), "%s/cgroup.controllers", m->mnt_dir);
			if (!read_sys(path, list, sizeof(list)) || !strstr(list, "memory"))
				continue;
			*v2 = true;
		} else {
			continue;
		}
		snprintf(root, sizeof(root), "%s", m->mnt_dir);
	}
	if (f)
		endmntent(f);
	return root;
}

static void cg_dir_of(pid_t owner, char *dir, size_t len)
{
	bool v2;

	snprintf(dir, len, "%s/upager-bench-%d", memcg_root(&v2), (int)owner);
}

/* /proc/swaps' entries other than the test's own swap file, joined. */
static void other_swaps(char *buf, size_t len)
{
	char line[PATH_MAX + 128], name[PATH_MAX + 128];
	FILE *f = fopen("/proc/swaps", "re");

	buf[0] = '\0';
	if (!f || !fgets(line, sizeof(line), f))
		goto out;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%s", name) == 1 && strcmp(name, t.own_swap))
			appendf(buf, len, "%s ", name);
out:
	if (f)
		fclose(f);
}

static unsigned long long swap_used_kb(const char *name)
{
	char line[PATH_MAX + 128], n[PATH_MAX + 128], type[32];
	unsigned long long size, used, ret = 0;
	FILE *f = fopen("/proc/swaps", "re");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%s %31s %llu %llu", n, type, &size, &used) == 4 &&
		    !strcmp(n, name))
			ret = used;
	if (f)
		fclose(f);
	return ret;
}

static bool swap_is_on(const char *name)
{
	char line[PATH_MAX + 128], n[PATH_MAX + 128];
	bool on = false;
	FILE *f = fopen("/proc/swaps", "re");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%s", n) == 1 && !strcmp(n, name))
			on = true;
	if (f)
		fclose(f);
	return on;
}

/* Entries of @dir other than the test's own swap file. */
static void dir_entries(const char *dir, char *buf, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[PATH_MAX + 300];

	buf[0] = '\0';
	while (d && (de = readdir(d))) {
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strcmp(path, t.own_swap))
			appendf(buf, len, "%s ", path);
	}
	if (d)
		closedir(d);
}

/* upager-bench-* cgroups. */
static void bench_cgroups(char *buf, size_t len)
{
	bool v2;
	const char *root = memcg_root(&v2);
	DIR *d = opendir(root);
	struct dirent *de;

	buf[0] = '\0';
	while (d && (de = readdir(d)))
		if (!strncmp(de->d_name, "upager-bench-", 13))
			appendf(buf, len, "%s/%s ", root,
				 de->d_name);
	if (d)
		closedir(d);
}

/* What kernel engines left behind: "" when the machine is as found. */
static const char *leftovers(void)
{
	static char out[4096];
	char part[2048];
	unsigned long long disksize = read_sys_u64(ZRAM_SYS "/disksize");

	out[0] = '\0';
	other_swaps(part, sizeof(part));
	if (part[0])
		appendf(out, sizeof(out), "swap on: %s; ", part);
	if (!t.zram_by_test && disksize != 0 && disksize != ~0ull)
		appendf(out, sizeof(out),
			 "zram0 disksize %llu; ", disksize);
	bench_cgroups(part, sizeof(part));
	if (part[0])
		appendf(out, sizeof(out), "cgroups: %s; ", part);
	if (t.dir[0]) {
		dir_entries(t.dir, part, sizeof(part));
		if (part[0])
			appendf(out, sizeof(out),
				 "files: %s; ", part);
	}
	return out;
}

#define assert_nothing_left() \
	cr_assert_str_empty(leftovers(), "left behind: %s", leftovers())

/*
 * What a failed test's processes may have left (a child that died before
 * its teardown ran, a mutant kernel.c). Only after need() found the
 * machine clean, so that zram0 and upager-bench-* things are ours.
 */
static void clean_up_after_failure(void)
{
	char line[PATH_MAX + 128], name[PATH_MAX + 128], cg[PATH_MAX + 64];
	unsigned long long disksize;
	FILE *f = fopen("/proc/swaps", "re");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%s", name) == 1 && strcmp(name, t.own_swap) &&
		    (!strcmp(name, "/dev/zram0") ||
		     (t.dir[0] && !strncmp(name, t.dir, strlen(t.dir)))))
			swapoff(name);
	if (f)
		fclose(f);
	disksize = read_sys_u64(ZRAM_SYS "/disksize");
	if (disksize && disksize != ~0ull)
		write_sys(ZRAM_SYS "/reset", "1");
	for (int i = -1; i < t.nr_forked; i++) {
		cg_dir_of(i < 0 ? getpid() : t.forked[i], cg, sizeof(cg));
		/* EBUSY while a task that outlived its owner exits */
		for (int j = 0; j < 200 && rmdir(cg) && errno == EBUSY; j++)
			usleep(10000);
	}
	if (t.dir[0] && !t.dir_mounted) {
		dir_entries(t.dir, line, sizeof(line));
		for (char *p = strtok(line, " "); p; p = strtok(NULL, " "))
			unlink(p);
	}
}

static void t_fini(void)
{
	/* SIGTERM first: a child that set up tears down on it. */
	for (int i = 0; i < t.nr_kids; i++)
		kill(t.kids[i], SIGTERM);
	for (int i = 0; i < t.nr_kids; i++) {
		for (int j = 0; j < 500 && !waitpid(t.kids[i], NULL, WNOHANG); j++)
			usleep(10000);
		kill(t.kids[i], SIGKILL);
		waitpid(t.kids[i], NULL, 0);
	}
	bench_kernel_teardown(t.env);
	if (t.own_swap[0]) {
		swapoff(t.own_swap);
		unlink(t.own_swap);
	}
	if (t.zram_by_test)
		write_sys(ZRAM_SYS "/reset", "1");
	if (t.zram_alg[0])
		write_sys(ZRAM_SYS "/comp_algorithm", t.zram_alg);
	if (t.was_clean)
		clean_up_after_failure();
	if (t.dir_mounted)
		umount2(t.dir, MNT_DETACH);
	if (t.dir[0])
		rmdir(t.dir);
}

/* Root, the engine possible here, and a machine with nothing on. */
static void need(enum bench_engine e)
{
	const char *left;

	if (geteuid() != 0)
		cr_skip_test("needs root");
	if (bench_kernel_check(e, err, sizeof(err)))
		cr_skip_test("%s", err);
	left = leftovers();
	if (left[0])
		cr_skip_test("the machine is not clean before the test: %s", left);
	t.was_clean = true;
}

static void make_dir(void)
{
	snprintf(t.dir, sizeof(t.dir), "/var/tmp/upager-test-XXXXXX");
	cr_assert_not_null(mkdtemp(t.dir), "mkdtemp: %s", strerror(errno));
}

/* The one file kernel.c made in t.dir, or "". */
static const char *swap_file_in_dir(void)
{
	static char path[PATH_MAX + 300];

	dir_entries(t.dir, path, sizeof(path));
	if (path[0])
		path[strlen(path) - 1] = '\0';	/* the trailing space */
	cr_assert_null(strchr(path, ' '), "more than one file: %s", path);
	return path;
}

/* ---- a workload: pages with text in them, checked on the way back ---- */

static const char *const words[] = {
	"the", "page", "memory", "of", "swap", "kernel", "budget", "and",
	"a", "zram", "compressed", "to", "fault", "in", "region", "is",
};

static void fill_page(uint8_t *p, uint64_t nr)
{
	uint64_t x = nr * 0x9E3779B97F4A7C15ull + 1;
	size_t off = sizeof(nr);

	memcpy(p, &nr, sizeof(nr));	/* every page differs */
	while (off < PAGE) {
		const char *w;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w = words[x % 16];
		for (size_t i = 0; w[i] && off < PAGE; i++)
			p[off++] = (uint8_t)w[i];
		if (off < PAGE)
			p[off++] = ' ';
	}
}

static uint64_t page_sum(const uint8_t *p)
{
	uint64_t h = 0xcbf29ce484222325ull, w;

	for (size_t i = 0; i < PAGE; i += sizeof(w)) {
		memcpy(&w, p + i, sizeof(w));
		h = (h ^ w) * 0x100000001b3ull;
	}
	return h;
}

/*
 * A child's life: wait for 'g' on @go (it is in the cgroup by then), touch
 * @len bytes, report its pid on @ready, then wait for 'v' and check every
 * page: exit status 0 when all came back intact. With @stay it never
 * checks, just waits to be killed.
 */
static void __attribute__((noreturn)) toucher(int go, int ready, size_t len, bool stay)
{
	size_t nr_pages = len / PAGE, bad = 0;
	pid_t self = getpid();
	uint64_t *sums;
	uint8_t *p;
	char c;

	if (read(go, &c, 1) != 1 || c != 'g')
		_exit(10);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	sums = malloc(nr_pages * sizeof(*sums));
	if (p == MAP_FAILED || !sums)
		_exit(11);
	for (size_t i = 0; i < nr_pages; i++) {
		fill_page(p + i * PAGE, i);
		sums[i] = page_sum(p + i * PAGE);
	}
	if (write(ready, &self, sizeof(self)) != sizeof(self))
		_exit(12);
	if (stay)
		for (;;)
			pause();
	if (read(go, &c, 1) != 1 || c != 'v')
		_exit(13);
	for (size_t i = 0; i < nr_pages; i++)
		bad += page_sum(p + i * PAGE) != sums[i];
	_exit(bad ? 1 : 0);
}

/*
 * A child entered into t.env's cgroup (@budget) touches 4x the budget;
 * while it holds it, its usage stays under the budget and swap holds the
 * rest; then it reads every page back intact.
 */
static void over_budget_is_swapped(enum bench_engine e, uint64_t budget)
{
	struct bench_kernel_usage u;
	int go[2], ready[2], status;
	pid_t pid, got, parent = getpid();

	cr_assert_eq(pipe(go), 0);
	cr_assert_eq(pipe(ready), 0);
	pid = fork();
	if (pid == 0) {
		die_with_parent(SIGKILL, parent);
		toucher(go[0], ready[1], 4 * budget, false);
	}
	add_kid(pid);
	close(go[0]);
	close(ready[1]);	/* EOF, not a hang, if it dies */
	cr_assert_eq(bench_kernel_enter(t.env, pid), 0);
	cr_assert_eq(write(go[1], "g", 1), 1);
	cr_assert_eq(read(ready[0], &got, sizeof(got)), (ssize_t)sizeof(got),
		     "the child died while touching its memory");

	cr_assert_eq(bench_kernel_usage(t.env, &u), 0);
	cr_assert_leq(u.cgroup_bytes, budget + USAGE_SLACK, "usage %llu",
		      (unsigned long long)u.cgroup_bytes);
	cr_assert_gt(u.cgroup_bytes, budget / 2, "the child is not charged here");
	cr_assert_leq(u.cgroup_peak, budget + USAGE_SLACK, "peak %llu",
		      (unsigned long long)u.cgroup_peak);
	/* At least the part over the budget is out. */
	cr_assert_geq(u.swap_used_bytes, 2 * budget, "swap used %llu",
		      (unsigned long long)u.swap_used_bytes);
	if (e == BENCH_ENGINE_KERNEL_ZRAM) {
		cr_assert_geq(u.zram_orig_bytes, 2 * budget);
		cr_assert_gt(u.zram_compr_bytes, 0);
		cr_assert_lt(u.zram_compr_bytes, u.zram_orig_bytes, "text compresses");
		cr_assert_gt(u.zram_mem_bytes, 0);
	} else {
		cr_assert_eq(u.zram_orig_bytes, 0);
	}

	cr_assert_eq(write(go[1], "v", 1), 1);
	reap(pid, &status, 60);
	t.nr_kids = 0;
	cr_assert(WIFEXITED(status), "the child died of signal %d", WTERMSIG(status));
	cr_assert_eq(WEXITSTATUS(status), 0, "pages came back wrong (status %d)",
		     WEXITSTATUS(status));
	bench_kernel_teardown(t.env);
	assert_nothing_left();
}

/* ---- checks ---- */

Test(bench_kernel, check_without_root_is_eperm_and_says_why, .timeout = 10)
{
	struct { int ret; char err[256]; } r = { 0 }, got;
	int fd[2], status;
	pid_t pid;

	if (geteuid() != 0) {	/* we are the unprivileged case ourselves */
		r.ret = bench_kernel_check(BENCH_ENGINE_KERNEL_ZRAM, r.err, sizeof(r.err));
		cr_assert_eq(r.ret, -EPERM);
		cr_assert_not_null(strstr(r.err, "needs root"), "%s", r.err);
		return;
	}
	cr_assert_eq(pipe(fd), 0);
	pid = fork();
	if (pid == 0) {
		die_with_parent(SIGKILL, getppid());
		if (setuid(65534))
			_exit(1);
		r.ret = bench_kernel_check(BENCH_ENGINE_KERNEL_SWAPFILE, r.err,
					   sizeof(r.err));
		_exit(write(fd[1], &r, sizeof(r)) == sizeof(r) ? 0 : 2);
	}
	add_kid(pid);
	cr_assert_eq(read(fd[0], &got, sizeof(got)), (ssize_t)sizeof(got));
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert_eq(got.ret, -EPERM);
	cr_assert_str_eq(got.err, "needs root: the kernel engines set up a memory "
			 "cgroup and swap");
}

Test(bench_kernel, check_of_an_engine_that_needs_no_setup_is_einval, .timeout = 10)
{
	cr_assert_eq(bench_kernel_check(BENCH_ENGINE_RAM, err, sizeof(err)), -EINVAL);
	cr_assert_str_not_empty(err);
}

/* ---- set-up and teardown ---- */

Test(bench_kernel, zram_setup_then_teardown_leaves_nothing_behind, .timeout = 60)
{
	char alg_before[256], alg[256], dir[PATH_MAX + 64], path[PATH_MAX + 128];
	bool v2;
	int ret;

	need(BENCH_ENGINE_KERNEL_ZRAM);
	/* Not the default, which a reset alone would bring back. */
	read_sys(ZRAM_SYS "/comp_algorithm", alg, sizeof(alg));
	if (!strchr(alg, '[') || sscanf(strchr(alg, '['), "[%63[^]]", t.zram_alg) != 1)
		cr_skip_test("comp_algorithm has no current one: %s", alg);
	if (strstr(alg, " lzo ") || strstr(alg, " lzo\n"))
		write_sys(ZRAM_SYS "/comp_algorithm", "lzo");
	read_sys(ZRAM_SYS "/comp_algorithm", alg_before, sizeof(alg_before));
	ret = bench_kernel_setup(BENCH_ENGINE_KERNEL_ZRAM, 64 * MiB, 256 * MiB, NULL,
				 &t.env, err, sizeof(err));
	cr_assert_eq(ret, 0, "%s", err);

	cr_assert(swap_is_on("/dev/zram0"));
	cr_assert_eq(read_sys_u64(ZRAM_SYS "/disksize"), 256 * MiB);
	read_sys(ZRAM_SYS "/comp_algorithm", alg, sizeof(alg));
	cr_assert_not_null(strstr(alg, "[lz4]"), "%s", alg);
	cg_dir_of(getpid(), dir, sizeof(dir));
	memcg_root(&v2);
	snprintf(path, sizeof(path), "%s/%s", dir,
		 v2 ? "memory.max" : "memory.limit_in_bytes");
	cr_assert_eq(read_sys_u64(path), 64 * MiB, "%s", path);

	bench_kernel_teardown(t.env);
	assert_nothing_left();
	read_sys(ZRAM_SYS "/comp_algorithm", alg, sizeof(alg));
	cr_assert_str_eq(alg, alg_before, "comp_algorithm is restored");
	bench_kernel_teardown(t.env);	/* idempotent */
	bench_kernel_teardown(NULL);
	assert_nothing_left();
}

Test(bench_kernel, swapfile_setup_then_teardown_leaves_nothing_behind, .timeout = 60)
{
	char file[PATH_MAX + 300];
	struct stat st;
	int ret;

	need(BENCH_ENGINE_KERNEL_SWAPFILE);
	make_dir();
	umask(022);	/* the file is 0600 whatever the umask lets through */
	ret = bench_kernel_setup(BENCH_ENGINE_KERNEL_SWAPFILE, 64 * MiB, 128 * MiB,
				 t.dir, &t.env, err, sizeof(err));
	cr_assert_eq(ret, 0, "%s", err);

	snprintf(file, sizeof(file), "%s", swap_file_in_dir());
	cr_assert_str_not_empty(file, "no swap file in %s", t.dir);
	cr_assert_eq(stat(file, &st), 0);
	cr_assert(S_ISREG(st.st_mode));
	cr_assert_eq(st.st_mode & 07777, 0600, "mode %o", st.st_mode & 07777);
	cr_assert_eq((uint64_t)st.st_size, 128 * MiB);
	cr_assert(swap_is_on(file), "%s is not in /proc/swaps", file);

	bench_kernel_teardown(t.env);
	cr_assert_neq(access(file, F_OK), 0, "%s is still there", file);
	assert_nothing_left();
}

Test(bench_kernel, teardown_moves_a_leftover_task_out_and_spares_it, .timeout = 60)
{
	char cg[4096];
	int status, ret;
	pid_t pid;

	need(BENCH_ENGINE_KERNEL_ZRAM);
	ret = bench_kernel_setup(BENCH_ENGINE_KERNEL_ZRAM, 64 * MiB, 64 * MiB, NULL,
				 &t.env, err, sizeof(err));
	cr_assert_eq(ret, 0, "%s", err);
	pid = fork();
	if (pid == 0) {
		die_with_parent(SIGKILL, getppid());
		for (;;)
			pause();
	}
	add_kid(pid);
	cr_assert_eq(bench_kernel_enter(t.env, pid), 0);

	bench_kernel_teardown(t.env);
	assert_nothing_left();
	cr_assert_eq(waitpid(pid, &status, WNOHANG), 0, "the task was killed");
	snprintf(cg, sizeof(cg), "/proc/%d/cgroup", (int)pid);
	read_sys(cg, cg, sizeof(cg));
	cr_assert_null(strstr(cg, "upager-bench"), "%s", cg);
}

/* ---- a task over its budget ---- */

Test(bench_kernel, zram_task_over_budget_is_swapped_and_reads_back, .timeout = 120)
{
	int ret;

	need(BENCH_ENGINE_KERNEL_ZRAM);
	ret = bench_kernel_setup(BENCH_ENGINE_KERNEL_ZRAM, 64 * MiB, 512 * MiB, NULL,
				 &t.env, err, sizeof(err));
	cr_assert_eq(ret, 0, "%s", err);
	over_budget_is_swapped(BENCH_ENGINE_KERNEL_ZRAM, 64 * MiB);
}

Test(bench_kernel, swapfile_task_over_budget_is_swapped_and_reads_back, .timeout = 240)
{
	int ret;

	need(BENCH_ENGINE_KERNEL_SWAPFILE);
	make_dir();
	ret = bench_kernel_setup(BENCH_ENGINE_KERNEL_SWAPFILE, 64 * MiB, 512 * MiB,
				 t.dir, &t.env, err, sizeof(err));
	cr_assert_eq(ret, 0, "%s", err);
	over_budget_is_swapped(BENCH_ENGINE_KERNEL_SWAPFILE, 64 * MiB);
}

/* ---- refusals ---- */

Test(bench_kernel, zram_setup_refuses_a_zram0_someone_configured, .timeout = 30)
{
	char alg_before[256], alg[256], dir[PATH_MAX + 64];
	int ret;

	need(BENCH_ENGINE_KERNEL_ZRAM);
	read_sys(ZRAM_SYS "/comp_algorithm", alg_before, sizeof(alg_before));
	t.zram_by_test = true;
	write_sys(ZRAM_SYS "/disksize", "33554432");
	cr_assert_eq(read_sys_u64(ZRAM_SYS "/disksize"), 32 * MiB);

	ret = bench_kernel_setup(BENCH_ENGINE_KERNEL_ZRAM, 64 * MiB, 256 * MiB, NULL,
				 &t.env, err, sizeof(err));
	cr_assert_eq(ret, -EBUSY, "%d: %s", ret, err);
	cr_assert_not_null(strstr(err, "zram0 is in use"), "%s", err);
	cr_assert_eq(read_sys_u64(ZRAM_SYS "/disksize"), 32 * MiB, "zram0 was touched");
	read_sys(ZRAM_SYS "/comp_algorithm", alg, sizeof(alg));
	cr_assert_str_eq(alg, alg_before);
	cr_assert_not(swap_is_on("/dev/zram0"));
	cg_dir_of(getpid(), dir, sizeof(dir));
	cr_assert_neq(access(dir, F_OK), 0, "%s was made", dir);
	assert_nothing_left();
}

Test(bench_kernel, swapfile_setup_refuses_while_other_swap_is_on, .timeout = 60)
{
	char cmd[PATH_MAX + 64], dir[PATH_MAX + 64];
	int fd, ret;

	need(BENCH_ENGINE_KERNEL_SWAPFILE);
	make_dir();
	snprintf(t.own_swap, sizeof(t.own_swap), "%s/other.swap", t.dir);
	fd = open(t.own_swap, O_WRONLY | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(fallocate(fd, 0, 0, 16 * MiB), 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "mkswap -q %s", t.own_swap);
	if (system(cmd) != 0)
		cr_skip_test("mkswap did not run");
	cr_assert_eq(swapon(t.own_swap, 0), 0, "%s", strerror(errno));

	ret = bench_kernel_setup(BENCH_ENGINE_KERNEL_SWAPFILE, 64 * MiB, 128 * MiB,
				 t.dir, &t.env, err, sizeof(err));
	cr_assert_eq(ret, -EBUSY, "%d: %s", ret, err);
	cr_assert_not_null(strstr(err, t.own_swap), "%s", err);
	cg_dir_of(getpid(), dir, sizeof(dir));
	cr_assert_neq(access(dir, F_OK), 0, "%s was made", dir);
	assert_nothing_left();
	cr_assert(swap_is_on(t.own_swap), "the other swap was turned off");
}

Test(bench_kernel, swapfile_setup_refuses_a_dir_without_room, .timeout = 30)
{
	int ret;

	need(BENCH_ENGINE_KERNEL_SWAPFILE);
	make_dir();
	cr_assert_eq(mount("tmpfs", t.dir, "tmpfs", 0, "size=16m,mode=0700"), 0,
		     "%s", strerror(errno));
	t.dir_mounted = true;
	ret = bench_kernel_setup(BENCH_ENGINE_KERNEL_SWAPFILE, 64 * MiB, 256 * MiB,
				 t.dir, &t.env, err, sizeof(err));
	cr_assert_eq(ret, -ENOSPC, "%d: %s", ret, err);
	/* Refused up front, not after filling the disk. */
	cr_assert_not_null(strstr(err, t.dir), "%s", err);
	cr_assert_not_null(strstr(err, "MiB free"), "%s", err);
	assert_nothing_left();
}

Test(bench_kernel, swapfile_setup_refuses_a_missing_dir, .timeout = 30)
{
	int ret;

	need(BENCH_ENGINE_KERNEL_SWAPFILE);
	ret = bench_kernel_setup(BENCH_ENGINE_KERNEL_SWAPFILE, 64 * MiB, 256 * MiB,
				 "/nonexistent/upager", &t.env, err, sizeof(err));
	cr_assert_eq(ret, -ENOENT, "%d: %s", ret, err);
	cr_assert_not_null(strstr(err, "/nonexistent/upager"), "%s", err);
	assert_nothing_left();
}

/* ---- other ways out ---- */

/*
 * Fork a child that sets up @e, says so on a pipe, then waits for a
 * signal (@sig 0: exits without teardown instead). Returns its pid once
 * it is set up.
 */
static pid_t set_up_in_child(enum bench_engine e, int sig)
{
	struct bench_kernel_env *env;
	pid_t pid, parent = getpid();
	char c = 'r';
	int fd[2];

	cr_assert_eq(pipe(fd), 0);
	pid = fork();
	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };

		die_with_parent(SIGTERM, parent);
		setrlimit(RLIMIT_CORE, &no_core);	/* SIGQUIT dumps core */
		if (bench_kernel_setup(e, 64 * MiB, 128 * MiB, t.dir[0] ? t.dir : NULL,
				       &env, err, sizeof(err))) {
			fprintf(stderr, "setup: %s\n", err);
			_exit(3);
		}
		if (write(fd[1], &c, 1) != 1)
			_exit(4);
		if (!sig)
			exit(0);
		for (;;)
			pause();
	}
	add_kid(pid);
	close(fd[1]);
	cr_assert_eq(read(fd[0], &c, 1), 1, "the set-up failed in the child");
	close(fd[0]);
	return pid;
}

static void dies_of(pid_t pid, int sig)
{
	int status;

	reap(pid, &status, 60);
	t.nr_kids = 0;
	cr_assert(WIFSIGNALED(status), "it exited with %d", WEXITSTATUS(status));
	cr_assert_eq(WTERMSIG(status), sig, "it died of %d", WTERMSIG(status));
}

Test(bench_kernel, sigterm_tears_down_and_the_process_still_dies_of_it, .timeout = 60)
{
	pid_t pid;

	need(BENCH_ENGINE_KERNEL_ZRAM);
	pid = set_up_in_child(BENCH_ENGINE_KERNEL_ZRAM, SIGTERM);
	cr_assert(swap_is_on("/dev/zram0"));
	kill(pid, SIGTERM);
	dies_of(pid, SIGTERM);
	assert_nothing_left();
}

/*
 * Ctrl-C while a task holds swapped pages in the cgroup: the handler kills
 * it (the run is over), so the cgroup can go and swapoff has nothing to
 * read back.
 */
Test(bench_kernel, sigint_kills_the_cgroups_tasks_and_tears_down, .timeout = 120)
{
	int go[2], ready[2], status;
	pid_t owner, task, parent = getpid();

	need(BENCH_ENGINE_KERNEL_ZRAM);
	/* The task outlives its parent; we reap it to see how it died. */
	cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	cr_assert_eq(pipe(ready), 0);
	owner = fork();
	if (owner == 0) {
		struct bench_kernel_env *env;

		die_with_parent(SIGTERM, parent);
		parent = getpid();
		if (pipe(go) ||
		    bench_kernel_setup(BENCH_ENGINE_KERNEL_ZRAM, 64 * MiB, 512 * MiB,
				       NULL, &env, err, sizeof(err)))
			_exit(3);
		task = fork();
		if (task == 0) {
			/* SIGUSR1: it outlived its owner, which did not kill it. */
			die_with_parent(SIGUSR1, parent);
			toucher(go[0], ready[1], 256 * MiB, true);
		}
		close(ready[1]);	/* EOF for the test if the task dies */
		if (task < 0 || bench_kernel_enter(env, task) ||
		    write(go[1], "g", 1) != 1)
			_exit(4);
		for (;;)
			pause();
	}
	add_kid(owner);
	close(ready[1]);
	cr_assert_eq(read(ready[0], &task, sizeof(task)), (ssize_t)sizeof(task),
		     "the task did not touch its memory");
	add_kid(task);
	cr_assert_gt(swap_used_kb("/dev/zram0"), 64 * 1024, "nothing is swapped");

	kill(owner, SIGINT);
	reap(owner, &status, 60);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT, "status %#x", status);
	reap(task, &status, 10);
	t.nr_kids = 0;
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status %#x", status);
	assert_nothing_left();
}

Test(bench_kernel, sighup_and_sigquit_tear_down_a_swapfile, .timeout = 120)
{
	static const int sigs[] = { SIGHUP, SIGQUIT };
	struct stat st;

	need(BENCH_ENGINE_KERNEL_SWAPFILE);
	make_dir();
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		pid_t pid = set_up_in_child(BENCH_ENGINE_KERNEL_SWAPFILE, sigs[i]);
		const char *file = swap_file_in_dir();

		cr_assert_eq(stat(file, &st), 0, "no swap file in %s", t.dir);
		cr_assert_eq(st.st_mode & 07777, 0600);
		cr_assert(swap_is_on(file));
		kill(pid, sigs[i]);
		dies_of(pid, sigs[i]);
		assert_nothing_left();
	}
}

Test(bench_kernel, exit_without_teardown_still_tears_down, .timeout = 60)
{
	int status;
	pid_t pid;

	need(BENCH_ENGINE_KERNEL_ZRAM);
	pid = set_up_in_child(BENCH_ENGINE_KERNEL_ZRAM, 0);
	reap(pid, &status, 60);
	t.nr_kids = 0;
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	assert_nothing_left();
}

/* A benchmark's child inherits the handlers and atexit: they must not fire. */
Test(bench_kernel, a_forked_copy_never_tears_down_its_parents_setup, .timeout = 60)
{
	char dir[PATH_MAX + 64];
	int status, ret;
	pid_t pid;

	need(BENCH_ENGINE_KERNEL_ZRAM);
	ret = bench_kernel_setup(BENCH_ENGINE_KERNEL_ZRAM, 64 * MiB, 128 * MiB, NULL,
				 &t.env, err, sizeof(err));
	cr_assert_eq(ret, 0, "%s", err);
	cg_dir_of(getpid(), dir, sizeof(dir));

	pid = fork();
	if (pid == 0) {
		bench_kernel_teardown(t.env);
		exit(0);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	pid = fork();
	if (pid == 0) {
		raise(SIGTERM);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "status %#x", status);

	cr_assert(swap_is_on("/dev/zram0"), "a child turned our swap off");
	cr_assert_eq(access(dir, F_OK), 0, "a child removed %s", dir);
	bench_kernel_teardown(t.env);
	assert_nothing_left();
}

/*
 * Every test here changes the same machine-wide state (zram0, the swap
 * list), so they run one at a time whatever --jobs says.
 */
/* Not hidden: boxfort finds main by name to start its workers. */
__attribute__((visibility("default"))) int main(int argc, char *argv[])
{
	struct criterion_test_set *tests = criterion_initialize();
	int ret = 0;

	if (criterion_handle_args(argc, argv, true)) {
		criterion_options.jobs = 1;
		ret = !criterion_run_all_tests(tests);
	}
	criterion_finalize(tests);
	return ret;
}
