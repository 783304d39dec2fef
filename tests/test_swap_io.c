/*
 * The swap store's I/O (lib/swap/io.c), on files in a fresh directory
 * under /tmp: pages written one slot or several at a time come back byte
 * for byte, with O_DIRECT, buffered, and from registered buffers; no name
 * is ever visible in the directory and nothing is left once the owner is
 * SIGKILLed; paths it must refuse give their exact errno; the store grows
 * up to its capacity; and failures (injected, a short read, a full queue)
 * come back where the caller looks for them. Devices and a full
 * filesystem need root: test_swap_device.c.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "log.h"
#include "swap/io.h"

#define SLOT		4096u
#define MiB		(1ull << 20)
#define NR_SLOTS	512u	/* single-slot writes in a round trip */
#define RUN		8u	/* slots in a multi-slot write */
#define NR_RUNS		32u

static char dir[64];

static void dir_make(void)
{
	strcpy(dir, "/tmp/upg-swap-io-XXXXXX");
	cr_assert(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

/* Names in the directory; leftovers are removed so none outlives a test. */
static int dir_clear(const char *d)
{
	char path[512];
	struct dirent *e;
	DIR *dp = opendir(d);
	int n = 0;

	if (!dp)
		return -1;
	while ((e = readdir(dp))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", d, e->d_name);
		unlink(path);
		n++;
	}
	closedir(dp);
	return n;
}

static int dir_entries(const char *d)
{
	struct dirent *e;
	DIR *dp = opendir(d);
	int n = 0;

	cr_assert(dp, "opendir %s: %s", d, strerror(errno));
	while ((e = readdir(dp)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(dp);
	return n;
}

static void dir_remove(void)
{
	if (dir[0]) {
		dir_clear(dir);
		rmdir(dir);
	}
}

TestSuite(swap_io, .init = dir_make, .fini = dir_remove, .timeout = 60);

static struct upg_swap_io *io_open(struct upg_swap_io_config *cfg)
{
	struct upg_swap_io *io = NULL;
	int ret;

	if (!cfg->path)
		cfg->path = dir;
	ret = upg_swap_io_open(cfg, &io);
	cr_assert_eq(ret, 0, "open %s: %s", cfg->path, strerror(-ret));
	cr_assert(io);
	return io;
}

static struct upg_swap_io *io_open_in_dir(uint64_t max_bytes, bool no_direct)
{
	struct upg_swap_io_config cfg = { .max_bytes = max_bytes,
		.no_direct = no_direct };

	return io_open(&cfg);
}

static void *page_alloc(size_t len)
{
	void *p = aligned_alloc(SLOT, len);

	cr_assert(p);
	return p;
}

/* Fill @len bytes at store offset @off with a pattern of @seed. */
static void fill(char *buf, uint64_t off, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i += SLOT)
		t_page_fill(buf + i, (off + i) / SLOT, seed);
}

static void check(const char *buf, uint64_t off, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i += SLOT)
		cr_assert(t_page_check(buf + i, (off + i) / SLOT, seed),
			     "slot %llu differs",
			     (unsigned long long)(off + i) / SLOT);
}

/* Queue slot @slot of @buf to slot @slot of the store. */
static void queue_slot(struct upg_swap_io *io, const char *buf,
		       unsigned int slot, uint64_t tag)
{
	int ret = upg_swap_io_write(io, slot * SLOT, buf + slot * SLOT, SLOT, tag);

	cr_assert_eq(ret, 0, "write: %s", strerror(-ret));
}

/* Wait for every pending write; each must complete with 0 and once. */
static void wait_all_ok(struct upg_swap_io *io, unsigned int nr_tags)
{
	struct upg_swap_io_done done[64];
	bool *seen = calloc(nr_tags, sizeof(*seen));
	unsigned int got = 0;

	cr_assert(seen);
	while (upg_swap_io_pending(io)) {
		int n = upg_swap_io_wait(io, done, 64, 1);

		cr_assert_gt(n, 0, "wait: %d", n);
		for (int i = 0; i < n; i++) {
			cr_assert_lt(done[i].tag, nr_tags);
			cr_assert_eq(done[i].res, 0, "tag %llu: %s",
				     (unsigned long long)done[i].tag,
				     strerror(-done[i].res));
			cr_assert_not(seen[done[i].tag], "tag %llu twice",
				      (unsigned long long)done[i].tag);
			seen[done[i].tag] = true;
			got++;
		}
	}
	cr_assert_eq(got, nr_tags);
	free(seen);
}

/* Queue a write, reaping completions while the queue is full. */
static void write_or_reap(struct upg_swap_io *io, uint64_t off, const void *buf,
			  size_t len, uint64_t tag, bool *seen)
{
	struct upg_swap_io_done done[64];
	int ret;

	while ((ret = upg_swap_io_write(io, off, buf, len, tag)) == -EBUSY) {
		int n = upg_swap_io_wait(io, done, 64, 1);

		cr_assert_gt(n, 0);
		for (int i = 0; i < n; i++) {
			cr_assert_eq(done[i].res, 0, "tag %llu: %s",
				     (unsigned long long)done[i].tag,
				     strerror(-done[i].res));
			cr_assert_not(seen[done[i].tag]);
			seen[done[i].tag] = true;
		}
	}
	cr_assert_eq(ret, 0, "write: %s", strerror(-ret));
}

/*
 * NR_SLOTS single-slot writes, then NR_RUNS writes of RUN slots after
 * them, all from @src (registered or not), read back one slot at a time
 * and a run at a time.
 */
static void round_trip(struct upg_swap_io *io, char *src)
{
	uint64_t runs_at = NR_SLOTS * SLOT, total = runs_at + NR_RUNS * RUN * SLOT;
	unsigned int nr_tags = NR_SLOTS + NR_RUNS;
	bool *seen = calloc(nr_tags, sizeof(*seen));
	struct upg_swap_io_done done[64];
	char *got = page_alloc(RUN * SLOT);
	int n;

	cr_assert(seen);
	cr_assert_eq(upg_swap_io_grow(io, total), 0);
	fill(src, 0, total, 7);
	for (unsigned int i = 0; i < NR_SLOTS; i++)
		write_or_reap(io, i * SLOT, src + i * SLOT, SLOT, i, seen);
	for (unsigned int i = 0; i < NR_RUNS; i++) {
		uint64_t off = runs_at + i * RUN * SLOT;

		write_or_reap(io, off, src + off, RUN * SLOT, NR_SLOTS + i, seen);
	}
	while (upg_swap_io_pending(io)) {
		n = upg_swap_io_wait(io, done, 64, 1);
		cr_assert_gt(n, 0);
		for (int i = 0; i < n; i++) {
			cr_assert_eq(done[i].res, 0);
			cr_assert_not(seen[done[i].tag]);
			seen[done[i].tag] = true;
		}
	}
	for (unsigned int i = 0; i < nr_tags; i++)
		cr_assert(seen[i], "tag %u never completed", i);
	for (uint64_t off = 0; off < total; off += SLOT) {
		memset(got, 0, SLOT);
		cr_assert_eq(upg_swap_io_read(io, off, got, SLOT), 0);
		check(got, off, SLOT, 7);
	}
	/* Runs read whole, and across the single slots and the runs. */
	for (uint64_t off = runs_at - 2 * SLOT; off + RUN * SLOT <= total;
	     off += RUN * SLOT) {
		memset(got, 0, RUN * SLOT);
		cr_assert_eq(upg_swap_io_read(io, off, got, RUN * SLOT), 0);
		check(got, off, RUN * SLOT, 7);
	}
	free(got);
	free(seen);
}

static size_t round_trip_len(void)
{
	return (NR_SLOTS + NR_RUNS * RUN) * SLOT;
}

static bool fd_is_direct(struct upg_swap_io *io)
{
	return fcntl(upg_swap_io_test_fd(io), F_GETFL) & O_DIRECT;
}

Test(swap_io, pages_come_back_with_o_direct)
{
	struct upg_swap_io *io = io_open_in_dir(256 * MiB, false);
	char *src = page_alloc(round_trip_len());

	if (!upg_swap_io_is_direct(io))
		cr_skip_test("the filesystem of /tmp refuses O_DIRECT");
	cr_assert(fd_is_direct(io));
	cr_assert_not(upg_swap_io_is_device(io));
	round_trip(io, src);
	free(src);
	upg_swap_io_close(io);
}

Test(swap_io, pages_come_back_buffered_and_it_says_so)
{
	struct upg_swap_io *io;
	char *src = page_alloc(round_trip_len());

	t_log_capture();
	upg_log_set_level(UPG_LOG_INFO);
	io = io_open_in_dir(256 * MiB, true);
	cr_assert_not(upg_swap_io_is_direct(io));
	cr_assert_not(fd_is_direct(io));
	cr_assert(t_log_contains("buffered I/O"));
	cr_assert(t_log_contains("fdatasync"));
	round_trip(io, src);
	free(src);
	upg_swap_io_close(io);
}

/*
 * cachestat(2), Linux 6.5; Debian 12's headers predate it. The number is
 * the same on every architecture.
 */
#define NR_CACHESTAT	451
struct cstat_range {
	uint64_t off, len;
};
struct cstat {
	uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted,
		 nr_recently_evicted;
};

/*
 * Buffered, a write is done only once fdatasync has cleaned its pages:
 * without it they would stay dirty for dirty_expire_centisecs (30 s).
 */
Test(swap_io, buffered_write_is_clean_on_disk_when_done)
{
	struct upg_swap_io *io = io_open_in_dir(64 * MiB, true);
	struct cstat_range range = { 0, 64 * SLOT };
	char *buf = page_alloc(64 * SLOT);
	struct statfs sf;
	struct cstat cs;

	cr_assert_eq(fstatfs(upg_swap_io_test_fd(io), &sf), 0);
	if (sf.f_type == TMPFS_MAGIC)
		cr_skip_test("/tmp is a tmpfs, whose pages are never clean");
	cr_assert_eq(upg_swap_io_grow(io, 64 * SLOT), 0);
	if (syscall(NR_CACHESTAT, upg_swap_io_test_fd(io), &range, &cs, 0))
		cr_skip_test("no cachestat: %s", strerror(errno));
	fill(buf, 0, 64 * SLOT, 2);
	for (unsigned int i = 0; i < 64; i++)
		queue_slot(io, buf, i, i);
	wait_all_ok(io, 64);
	cr_assert_eq(syscall(NR_CACHESTAT, upg_swap_io_test_fd(io), &range,
			     &cs, 0), 0);
	cr_assert_eq(cs.nr_cache, 64, "the writes went through the page cache");
	cr_assert_eq(cs.nr_dirty, 0, "%llu pages still dirty",
		     (unsigned long long)cs.nr_dirty);
	cr_assert_eq(cs.nr_writeback, 0);
	free(buf);
	upg_swap_io_close(io);
}

static void fixed_round_trip(bool no_direct)
{
	size_t len = round_trip_len();
	char *fixed = page_alloc(len);
	struct upg_swap_io_config cfg = { .max_bytes = 256 * MiB,
		.fixed_buf = fixed, .fixed_len = len, .no_direct = no_direct };
	struct upg_swap_io *io;
	char *plain = page_alloc(SLOT);
	char *got = page_alloc(SLOT);

	t_log_capture();
	io = io_open(&cfg);
	cr_assert_not(t_log_contains("register"), "registration refused");
	round_trip(io, fixed);
	/* Memory outside the registered buffer still goes, unregistered. */
	fill(plain, 200 * MiB, SLOT, 9);
	cr_assert_eq(upg_swap_io_grow(io, 200 * MiB + SLOT), 0);
	cr_assert_eq(upg_swap_io_write(io, 200 * MiB, plain, SLOT, 0), 0);
	wait_all_ok(io, 1);
	cr_assert_eq(upg_swap_io_read(io, 200 * MiB, got, SLOT), 0);
	check(got, 200 * MiB, SLOT, 9);
	upg_swap_io_close(io);
	free(got);
	free(plain);
	free(fixed);
}

Test(swap_io, writes_from_registered_buffers_come_back)
{
	fixed_round_trip(false);
}

Test(swap_io, writes_from_registered_buffers_come_back_buffered)
{
	fixed_round_trip(true);
}

/* Readers in many threads at once, over the few read rings. */
struct reader_arg {
	struct upg_swap_io *io;
	unsigned int seed;
	int bad;
};

static void *reader_thread(void *p)
{
	struct reader_arg *a = p;
	char *got = aligned_alloc(SLOT, SLOT);
	uint64_t s = a->seed;

	for (int i = 0; i < 2000 && got; i++) {
		uint64_t slot;

		s = s * 6364136223846793005ull + 1442695040888963407ull;
		slot = (s >> 33) % NR_SLOTS;
		if (upg_swap_io_read(a->io, slot * SLOT, got, SLOT) ||
		    !t_page_check(got, slot, 3))
			a->bad++;
	}
	free(got);
	return NULL;
}

Test(swap_io, many_threads_read_at_once)
{
	struct upg_swap_io *io = io_open_in_dir(64 * MiB, false);
	char *src = page_alloc(NR_SLOTS * SLOT);
	struct reader_arg args[12];
	pthread_t th[12];

	fill(src, 0, NR_SLOTS * SLOT, 3);
	cr_assert_eq(upg_swap_io_grow(io, NR_SLOTS * SLOT), 0);
	for (unsigned int i = 0; i < NR_SLOTS; i += 64) {
		for (unsigned int j = 0; j < 64; j++)
			queue_slot(io, src, i + j, j);
		wait_all_ok(io, 64);
	}
	for (int i = 0; i < 12; i++) {
		args[i] = (struct reader_arg){ .io = io,
			.seed = (unsigned int)i + 1 };
		cr_assert_eq(pthread_create(&th[i], NULL, reader_thread,
					    &args[i]), 0);
	}
	for (int i = 0; i < 12; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(args[i].bad, 0, "reader %d: %d bad reads", i,
			     args[i].bad);
	}
	free(src);
	upg_swap_io_close(io);
}

/* ---- no name, ever ---------------------------------------------------- */

static void assert_nameless(struct upg_swap_io *io)
{
	struct stat st;

	cr_assert_eq(fstat(upg_swap_io_test_fd(io), &st), 0);
	cr_assert(S_ISREG(st.st_mode));
	cr_assert_eq(st.st_nlink, 0, "the store has %lu names",
		     (unsigned long)st.st_nlink);
	cr_assert_eq(st.st_mode & 07777, 0600, "mode %o", st.st_mode & 07777);
	cr_assert_eq(dir_entries(dir), 0, "a name is left in %s", dir);
}

static void nameless(bool no_tmpfile, bool new_name)
{
	char path[128];
	struct upg_swap_io_config cfg = { .max_bytes = 64 * MiB,
		.no_tmpfile = no_tmpfile };
	struct upg_swap_io *io;
	char *buf = page_alloc(SLOT);

	if (new_name) {
		snprintf(path, sizeof(path), "%s/swapfile", dir);
		cfg.path = path;
	}
	io = io_open(&cfg);
	assert_nameless(io);
	/* Still none once it holds data. */
	fill(buf, 0, SLOT, 1);
	cr_assert_eq(upg_swap_io_grow(io, 64 * MiB), 0);
	cr_assert_eq(upg_swap_io_write(io, 0, buf, SLOT, 0), 0);
	wait_all_ok(io, 1);
	assert_nameless(io);
	upg_swap_io_close(io);
	cr_assert_eq(dir_entries(dir), 0);
	free(buf);
}

Test(swap_io, o_tmpfile_store_has_no_name_and_mode_0600)
{
	nameless(false, false);
}

Test(swap_io, fallback_store_is_unlinked_at_once_and_mode_0600)
{
	nameless(true, false);
}

Test(swap_io, new_path_is_made_in_its_directory_without_its_name)
{
	nameless(false, true);
}

Test(swap_io, new_path_with_fallback_leaves_no_name)
{
	nameless(true, true);
}

/*
 * A child opens the store, grows it and writes, tells us its descriptor,
 * and waits to be killed. Its file must have no name while it lives and
 * be gone, inode and all, once it is dead.
 */
static void killed_owner_leaves_nothing(bool no_tmpfile)
{
	int pipefd[2], fd = -1, status;
	char link[64];
	struct stat st;
	pid_t pid;

	cr_assert_eq(pipe(pipefd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct upg_swap_io_config cfg = { .path = dir,
			.max_bytes = 64 * MiB, .no_tmpfile = no_tmpfile };
		struct upg_swap_io_done done;
		struct upg_swap_io *io;
		void *buf = aligned_alloc(SLOT, SLOT);

		close(pipefd[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);	/* if the test dies first */
		if (!buf || upg_swap_io_open(&cfg, &io) ||
		    upg_swap_io_grow(io, 64 * MiB))
			_exit(1);
		memset(buf, 0xa5, SLOT);
		if (upg_swap_io_write(io, 0, buf, SLOT, 0) ||
		    upg_swap_io_wait(io, &done, 1, 1) != 1 || done.res)
			_exit(2);
		fd = upg_swap_io_test_fd(io);
		if (write(pipefd[1], &fd, sizeof(fd)) != sizeof(fd))
			_exit(3);
		for (;;)
			pause();
	}
	close(pipefd[1]);
	cr_assert_eq(read(pipefd[0], &fd, sizeof(fd)), sizeof(fd),
		     "the child failed to open its store");
	close(pipefd[0]);
	snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)pid, fd);
	cr_assert_eq(stat(link, &st), 0, "%s: %s", link, strerror(errno));
	cr_assert_eq(st.st_nlink, 0);
	cr_assert_geq((uint64_t)st.st_blocks * 512, 64 * MiB,
		      "the child's store holds its 64 MiB");
	cr_assert_eq(dir_entries(dir), 0);
	kill(pid, SIGKILL);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	cr_assert_eq(dir_entries(dir), 0);
	cr_assert_neq(stat(link, &st), 0, "the store outlived its owner");
}

Test(swap_io, o_tmpfile_store_goes_with_a_killed_owner)
{
	killed_owner_leaves_nothing(false);
}

Test(swap_io, fallback_store_goes_with_a_killed_owner)
{
	killed_owner_leaves_nothing(true);
}

/* ---- paths it refuses ------------------------------------------------- */

static int open_err(const char *path, uint64_t max_bytes)
{
	struct upg_swap_io_config cfg = { .path = path, .max_bytes = max_bytes };
	struct upg_swap_io *io = NULL;
	int ret = upg_swap_io_open(&cfg, &io);

	if (!ret)
		upg_swap_io_close(io);
	return ret;
}

Test(swap_io, missing_parent_is_enoent)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/no/such", dir);
	t_log_capture();
	cr_assert_eq(open_err(path, 64 * MiB), -ENOENT);
	cr_assert(t_log_contains("No such file or directory"));
	cr_assert_eq(dir_entries(dir), 0);
}

Test(swap_io, existing_file_is_eexist_and_left_as_it_was)
{
	char path[128];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/precious", dir);
	fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "data", 4), 4);
	close(fd);
	t_log_capture();
	cr_assert_eq(open_err(path, 64 * MiB), -EEXIST);
	cr_assert(t_log_contains(path));
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_size, 4);
	cr_assert_eq(st.st_mode & 07777, 0644);
}

Test(swap_io, file_without_max_bytes_is_einval)
{
	cr_assert_eq(open_err(dir, 0), -EINVAL);
	cr_assert_eq(open_err(dir, SLOT - 1), -EINVAL);
	cr_assert_eq(dir_entries(dir), 0);
}

Test(swap_io, neither_directory_nor_device_is_einval)
{
	cr_assert_eq(open_err("/dev/null", 64 * MiB), -EINVAL);
	cr_assert_eq(open_err("", 64 * MiB), -EINVAL);
}

/*
 * The errno a directory that takes no files gives: EROFS on a read-only
 * mount (many containers mount /sys so), EACCES without root (the
 * directory is not writable), else what the filesystem itself answers.
 */
static int refused_errno(const char *path, int as_root)
{
	struct statvfs sv;

	cr_assert_eq(statvfs(path, &sv), 0);
	if (sv.f_flag & ST_RDONLY)
		return -EROFS;
	return geteuid() ? -EACCES : as_root;
}

/* sysfs: O_TMPFILE is refused (EOPNOTSUPP), then the create (EACCES). */
Test(swap_io, sysfs_directory_is_refused_with_its_errno)
{
	int want = refused_errno("/sys", -EACCES);
	char msg[128];

	t_log_capture();
	cr_assert_eq(open_err("/sys", 64 * MiB), want);
	snprintf(msg, sizeof(msg), "cannot create a file in /sys: %s",
		 strerror(-want));
	cr_assert(t_log_contains(msg), "no \"%s\" logged", msg);
}

/* procfs: the same, but its lookup answers ENOENT before the create. */
Test(swap_io, procfs_directory_is_refused_with_its_errno)
{
	cr_assert_eq(open_err("/proc", 64 * MiB), refused_errno("/proc", -ENOENT));
}

/* ---- growth ----------------------------------------------------------- */

static off_t file_size(struct upg_swap_io *io)
{
	struct stat st;

	cr_assert_eq(fstat(upg_swap_io_test_fd(io), &st), 0);
	return st.st_size;
}

Test(swap_io, grows_in_64mib_extents_up_to_capacity)
{
	struct upg_swap_io *io = io_open_in_dir(100 * MiB, false);

	cr_assert_eq(upg_swap_io_capacity(io), 100 * MiB);
	cr_assert_eq(upg_swap_io_grow(io, SLOT), 0);
	cr_assert_eq(upg_swap_io_grow(io, 5 * SLOT), 0);
	cr_assert_eq(file_size(io), 64 * MiB);
	cr_assert_eq(upg_swap_io_grow(io, 64 * MiB + 1), 0);
	cr_assert_eq(file_size(io), 100 * MiB, "capped at capacity");
	cr_assert_eq(upg_swap_io_grow(io, 100 * MiB), 0);
	cr_assert_eq(upg_swap_io_grow(io, 100 * MiB + 1), -ENOSPC);
	cr_assert_eq(upg_swap_io_grow(io, 200 * MiB), -ENOSPC);
	cr_assert_eq(file_size(io), 100 * MiB);
	upg_swap_io_close(io);
}

Test(swap_io, capacity_is_max_bytes_in_whole_slots)
{
	struct upg_swap_io *io = io_open_in_dir(10 * SLOT + 100, false);

	cr_assert_eq(upg_swap_io_capacity(io), 10 * SLOT);
	cr_assert_eq(upg_swap_io_grow(io, 10 * SLOT), 0);
	cr_assert_eq(upg_swap_io_grow(io, 10 * SLOT + 1), -ENOSPC);
	upg_swap_io_close(io);
}

/* ---- failures --------------------------------------------------------- */

static void injected_write_failure(bool no_direct)
{
	struct upg_swap_io *io = io_open_in_dir(64 * MiB, no_direct);
	struct upg_swap_io_done done[8];
	char *buf = page_alloc(4 * SLOT), *got = page_alloc(SLOT);
	int res[4] = { 1, 1, 1, 1 };
	unsigned int nr = 0;

	cr_assert_eq(upg_swap_io_grow(io, 4 * SLOT), 0);
	fill(buf, 0, 4 * SLOT, 5);
	upg_swap_io_test_fail(io, true, -EIO, 2);
	for (unsigned int i = 0; i < 4; i++)
		queue_slot(io, buf, i, i);
	cr_assert_eq(upg_swap_io_pending(io), 4);
	while (nr < 4) {
		int n = upg_swap_io_wait(io, done, 8, 4 - nr);

		cr_assert_gt(n, 0);
		for (int i = 0; i < n; i++) {
			cr_assert_lt(done[i].tag, 4);
			res[done[i].tag] = done[i].res;
		}
		nr += (unsigned int)n;
	}
	cr_assert_eq(res[0], -EIO);
	cr_assert_eq(res[1], -EIO);
	cr_assert_eq(res[2], 0);
	cr_assert_eq(res[3], 0);
	cr_assert_eq(upg_swap_io_pending(io), 0);
	/* The failed ones never reached the store; the others did. */
	cr_assert_eq(upg_swap_io_read(io, SLOT, got, SLOT), 0);
	cr_assert_eq(t_page_is_zero(got), 1, "a failed write reached the store");
	cr_assert_eq(upg_swap_io_read(io, 2 * SLOT, got, SLOT), 0);
	check(got, 2 * SLOT, SLOT, 5);
	/* And writing works again. */
	cr_assert_eq(upg_swap_io_write(io, 0, buf, SLOT, 0), 0);
	wait_all_ok(io, 1);
	cr_assert_eq(upg_swap_io_read(io, 0, got, SLOT), 0);
	check(got, 0, SLOT, 5);
	free(got);
	free(buf);
	upg_swap_io_close(io);
}

Test(swap_io, injected_write_failure_comes_back_with_its_tag)
{
	injected_write_failure(false);
}

Test(swap_io, injected_write_failure_comes_back_with_its_tag_buffered)
{
	injected_write_failure(true);
}

Test(swap_io, injected_read_failure_is_returned_and_touches_nothing)
{
	struct upg_swap_io *io = io_open_in_dir(64 * MiB, false);
	char *buf = page_alloc(SLOT), *got = page_alloc(SLOT);

	cr_assert_eq(upg_swap_io_grow(io, SLOT), 0);
	fill(buf, 0, SLOT, 6);
	cr_assert_eq(upg_swap_io_write(io, 0, buf, SLOT, 0), 0);
	wait_all_ok(io, 1);
	upg_swap_io_test_fail(io, false, -EBADMSG, 2);
	memset(got, 0x11, SLOT);
	cr_assert_eq(upg_swap_io_read(io, 0, got, SLOT), -EBADMSG);
	cr_assert_eq(upg_swap_io_read(io, 0, got, SLOT), -EBADMSG);
	cr_assert_eq(((unsigned char *)got)[0], 0x11);
	cr_assert_eq(upg_swap_io_read(io, 0, got, SLOT), 0);
	check(got, 0, SLOT, 6);
	/* Count 0 clears. */
	upg_swap_io_test_fail(io, false, -EIO, 5);
	upg_swap_io_test_fail(io, false, 0, 0);
	cr_assert_eq(upg_swap_io_read(io, 0, got, SLOT), 0);
	free(got);
	free(buf);
	upg_swap_io_close(io);
}

static void short_read(bool no_direct)
{
	struct upg_swap_io *io = io_open_in_dir(256 * MiB, no_direct);
	char *got = page_alloc(2 * SLOT);

	cr_assert_eq(upg_swap_io_grow(io, 2 * SLOT), 0);
	cr_assert_eq(file_size(io), 64 * MiB);
	/* Wholly past the end of the file, then across it. */
	cr_assert_eq(upg_swap_io_read(io, 128 * MiB, got, SLOT), -EIO);
	cr_assert_eq(upg_swap_io_read(io, 64 * MiB - SLOT, got, 2 * SLOT), -EIO);
	cr_assert_eq(upg_swap_io_read(io, 64 * MiB - SLOT, got, SLOT), 0);
	free(got);
	upg_swap_io_close(io);
}

Test(swap_io, read_past_end_of_file_is_eio)
{
	short_read(false);
}

Test(swap_io, read_past_end_of_file_is_eio_buffered)
{
	short_read(true);
}

static void full_queue(bool no_direct)
{
	struct upg_swap_io *io = io_open_in_dir(64 * MiB, no_direct);
	struct upg_swap_io_done done[4];
	char *buf = page_alloc(SLOT);
	unsigned int nr = 0;
	int ret;

	cr_assert_eq(upg_swap_io_grow(io, 64 * MiB), 0);
	fill(buf, 0, SLOT, 8);
	while ((ret = upg_swap_io_write(io, nr * SLOT, buf, SLOT, nr)) == 0)
		cr_assert_lt(++nr, 10000, "the queue never fills");
	cr_assert_eq(ret, -EBUSY);
	cr_assert_gt(nr, 8, "a batch of %u writes only", nr);
	cr_assert_eq(upg_swap_io_pending(io), nr);
	/* At most @max come back at a time; the rest stay pending. */
	cr_assert_eq(upg_swap_io_wait(io, done, 4, 4), 4);
	cr_assert_eq(upg_swap_io_pending(io), nr - 4);
	cr_assert_eq(upg_swap_io_write(io, nr * SLOT, buf, SLOT, nr), 0);
	nr++;
	cr_assert_eq(upg_swap_io_pending(io), nr - 4);
	while (upg_swap_io_pending(io))
		cr_assert_gt(upg_swap_io_wait(io, done, 4, 1), 0);
	/* Nothing pending: neither min_done 0 nor more than pending waits. */
	cr_assert_eq(upg_swap_io_wait(io, done, 4, 0), 0);
	cr_assert_eq(upg_swap_io_wait(io, done, 4, 3), 0);
	free(buf);
	upg_swap_io_close(io);
}

Test(swap_io, full_queue_is_ebusy_until_reaped)
{
	full_queue(false);
}

Test(swap_io, full_queue_is_ebusy_until_reaped_buffered)
{
	full_queue(true);
}

/* Close waits for queued writes: their buffers are the caller's. */
Test(swap_io, close_completes_queued_writes)
{
	struct upg_swap_io *io = io_open_in_dir(64 * MiB, false);
	char *buf = page_alloc(16 * SLOT), *got = page_alloc(SLOT);
	int fd;

	cr_assert_eq(upg_swap_io_grow(io, 16 * SLOT), 0);
	fill(buf, 0, 16 * SLOT, 4);
	for (unsigned int i = 0; i < 16; i++)
		queue_slot(io, buf, i, i);
	fd = dup(upg_swap_io_test_fd(io));
	cr_assert_geq(fd, 0);
	upg_swap_io_close(io);
	for (unsigned int i = 0; i < 16; i++) {
		cr_assert_eq(pread(fd, got, SLOT, i * SLOT), SLOT);
		check(got, i * SLOT, SLOT, 4);
	}
	close(fd);
	free(got);
	free(buf);
}

Test(swap_io, close_accepts_null)
{
	upg_swap_io_close(NULL);
}
