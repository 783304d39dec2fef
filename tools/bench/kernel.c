/*
 * The kernel engines' set-up: a memory cgroup limited to the budget, and
 * zram (lz4) or a swap file behind it, exactly what a user would configure
 * instead of upager. It touches machine-wide state (a zram device, the swap
 * list, the cgroup tree), so it refuses anything another user has
 * configured and undoes all of it on every way out: the caller's
 * bench_kernel_teardown(), exit() (atexit) and SIGINT, SIGTERM, SIGHUP and
 * SIGQUIT (a handler that undoes, then dies of the signal as it would have).
 *
 * The handler may run at any point of a set-up or of another thread's
 * teardown, so undoing is written for that: every path it needs is built
 * at set-up, it makes only system calls (kill, swapoff, open/write/close on
 * sysfs, unlink, rmdir, nanosleep), and each step's flag is raised BEFORE
 * the step, because undoing a step that never happened fails harmlessly
 * (swapoff EINVAL, unlink/rmdir ENOENT) while a step done but not recorded
 * would be left behind.
 *
 * Signals are only taken over where their action is the default one (the
 * process would die with nothing undone): a caller with its own handler
 * must call bench_kernel_teardown() itself; one ignoring SIGHUP keeps it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <mntent.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/swap.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kernel.h"

#define ZRAM_SYS	"/sys/block/zram0"
#define ZRAM_DEV	"/dev/zram0"
#define CG_PREFIX	"upager-bench-"

/* Above any swap a distro sets up (those use -2.. or small positives). */
#define SWAP_PRIO	32767

/* mkswap's minimum; a smaller area is refused by swapon anyway. */
#define SWAP_MIN_PAGES	10

/* Room left on the file system besides the swap file. */
#define SWAP_DIR_SLACK	(64ull << 20)

/*
 * Retries of the steps that fail with EBUSY for a moment: rmdir just after
 * the last task left, zram's reset while udev's blkid still holds the
 * device open after a change event. 100 x 20 ms = 2 s. Killed tasks get
 * longer to exit: freeing GiBs of memory and swap takes a while.
 */
#define BUSY_TRIES	100
#define EXIT_TRIES	500
#define BUSY_WAIT_NS	(20 * 1000 * 1000L)

struct bench_kernel_env {
	struct bench_kernel_env *next;	/* env_list; never freed, see there */
	enum bench_engine engine;
	pid_t owner;			/* a fork()ed copy never undoes it */
	bool cg_v2;
	int swappiness;			/* the cgroup's (v1) or vm.swappiness */
	atomic_bool claimed;		/* a teardown has started ... */
	atomic_bool done;		/* ... and finished */
	/* What exists (or is about to): raised before each step. */
	atomic_bool has_cgroup, has_subtree, has_zram, has_file, has_swap;
	char cg_dir[PATH_MAX];
	char cg_procs[PATH_MAX];	/* cg_dir/cgroup.procs */
	char parent_procs[PATH_MAX];	/* where leftover tasks are moved */
	char subtree[PATH_MAX];		/* v2: the root's cgroup.subtree_control */
	char swap_path[PATH_MAX];	/* ZRAM_DEV or the swap file */
	char zram_alg[64];		/* comp_algorithm to restore after reset */
};

/*
 * Every env ever published, newest first, for the handlers. Envs are never
 * freed: teardown must stay idempotent on the caller's pointer, and a
 * handler may be walking the list; a few KiB per engine run is the price.
 */
static _Atomic(struct bench_kernel_env *) env_list;

static const int teardown_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
#define NR_TEARDOWN_SIGNALS	(sizeof(teardown_signals) / sizeof(int))

/* ---- async-signal-safe helpers (used by undo) ---- */

static void nap(void)
{
	struct timespec ts = { 0, BUSY_WAIT_NS };

	nanosleep(&ts, NULL);
}

static int write_str(const char *path, const char *s)
{
	size_t len = strlen(s);
	ssize_t n;
	int fd, ret = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, s, len);
	if (n < 0)
		ret = -errno;
	else if ((size_t)n != len)
		ret = -EIO;
	close(fd);
	return ret;
}

/* Decimal without stdio: for pids written to cgroup.procs. */
static void fmt_u64(char *buf, uint64_t v)
{
	char tmp[24];
	int n = 0;

	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (n)
		*buf++ = tmp[--n];
	*buf = '\0';
}

/*
 * One pass over the cgroup's processes: move each out to the parent, or
 * kill it when the run is over (exit, signal) and they are its workers.
 * We move ourselves out rather than kill. Returns how many were listed.
 */
static int evict_tasks(struct bench_kernel_env *env, bool kill_them)
{
	char buf[512], num[24];
	pid_t self = getpid();
	int fd, nr = 0;
	uint64_t pid = 0;
	bool in_num = false;
	ssize_t n;

	fd = open(env->cg_procs, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] >= '0' && buf[i] <= '9') {
				pid = pid * 10 + (uint64_t)(buf[i] - '0');
				in_num = true;
				continue;
			}
			if (!in_num)
				continue;
			nr++;
			if (kill_them && (pid_t)pid != self) {
				kill((pid_t)pid, SIGKILL);
			} else {
				fmt_u64(num, pid);
				write_str(env->parent_procs, num);
			}
			pid = 0;
			in_num = false;
		}
	}
	close(fd);
	return nr;
}

/*
 * The teardown proper, in reverse order of set-up. Tasks leave first: a
 * task left in the cgroup would pin it (rmdir EBUSY) and, during swapoff,
 * have its pages read back under the limit (an OOM kill); killed tasks
 * free their swap, which makes swapoff quick.
 */
static void undo_steps(struct bench_kernel_env *env, bool kill_tasks)
{
	if (atomic_load(&env->has_cgroup))
		for (int i = 0; i < EXIT_TRIES && evict_tasks(env, kill_tasks); i++)
			nap();
	if (atomic_exchange(&env->has_swap, false))
		swapoff(env->swap_path);	/* EINVAL if never on */
	if (atomic_exchange(&env->has_zram, false)) {
		for (int i = 0; i < BUSY_TRIES; i++) {
			if (write_str(ZRAM_SYS "/reset", "1") != -EBUSY)
				break;
			nap();
		}
		if (env->zram_alg[0])
			write_str(ZRAM_SYS "/comp_algorithm", env->zram_alg);
	}
	if (atomic_exchange(&env->has_file, false))
		unlink(env->swap_path);
	if (atomic_exchange(&env->has_cgroup, false)) {
		for (int i = 0; i < BUSY_TRIES; i++) {
			if (rmdir(env->cg_dir) == 0 || errno != EBUSY)
				break;
			nap();
		}
	}
	/* Fails with EBUSY when another cgroup uses it meanwhile: then keep it. */
	if (atomic_exchange(&env->has_subtree, false))
		write_str(env->subtree, "-memory");
}

/*
 * Exactly one caller undoes an env; one that finds another thread at it
 * waits until it is done. A handler must: dying in the middle would abort
 * that thread's swapoff (a fatal signal interrupts it) and leave swap on.
 */
static void undo(struct bench_kernel_env *env, bool kill_tasks)
{
	if (env->owner != getpid())
		return;
	if (atomic_exchange(&env->claimed, true)) {
		while (!atomic_load(&env->done))
			nap();
		return;
	}
	undo_steps(env, kill_tasks);
	atomic_store(&env->done, true);
}

static void undo_all(bool kill_tasks)
{
	for (struct bench_kernel_env *e = atomic_load(&env_list); e; e = e->next)
		undo(e, kill_tasks);
}

static void on_signal(int sig)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	int saved = errno;

	undo_all(true);
	/* Die of it as we would have: delivered once this handler returns. */
	sigaction(sig, &dfl, NULL);
	raise(sig);
	errno = saved;
}

/* ---- the rest runs in normal context ---- */

/*
 * Undo in normal context with our signals blocked in this thread: a
 * handler run here would wait for this very undo to finish, forever.
 */
static void teardown_sigset(sigset_t *set)
{
	sigemptyset(set);
	for (size_t i = 0; i < NR_TEARDOWN_SIGNALS; i++)
		sigaddset(set, teardown_signals[i]);
}

static void undo_blocked(struct bench_kernel_env *env, bool kill_tasks)
{
	sigset_t block, old;

	teardown_sigset(&block);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	if (env)
		undo(env, kill_tasks);
	else
		undo_all(kill_tasks);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* At exit the run is over: tasks still in the cgroup are its workers. */
static void on_exit_undo(void)
{
	undo_blocked(NULL, true);
}

static void install_handlers(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct sigaction old;

	/* One handler at a time: a second signal waits for the first undo. */
	teardown_sigset(&sa.sa_mask);
	for (size_t i = 0; i < NR_TEARDOWN_SIGNALS; i++) {
		int sig = teardown_signals[i];

		if (sigaction(sig, NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) &&
		    old.sa_handler == SIG_DFL)
			sigaction(sig, &sa, NULL);
	}
	atexit(on_exit_undo);
}

static void publish(struct bench_kernel_env *env)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct bench_kernel_env *head = atomic_load(&env_list);

	pthread_once(&once, install_handlers);
	do
		env->next = head;
	while (!atomic_compare_exchange_weak(&env_list, &head, env));
}

static int read_text(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int read_u64(const char *path, uint64_t *v)
{
	char buf[64], *end;
	int ret = read_text(path, buf, sizeof(buf));

	if (ret)
		return ret;
	errno = 0;
	*v = strtoull(buf, &end, 10);
	return errno || end == buf ? -EINVAL : 0;
}

static bool has_word(const char *list, const char *word)
{
	size_t len = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += len)
		if ((p == list || p[-1] == ' ' || p[-1] == '[') &&
		    (p[len] == '\0' || strchr(" \n]", p[len])))
			return true;
	return false;
}

static bool path_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static int path_join(char *dst, const char *dir, const char *name)
{
	int n = snprintf(dst, PATH_MAX, "%s/%s", dir, name);

	return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/*
 * The memory controller's hierarchy: a v1 mount with the "memory" option,
 * or a cgroup2 mount whose root offers "memory" (on a hybrid system the
 * controller sits on v1 and the v2 mount lists none).
 */
static int find_memcg(char *root, bool *v2)
{
	char ctrl[PATH_MAX], list[512];
	struct mntent *m;
	FILE *f;
	int ret = -ENOENT;

	f = setmntent("/proc/mounts", "re");
	if (!f)
		return -errno;
	while (ret && (m = getmntent(f))) {
		if (!strcmp(m->mnt_type, "cgroup") && hasmntopt(m, "memory")) {
			*v2 = false;
		} else if (!strcmp(m->mnt_type, "cgroup2")) {
			if (path_join(ctrl, m->mnt_dir, "cgroup.controllers") ||
			    read_text(ctrl, list, sizeof(list)) || !has_word(list, "memory"))
				continue;
			*v2 = true;
		} else {
			continue;
		}
		if (strlen(m->mnt_dir) < PATH_MAX - 64) {
			strcpy(root, m->mnt_dir);
			ret = 0;
		}
	}
	endmntent(f);
	return ret;
}

static void modprobe_zram(void)
{
	char *argv[] = { "modprobe", "-q", "zram", NULL };
	extern char **environ;
	pid_t pid;
	int status;

	/* Missing modprobe or module: the check below says what is missing. */
	if (posix_spawnp(&pid, "modprobe", NULL, NULL, argv, environ) == 0)
		waitpid(pid, &status, 0);
}

static bool is_kernel_engine(enum bench_engine e)
{
	return e == BENCH_ENGINE_KERNEL_ZRAM || e == BENCH_ENGINE_KERNEL_SWAPFILE;
}

int bench_kernel_check(enum bench_engine e, char *err, size_t err_len)
{
	static atomic_bool modprobe_tried;
	char root[PATH_MAX], algs[256];
	bool v2;

	if (!is_kernel_engine(e)) {
		snprintf(err, err_len, "not a kernel engine: it needs no set-up");
		return -EINVAL;
	}
	if (geteuid() != 0) {
		snprintf(err, err_len,
			 "needs root: the kernel engines set up a memory cgroup and swap");
		return -EPERM;
	}
	if (find_memcg(root, &v2)) {
		snprintf(err, err_len, "no memory cgroup controller: no cgroup v1 "
			 "hierarchy with \"memory\" and no cgroup2 one offering it "
			 "in /proc/mounts");
		return -ENOENT;
	}
	if (e != BENCH_ENGINE_KERNEL_ZRAM)
		return 0;
	if (!path_exists(ZRAM_SYS) && !path_exists("/sys/module/zram") &&
	    !atomic_exchange(&modprobe_tried, true))
		modprobe_zram();
	if (!path_exists(ZRAM_SYS)) {
		snprintf(err, err_len, "no " ZRAM_SYS ": the zram module is not "
			 "loaded (modprobe zram)");
		return -ENOENT;
	}
	if (read_text(ZRAM_SYS "/comp_algorithm", algs, sizeof(algs)) ||
	    !has_word(algs, "lz4")) {
		snprintf(err, err_len, "zram0 does not offer lz4 (comp_algorithm)");
		return -ENOENT;
	}
	return 0;
}

/*
 * Our entry in /proc/swaps: the kernel prints the path with ' ', '\t',
 * '\n' and '\\' as octal escapes. Returns the Used column in bytes, or
 * -ENOENT. With @path NULL, -ENOENT means the swap list is empty and
 * @first gets the first entry's name.
 */
static int64_t swaps_used(const char *path, char *first, size_t first_len)
{
	char line[PATH_MAX + 128], want[PATH_MAX * 4];
	char *w = want;
	int64_t ret = -ENOENT;
	FILE *f;

	for (const char *p = path ? path : ""; *p && w < want + sizeof(want) - 5; p++) {
		if (strchr(" \t\n\\", *p))
			w += sprintf(w, "\\%03o", (unsigned char)*p);
		else
			*w++ = *p;
	}
	*w = '\0';
	f = fopen("/proc/swaps", "re");
	if (!f)
		return -errno;
	if (!fgets(line, sizeof(line), f))	/* the header */
		goto out;
	while (fgets(line, sizeof(line), f)) {
		char name[sizeof(line)], type[32];
		uint64_t size_kb, used_kb;

		if (sscanf(line, "%s %31s %" SCNu64 " %" SCNu64, name, type,
			   &size_kb, &used_kb) != 4)
			continue;
		if (!path) {
			size_t n = strnlen(name, first_len - 1);

			memcpy(first, name, n);
			first[n] = '\0';
			ret = 1;
			break;
		}
		if (!strcmp(name, want)) {
			ret = (int64_t)(used_kb * 1024);
			break;
		}
	}
out:
	fclose(f);
	return ret;
}

/* Refuse a zram0 someone else configured: we would reset it at the end. */
static int zram_check_free(char *err, size_t err_len)
{
	uint64_t disksize;
	int ret;

	ret = read_u64(ZRAM_SYS "/disksize", &disksize);
	if (ret) {
		snprintf(err, err_len, "%s/disksize: %s", ZRAM_SYS, strerror(-ret));
		return ret;
	}
	if (disksize) {
		snprintf(err, err_len, "zram0 is in use: its disksize is %" PRIu64
			 " (configured by someone else; reset it first)", disksize);
		return -EBUSY;
	}
	if (swaps_used(ZRAM_DEV, NULL, 0) >= 0) {
		snprintf(err, err_len, "zram0 is in use: it is swap (/proc/swaps)");
		return -EBUSY;
	}
	return 0;
}

/*
 * The swap file must be the only swap: with another one on, the kernel
 * spreads pages over both and the engine measures neither.
 */
static int swapfile_check(const char *dir, uint64_t swap_size,
			  char *err, size_t err_len)
{
	struct statvfs vfs;
	char other[PATH_MAX];
	uint64_t avail;

	if (swaps_used(NULL, other, sizeof(other)) > 0) {
		snprintf(err, err_len, "swap is already on (%s): the kernel would "
			 "spread pages over it too; swapoff it for this engine", other);
		return -EBUSY;
	}
	if (statvfs(dir, &vfs)) {
		snprintf(err, err_len, "swap dir %s: %s", dir, strerror(errno));
		return -errno;
	}
	avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	if (avail < swap_size + SWAP_DIR_SLACK) {
		snprintf(err, err_len, "swap dir %s: %" PRIu64 " MiB free, the swap "
			 "file needs %" PRIu64 " MiB and %llu MiB to spare", dir,
			 avail >> 20, swap_size >> 20, SWAP_DIR_SLACK >> 20);
		return -ENOSPC;
	}
	return 0;
}

static int env_paths(struct bench_kernel_env *env, const char *root,
		     const char *swap_dir)
{
	char name[64], dir[PATH_MAX];

	snprintf(name, sizeof(name), CG_PREFIX "%d", (int)env->owner);
	if (path_join(env->cg_dir, root, name) ||
	    path_join(env->cg_procs, env->cg_dir, "cgroup.procs") ||
	    path_join(env->parent_procs, root, "cgroup.procs") ||
	    path_join(env->subtree, root, "cgroup.subtree_control"))
		return -ENAMETOOLONG;
	if (env->engine == BENCH_ENGINE_KERNEL_ZRAM) {
		strcpy(env->swap_path, ZRAM_DEV);
		return 0;
	}
	/* Absolute and free of symlinks: /proc/swaps names it that way. */
	if (!realpath(swap_dir, dir))
		return -errno;
	snprintf(name, sizeof(name), CG_PREFIX "%d.swap", (int)env->owner);
	return path_join(env->swap_path, dir, name);
}

static int cg_write(struct bench_kernel_env *env, const char *file,
		    const char *val, char *err, size_t err_len)
{
	char path[PATH_MAX];
	int ret = path_join(path, env->cg_dir, file);

	if (!ret)
		ret = write_str(path, val);
	if (ret)
		snprintf(err, err_len, "%s = %s: %s", path, val, strerror(-ret));
	return ret;
}

static int cg_make_dir(struct bench_kernel_env *env, char *err, size_t err_len)
{
	atomic_store(&env->has_cgroup, true);
	if (mkdir(env->cg_dir, 0755) == 0)
		return 0;
	/* A leftover of a dead process that had our pid: empty, take it over. */
	if (errno == EEXIST && rmdir(env->cg_dir) == 0 && mkdir(env->cg_dir, 0755) == 0)
		return 0;
	if (errno == EEXIST || errno == EBUSY)
		atomic_store(&env->has_cgroup, false);	/* not ours */
	snprintf(err, err_len, "mkdir %s: %s", env->cg_dir, strerror(errno));
	return -errno;
}

static int cg_setup_v1(struct bench_kernel_env *env, const char *budget,
		       char *err, size_t err_len)
{
	char path[PATH_MAX];
	uint64_t v;

	if (!path_join(path, env->cg_dir, "memory.swappiness") && !read_u64(path, &v))
		env->swappiness = (int)v;
	return cg_write(env, "memory.limit_in_bytes", budget, err, err_len);
}

static int cg_setup_v2(struct bench_kernel_env *env, const char *budget,
		       char *err, size_t err_len)
{
	char path[PATH_MAX];
	uint64_t v;
	int ret;

	if (!read_u64("/proc/sys/vm/swappiness", &v))
		env->swappiness = (int)v;
	ret = cg_write(env, "memory.max", budget, err, err_len);
	if (ret)
		return ret;
	/* Absent without swap accounting: then swap is not limited anyway. */
	if (!path_join(path, env->cg_dir, "memory.swap.max") && path_exists(path)) {
		ret = cg_write(env, "memory.swap.max", "max", err, err_len);
		if (ret)
			return ret;
	}
	/* zswap in front of zram would compress twice and measure neither. */
	if (env->engine == BENCH_ENGINE_KERNEL_ZRAM &&
	    !path_join(path, env->cg_dir, "memory.zswap.max") && path_exists(path))
		return cg_write(env, "memory.zswap.max", "0", err, err_len);
	return 0;
}

static int cg_setup(struct bench_kernel_env *env, uint64_t budget,
		    char *err, size_t err_len)
{
	char val[32], list[512];
	int ret;

	/* v2: a child gets memory.* files only if its parent hands memory down. */
	if (env->cg_v2 && !read_text(env->subtree, list, sizeof(list)) &&
	    !has_word(list, "memory")) {
		atomic_store(&env->has_subtree, true);
		ret = write_str(env->subtree, "+memory");
		if (ret) {
			atomic_store(&env->has_subtree, false);
			snprintf(err, err_len, "%s = +memory: %s", env->subtree,
				 strerror(-ret));
			return ret;
		}
	}
	ret = cg_make_dir(env, err, err_len);
	if (ret)
		return ret;
	snprintf(val, sizeof(val), "%" PRIu64, budget);
	return env->cg_v2 ? cg_setup_v2(env, val, err, err_len)
			  : cg_setup_v1(env, val, err, err_len);
}

int bench_kernel_set_limit(struct bench_kernel_env *env, uint64_t bytes)
{
	char val[32], err[256];
	int ret = -EBUSY;

	if (bytes == UINT64_MAX)
		snprintf(val, sizeof(val), "%s", env->cg_v2 ? "max" : "-1");
	else
		snprintf(val, sizeof(val), "%" PRIu64, bytes);
	/*
	 * Lowering the limit reclaims down to it in this write; v1 gives up
	 * with EBUSY after a few rounds when reclaim falls behind: go on.
	 */
	for (int i = 0; i < 20 && ret == -EBUSY; i++)
		ret = cg_write(env, env->cg_v2 ? "memory.max" : "memory.limit_in_bytes",
			       val, err, sizeof(err));
	return ret;
}

/*
 * A v1 swap header (what mkswap writes, less the UUID): the kernel checks
 * the magic at the end of the first page, the version and last_page.
 */
static int write_swap_header(int fd, uint64_t size, char *err, size_t err_len)
{
	long page = sysconf(_SC_PAGESIZE);
	uint32_t version = 1, last_page = (uint32_t)(size / (uint64_t)page - 1);
	ssize_t n;
	char *hdr;
	int ret;

	hdr = calloc(1, (size_t)page);
	if (!hdr)
		return -ENOMEM;
	memcpy(hdr + 1024, &version, sizeof(version));
	memcpy(hdr + 1028, &last_page, sizeof(last_page));
	memcpy(hdr + 1052, "upager-bench", 12);		/* volume label */
	memcpy(hdr + page - 10, "SWAPSPACE2", 10);
	n = pwrite(fd, hdr, (size_t)page, 0);
	ret = n < 0 ? -errno : n != page ? -EIO : fsync(fd) ? -errno : 0;
	if (ret)
		snprintf(err, err_len, "writing the swap header: %s", strerror(-ret));
	free(hdr);
	return ret;
}

static int swap_on(struct bench_kernel_env *env, char *err, size_t err_len)
{
	int flags = SWAP_FLAG_PREFER |
		    ((SWAP_PRIO << SWAP_FLAG_PRIO_SHIFT) & SWAP_FLAG_PRIO_MASK);

	atomic_store(&env->has_swap, true);
	if (swapon(env->swap_path, flags) == 0)
		return 0;
	snprintf(err, err_len, "swapon %s: %s%s", env->swap_path, strerror(errno),
		 errno == EINVAL ? " (tmpfs and copy-on-write file systems cannot "
		 "hold a swap file)" : "");
	return -errno;
}

static int zram_setup(struct bench_kernel_env *env, uint64_t swap_size,
		      char *err, size_t err_len)
{
	char algs[256], val[32], *l, *r;
	int fd, ret;

	if (!read_text(ZRAM_SYS "/comp_algorithm", algs, sizeof(algs)) &&
	    (l = strchr(algs, '[')) && (r = strchr(l, ']')) &&
	    (size_t)(r - l) < sizeof(env->zram_alg))
		memcpy(env->zram_alg, l + 1, (size_t)(r - l - 1));
	atomic_store(&env->has_zram, true);
	ret = write_str(ZRAM_SYS "/comp_algorithm", "lz4");
	if (ret == -EBUSY)
		goto lost_race;
	if (ret) {
		snprintf(err, err_len, "zram0 comp_algorithm = lz4: %s", strerror(-ret));
		return ret;
	}
	snprintf(val, sizeof(val), "%" PRIu64, swap_size);
	ret = write_str(ZRAM_SYS "/disksize", val);
	if (ret == -EBUSY)
		goto lost_race;
	if (ret) {
		snprintf(err, err_len, "zram0 disksize = %s: %s", val, strerror(-ret));
		return ret;
	}
	/* O_EXCL on a block device: fails if anything holds it. */
	fd = open(ZRAM_DEV, O_WRONLY | O_EXCL | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, err_len, "open %s: %s", ZRAM_DEV, strerror(errno));
		return -errno;
	}
	ret = write_swap_header(fd, swap_size, err, err_len);
	close(fd);
	return ret ? ret : swap_on(env, err, err_len);

lost_race:
	/* Configured by someone else since zram_check_free(): not ours to reset. */
	atomic_store(&env->has_zram, false);
	snprintf(err, err_len, "zram0 is in use: configured by someone else "
		 "while we set up");
	return -EBUSY;
}

/* Blocks for the file: fallocate, or zeros where it is not supported. */
static int file_fill(int fd, uint64_t size)
{
	static const char zeros[1 << 16];

	if (fallocate(fd, 0, 0, (off_t)size) == 0)
		return 0;
	if (errno != EOPNOTSUPP)
		return -errno;
	for (uint64_t off = 0; off < size; ) {
		size_t len = size - off < sizeof(zeros) ? size - off : sizeof(zeros);
		ssize_t n = pwrite(fd, zeros, len, (off_t)off);

		if (n < 0)
			return -errno;
		off += (uint64_t)n;
	}
	return 0;
}

static int swapfile_setup(struct bench_kernel_env *env, uint64_t swap_size,
			  char *err, size_t err_len)
{
	int fd, ret;

	atomic_store(&env->has_file, true);
	fd = open(env->swap_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		if (ret == -EEXIST)
			atomic_store(&env->has_file, false);	/* not ours */
		snprintf(err, err_len, "create %s: %s", env->swap_path, strerror(-ret));
		return ret;
	}
	/* Whatever the umask: swapon warns about (and others could read) more. */
	ret = fchmod(fd, 0600) ? -errno : file_fill(fd, swap_size);
	if (ret)
		snprintf(err, err_len, "allocating %s: %s", env->swap_path,
			 strerror(-ret));
	else
		ret = write_swap_header(fd, swap_size, err, err_len);
	close(fd);
	return ret ? ret : swap_on(env, err, err_len);
}

static int env_create(enum bench_engine e, uint64_t swap_size, const char *swap_dir,
		      struct bench_kernel_env **out, char *err, size_t err_len)
{
	struct bench_kernel_env *env;
	char root[PATH_MAX];
	int ret;

	env = calloc(1, sizeof(*env));
	if (!env)
		return -ENOMEM;
	env->engine = e;
	env->owner = getpid();
	env->swappiness = -1;
	ret = find_memcg(root, &env->cg_v2);
	if (ret) {
		snprintf(err, err_len, "no memory cgroup: %s", strerror(-ret));
		goto err_free;
	}
	ret = env_paths(env, root, swap_dir);
	if (ret) {
		snprintf(err, err_len, "swap dir %s: %s", swap_dir, strerror(-ret));
		goto err_free;
	}
	ret = e == BENCH_ENGINE_KERNEL_ZRAM ? zram_check_free(err, err_len)
		: swapfile_check(swap_dir, swap_size, err, err_len);
	if (ret)
		goto err_free;
	*out = env;
	return 0;

err_free:
	free(env);
	return ret;
}

int bench_kernel_setup(enum bench_engine e, uint64_t budget, uint64_t swap_size,
		       const char *swap_dir, struct bench_kernel_env **out,
		       char *err, size_t err_len)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	struct bench_kernel_env *env;
	int ret;

	ret = bench_kernel_check(e, err, err_len);
	if (ret)
		return ret;
	swap_size -= swap_size % page;
	if (budget < page || swap_size < SWAP_MIN_PAGES * page ||
	    swap_size / page > UINT32_MAX) {
		snprintf(err, err_len, "budget %" PRIu64 " / swap %" PRIu64 ": need at "
			 "least a page / %d pages, at most 2^32 pages of swap",
			 budget, swap_size, SWAP_MIN_PAGES);
		return -EINVAL;
	}
	ret = env_create(e, swap_size, swap_dir ? swap_dir : "/var/tmp", &env,
			 err, err_len);
	if (ret)
		return ret;
	/* From here on the handlers know it: each step is undone on any exit. */
	publish(env);
	ret = cg_setup(env, budget, err, err_len);
	if (!ret)
		ret = e == BENCH_ENGINE_KERNEL_ZRAM ? zram_setup(env, swap_size, err, err_len)
			: swapfile_setup(env, swap_size, err, err_len);
	if (ret) {
		bench_kernel_teardown(env);
		return ret;
	}
	*out = env;
	return 0;
}

int bench_kernel_enter(struct bench_kernel_env *env, pid_t pid)
{
	char num[24];

	fmt_u64(num, (uint64_t)pid);
	return write_str(env->cg_procs, num);
}

static int zram_usage(struct bench_kernel_usage *u)
{
	char buf[256];
	uint64_t f[5];
	int ret = read_text(ZRAM_SYS "/mm_stat", buf, sizeof(buf));

	if (ret)
		return ret;
	/* orig_data_size compr_data_size mem_used_total mem_limit mem_used_max */
	if (sscanf(buf, "%" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64,
		   &f[0], &f[1], &f[2], &f[3], &f[4]) != 5)
		return -EINVAL;
	u->zram_orig_bytes = f[0];
	u->zram_compr_bytes = f[1];
	u->zram_mem_bytes = f[2];
	u->zram_mem_peak = f[4];
	return 0;
}

int bench_kernel_usage(struct bench_kernel_env *env, struct bench_kernel_usage *u)
{
	char path[PATH_MAX];
	int64_t used;
	int ret;

	memset(u, 0, sizeof(*u));
	ret = path_join(path, env->cg_dir, env->cg_v2 ? "memory.current" :
			"memory.usage_in_bytes");
	if (!ret)
		ret = read_u64(path, &u->cgroup_bytes);
	if (ret)
		return ret;
	/* v2 memory.peak is 5.19+; without it the peak stays 0 (unknown). */
	if (!path_join(path, env->cg_dir, env->cg_v2 ? "memory.peak" :
		       "memory.max_usage_in_bytes"))
		read_u64(path, &u->cgroup_peak);
	if (env->engine == BENCH_ENGINE_KERNEL_ZRAM) {
		ret = zram_usage(u);
		if (ret)
			return ret;
	}
	used = swaps_used(env->swap_path, NULL, 0);
	if (used > 0)
		u->swap_used_bytes = (uint64_t)used;
	return 0;
}

/*
 * The caller reaps its children first; any task still in the cgroup is
 * moved out, not killed: the caller owns it.
 */
void bench_kernel_teardown(struct bench_kernel_env *env)
{
	if (env)
		undo_blocked(env, false);
}
