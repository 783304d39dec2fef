/*
 * The swap store (lib/swap/io.c) where it needs root: a block device (a
 * loop device over a 64 MiB file) is used whole, its size is the capacity,
 * and one that is mounted, in use as swap, or already a store is refused
 * with EBUSY; a full filesystem (a 1 MiB tmpfs) gives ENOSPC when the
 * store grows and when a write finds no room; a read-only one gives EROFS;
 * a killed owner's store gives its space back. Skips without root or
 * without loop devices.
 *
 * Mounts are made in a mount namespace of the test's own, so the machine
 * never sees them and they go with the test process. Loop devices are set
 * to autoclear and held open by the test, so they detach when it ends,
 * however it ends; the fixture's fini also undoes everything in order
 * (swapoff, umount, losetup -d) after a failed assertion.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/swap.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "log.h"
#include "swap/io.h"

#define SLOT		4096u
#define MiB		(1ull << 20)
#define LOOP_LEN	(64 * MiB)
#define MAX_MNT		4
#define MAX_LOOP	2
#define SBIN_PATH	"PATH=/usr/sbin:/sbin:/usr/bin:/bin "

/* What a test made, for t_fini to undo whatever happened. */
static struct {
	char dir[64];			/* mkdtemp, under /tmp */
	char mnt[MAX_MNT][128];		/* mounted, in our namespace */
	int nr_mnt;
	char loop[MAX_LOOP][32];	/* attached */
	int keep[MAX_LOOP];		/* holds each open: autoclear */
	int nr_loop;
	char swap[32];			/* swapped on */
} t;

static void t_init(void)
{
	memset(&t, 0, sizeof(t));
	strcpy(t.dir, "/tmp/upg-swap-dev-XXXXXX");
	cr_assert(mkdtemp(t.dir), "mkdtemp: %s", strerror(errno));
}

static void t_fini(void)
{
	char cmd[128];

	if (t.swap[0] && swapoff(t.swap))
		fprintf(stderr, "swapoff %s: %s\n", t.swap, strerror(errno));
	for (int i = t.nr_mnt - 1; i >= 0; i--) {
		if (umount2(t.mnt[i], 0) && umount2(t.mnt[i], MNT_DETACH))
			fprintf(stderr, "umount %s: %s\n", t.mnt[i],
				strerror(errno));
		rmdir(t.mnt[i]);
	}
	for (int i = 0; i < t.nr_loop; i++) {
		/* Detaches on the last close: ours, just after. */
		snprintf(cmd, sizeof(cmd), SBIN_PATH "losetup -d %s", t.loop[i]);
		if (system(cmd))
			fprintf(stderr, "%s failed\n", cmd);
		if (t.keep[i] >= 0)
			close(t.keep[i]);
	}
	rmdir(t.dir);
}

TestSuite(swap_device, .init = t_init, .fini = t_fini, .timeout = 60);

static int __attribute__((format(printf, 1, 2))) run(const char *fmt, ...)
{
	char cmd[512] = SBIN_PATH;
	size_t used = strlen(cmd);
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd + used, sizeof(cmd) - used, fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool have(const char *prog)
{
	return run("command -v %s >/dev/null 2>&1", prog) == 0;
}

/* Root, in a mount namespace of our own (mounts stay out of sight). */
static void need_root(void)
{
	if (geteuid())
		cr_skip_test("needs root");
	cr_assert_eq(unshare(CLONE_NEWNS), 0, "unshare: %s", strerror(errno));
	cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0,
		     "make / private: %s", strerror(errno));
}

static const char *mount_at(const char *name, const char *src,
			    const char *type, unsigned long flags, const char *data)
{
	char path[sizeof(t.mnt[0])], *m;
	int ret;

	cr_assert_lt(t.nr_mnt, MAX_MNT);
	snprintf(path, sizeof(path), "%s/%s", t.dir, name);
	m = strcpy(t.mnt[t.nr_mnt], path);
	cr_assert_eq(mkdir(m, 0700), 0);
	ret = mount(src, m, type, flags, data);
	if (ret)
		rmdir(m);
	cr_assert_eq(ret, 0, "mount %s on %s: %s", type, m, strerror(errno));
	t.nr_mnt++;
	return m;
}

static const char *tmpfs_at(const char *name, const char *opts)
{
	return mount_at(name, "tmpfs", "tmpfs", 0, opts);
}

/* A loop device over a new 64 MiB file; skips if there is none to have. */
static const char *loop_attach(void)
{
	struct loop_info64 info;
	char file[128], cmd[256], *dev;
	size_t len;
	FILE *p;
	int fd, st;

	cr_assert_lt(t.nr_loop, MAX_LOOP);
	if (!have("losetup") || access("/dev/loop-control", F_OK))
		cr_skip_test("no losetup or no loop devices");
	snprintf(file, sizeof(file), "%s/backing%d", t.dir, t.nr_loop);
	fd = open(file, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)LOOP_LEN), 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), SBIN_PATH "losetup -f --show %s", file);
	dev = t.loop[t.nr_loop];
	p = popen(cmd, "r");
	cr_assert(p);
	if (!fgets(dev, sizeof(t.loop[0]), p))
		dev[0] = '\0';
	st = pclose(p);
	unlink(file);	/* the loop device holds it now */
	if (st || strncmp(dev, "/dev/loop", 9)) {
		dev[0] = '\0';
		cr_skip_test("losetup -f failed: no free loop device");
	}
	len = strcspn(dev, "\n");
	dev[len] = '\0';
	t.keep[t.nr_loop] = -1;
	t.nr_loop++;
	/* Held open and autoclear: detached when the test ends, however. */
	fd = open(dev, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "open %s: %s", dev, strerror(errno));
	t.keep[t.nr_loop - 1] = fd;
	cr_assert_eq(ioctl(fd, LOOP_GET_STATUS64, &info), 0);
	info.lo_flags |= LO_FLAGS_AUTOCLEAR;
	cr_assert_eq(ioctl(fd, LOOP_SET_STATUS64, &info), 0, "autoclear: %s",
		     strerror(errno));
	return dev;
}

static struct upg_swap_io *io_open(struct upg_swap_io_config *cfg)
{
	struct upg_swap_io *io = NULL;
	int ret = upg_swap_io_open(cfg, &io);

	cr_assert_eq(ret, 0, "open %s: %s", cfg->path, strerror(-ret));
	return io;
}

static int open_err(const char *path, uint64_t max_bytes, bool no_tmpfile)
{
	struct upg_swap_io_config cfg = { .path = path, .max_bytes = max_bytes,
		.no_tmpfile = no_tmpfile };
	struct upg_swap_io *io = NULL;
	int ret = upg_swap_io_open(&cfg, &io);

	if (!ret)
		upg_swap_io_close(io);
	return ret;
}

static void *page_alloc(size_t len)
{
	void *p = aligned_alloc(SLOT, len);

	cr_assert(p);
	return p;
}

/* One write, waited for: its result. */
static int write_one(struct upg_swap_io *io, uint64_t off, const void *buf,
		     size_t len)
{
	struct upg_swap_io_done done;
	int ret = upg_swap_io_write(io, off, buf, len, 42);

	cr_assert_eq(ret, 0, "write: %s", strerror(-ret));
	cr_assert_eq(upg_swap_io_wait(io, &done, 1, 1), 1);
	cr_assert_eq(done.tag, 42);
	return done.res;
}

/* Slots @first.. @first + @nr, written in runs of 8 and read back. */
static void round_trip(struct upg_swap_io *io, uint64_t first, unsigned int nr)
{
	char *buf = page_alloc(8 * SLOT), *got = page_alloc(SLOT);

	for (unsigned int i = 0; i < nr; i += 8) {
		unsigned int n = nr - i < 8 ? nr - i : 8;

		for (unsigned int j = 0; j < n; j++)
			t_page_fill(buf + j * SLOT, first + i + j, 11);
		cr_assert_eq(write_one(io, (first + i) * SLOT, buf, n * SLOT), 0);
	}
	for (unsigned int i = 0; i < nr; i++) {
		memset(got, 0, SLOT);
		cr_assert_eq(upg_swap_io_read(io, (first + i) * SLOT, got,
					      SLOT), 0);
		cr_assert(t_page_check(got, first + i, 11), "slot %llu differs",
			  (unsigned long long)(first + i));
	}
	free(got);
	free(buf);
}

/* ---- block devices ---------------------------------------------------- */

static void device_round_trip(bool no_direct)
{
	struct upg_swap_io_config cfg = { .no_direct = no_direct };
	struct upg_swap_io *io;
	uint64_t size = 0;
	char *got = page_alloc(SLOT);
	int fd;

	need_root();
	cfg.path = loop_attach();
	io = io_open(&cfg);
	cr_assert(upg_swap_io_is_device(io));
	cr_assert_eq(upg_swap_io_is_direct(io), !no_direct);
	cr_assert_eq(ioctl(upg_swap_io_test_fd(io), BLKGETSIZE64, &size), 0);
	cr_assert_eq(size, LOOP_LEN);
	cr_assert_eq(upg_swap_io_capacity(io), LOOP_LEN);
	/* Nothing to grow, only the capacity to check. */
	cr_assert_eq(upg_swap_io_grow(io, LOOP_LEN), 0);
	cr_assert_eq(upg_swap_io_grow(io, LOOP_LEN + 1), -ENOSPC);
	round_trip(io, 0, 64);
	round_trip(io, LOOP_LEN / SLOT - 32, 32);	/* the last slots */
	/* The data is on the device, seen through another descriptor. */
	fd = open(cfg.path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, got, SLOT, (off_t)(LOOP_LEN - SLOT)), SLOT);
	cr_assert(t_page_check(got, LOOP_LEN / SLOT - 1, 11));
	close(fd);
	/* Held O_EXCL: a second store on it is refused. */
	cr_assert_eq(open_err(cfg.path, 0, false), -EBUSY);
	upg_swap_io_close(io);
	free(got);
}

Test(swap_device, device_is_used_whole_with_o_direct)
{
	device_round_trip(false);
}

Test(swap_device, device_is_used_whole_buffered)
{
	device_round_trip(true);
}

Test(swap_device, device_capacity_is_max_bytes_when_smaller)
{
	struct upg_swap_io_config cfg = { .max_bytes = 16 * MiB + 100 };
	struct upg_swap_io *io;

	need_root();
	cfg.path = loop_attach();
	io = io_open(&cfg);
	cr_assert_eq(upg_swap_io_capacity(io), 16 * MiB);
	cr_assert_eq(upg_swap_io_grow(io, 16 * MiB + 1), -ENOSPC);
	round_trip(io, 16 * MiB / SLOT - 8, 8);
	upg_swap_io_close(io);
	/* Larger than the device: the device's size. */
	cfg.max_bytes = 2 * LOOP_LEN;
	io = io_open(&cfg);
	cr_assert_eq(upg_swap_io_capacity(io), LOOP_LEN);
	upg_swap_io_close(io);
}

Test(swap_device, mounted_device_is_ebusy)
{
	const char *dev;

	need_root();
	if (!have("mkfs.ext2"))
		cr_skip_test("no mkfs.ext2");
	dev = loop_attach();
	cr_assert_eq(run("mkfs.ext2 -q -F %s >/dev/null 2>&1", dev), 0);
	mount_at("ext2", dev, "ext2", 0, NULL);
	t_log_capture();
	cr_assert_eq(open_err(dev, 0, false), -EBUSY);
	cr_assert(t_log_contains("mounted or in use as swap"));
}

Test(swap_device, device_in_use_as_swap_is_ebusy)
{
	const char *dev;

	need_root();
	if (!have("mkswap"))
		cr_skip_test("no mkswap");
	dev = loop_attach();
	cr_assert_eq(run("mkswap %s >/dev/null 2>&1", dev), 0);
	cr_assert_eq(swapon(dev, 0), 0, "swapon %s: %s", dev, strerror(errno));
	snprintf(t.swap, sizeof(t.swap), "%s", dev);
	cr_assert_eq(open_err(dev, 0, false), -EBUSY);
	cr_assert_eq(swapoff(dev), 0);
	t.swap[0] = '\0';
	/* And usable again once it is not. */
	cr_assert_eq(open_err(dev, 0, false), 0);
}

/* ---- filesystems -------------------------------------------------------- */

static bool fd_is_direct(struct upg_swap_io *io)
{
	return fcntl(upg_swap_io_test_fd(io), F_GETFL) & O_DIRECT;
}

/*
 * A 1 MiB tmpfs under a 64 MiB store: the 64 MiB extent does not fit, and
 * neither does the whole store; what is asked for still does. A write into
 * a hole once the filesystem is full fails with ENOSPC, and one that fills
 * it on the way comes back short: -EIO.
 */
static void tmpfs_full(bool no_direct)
{
	struct upg_swap_io_config cfg = { .max_bytes = 64 * MiB,
		.no_direct = no_direct };
	struct upg_swap_io *io;
	char *buf = page_alloc(MiB);
	int res;

	need_root();
	cfg.path = tmpfs_at("tmpfs", "size=1M,mode=0700");
	io = io_open(&cfg);
	cr_assert_eq(upg_swap_io_is_direct(io), fd_is_direct(io));
	if (no_direct)
		cr_assert_not(upg_swap_io_is_direct(io));
	else
		cr_log_info("tmpfs on this kernel %s O_DIRECT",
			    upg_swap_io_is_direct(io) ? "takes" : "refuses");
	cr_assert_eq(upg_swap_io_grow(io, 64 * MiB), -ENOSPC);
	cr_assert_eq(upg_swap_io_grow(io, 2 * MiB), -ENOSPC);
	cr_assert_eq(upg_swap_io_grow(io, 256 << 10), 0);
	round_trip(io, 0, 64);
	/* 1 MiB in one write, into a hole: room for part of it only. */
	memset(buf, 0x5a, MiB);
	res = write_one(io, 8 * MiB, buf, MiB);
	cr_assert_eq(res, -EIO, "a write that fills the fs: %d", res);
	/* Now full: a slot into another hole has no room at all. */
	res = write_one(io, 16 * MiB, buf, SLOT);
	cr_assert_eq(res, -ENOSPC, "a write into a full fs: %d", res);
	/* What was written before is still there. */
	round_trip(io, 0, 64);
	upg_swap_io_close(io);
	free(buf);
}

Test(swap_device, full_tmpfs_is_enospc)
{
	tmpfs_full(false);
}

Test(swap_device, full_tmpfs_is_enospc_buffered)
{
	tmpfs_full(true);
}

Test(swap_device, read_only_filesystem_is_erofs)
{
	const char *ro;

	need_root();
	ro = mount_at("ro", "tmpfs", "tmpfs", MS_RDONLY, "size=1M");
	t_log_capture();
	cr_assert_eq(open_err(ro, 64 * MiB, false), -EROFS);
	cr_assert_eq(open_err(ro, 64 * MiB, true), -EROFS);
	cr_assert(t_log_contains("Read-only file system"));
}

static uint64_t used_bytes(const char *path)
{
	struct statvfs sv;

	cr_assert_eq(statvfs(path, &sv), 0);
	return (uint64_t)(sv.f_blocks - sv.f_bfree) * sv.f_frsize;
}

/*
 * A child grows its store by 64 MiB on a tmpfs of its own and is
 * SIGKILLed: the tmpfs is empty again, no name, no space.
 */
static void killed_owner_gives_space_back(bool no_tmpfile)
{
	const char *m;
	int pipefd[2], status;
	char c;
	pid_t pid;

	need_root();
	m = tmpfs_at("tmpfs", "size=128M,mode=0700");
	cr_assert_lt(used_bytes(m), MiB);
	cr_assert_eq(pipe(pipefd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct upg_swap_io_config cfg = { .path = m,
			.max_bytes = 64 * MiB, .no_tmpfile = no_tmpfile };
		struct upg_swap_io *io;

		close(pipefd[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (upg_swap_io_open(&cfg, &io) || upg_swap_io_grow(io, 64 * MiB))
			_exit(1);
		if (write(pipefd[1], "y", 1) != 1)
			_exit(2);
		for (;;)
			pause();
	}
	close(pipefd[1]);
	cr_assert_eq(read(pipefd[0], &c, 1), 1, "the child failed");
	close(pipefd[0]);
	cr_assert_geq(used_bytes(m), 64 * MiB);
	kill(pid, SIGKILL);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	/* The last fput runs before the parent can reap; allow a moment. */
	for (int i = 0; i < 200 && used_bytes(m) >= MiB; i++)
		usleep(10000);
	cr_assert_lt(used_bytes(m), MiB, "%llu bytes still used",
		     (unsigned long long)used_bytes(m));
}

Test(swap_device, killed_owner_gives_space_back)
{
	killed_owner_gives_space_back(false);
}

Test(swap_device, killed_owner_gives_space_back_with_fallback)
{
	killed_owner_gives_space_back(true);
}
