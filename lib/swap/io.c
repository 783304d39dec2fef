/*
 * The swap store's I/O, and the only code that touches io_uring (see io.h
 * for the contract). A file store is an O_TMPFILE (or a name unlinked at
 * once) so nothing outlives the process, not even after SIGKILL; a device
 * is held O_EXCL so no one else mounts or swaps on it while we use it.
 *
 * The writer has one ring of its own. upg_swap_io_write() only fills an
 * SQE; upg_swap_io_wait() submits them all at once and reaps. Each write
 * has an entry in a small table, its index in the CQE's user_data, so its
 * tag survives and a write reported in two CQEs is told apart. Without
 * O_DIRECT each write is linked to an fdatasync (IOSQE_IO_LINK) and is
 * done when both CQEs are in: the write's error wins, as the fsync after a
 * failed or short write completes with -ECANCELED.
 *
 * Readers each take one of the read rings (each under its mutex), submit
 * one read and wait for it, so a fault never queues behind a batch of
 * writes. There is a ring for each thread expected to read at once (the
 * runtime's fault threads), at least MIN_READERS, so that readers contend
 * only when more threads than that read at once.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define UPG_LOG_PREFIX "swap: "
#include "../log.h"
#include "io.h"
#include "slot.h"

#define SLOT		UPG_SLOT_SIZE
/* Fewer fallocate calls, and extents the filesystem can keep contiguous. */
#define EXTENT		(64ull << 20)
/*
 * Writes queued or in flight. Each takes two SQEs at most (write and
 * fsync), so the SQ never fills before the table does, and the CQ (twice
 * the SQ) always has room for every completion: it cannot overflow.
 */
#define MAX_WRITES	128u
#define WRITER_ENTRIES	(2 * MAX_WRITES)
/* Read rings: one a fault thread (upg_swap_io_config.readers), within these. */
#define MIN_READERS	4u
#define MAX_READERS	64u	/* a ring is an fd: no more than a device needs */
#define READER_ENTRIES	4u
/* The kernel refuses to register a buffer over 1 GiB: split it. */
#define FIXED_CHUNK	(1ull << 30)
/* Under the kernel's MAX_RW_COUNT; the result must fit an int. */
#define MAX_IO_LEN	(1u << 30)

/* user_data of a CQE: the write's index, then whether it is the fsync. */
#define UD_FSYNC	1u
#define UD_SHIFT	1
/* A read ring's user_data: a read, or an SQE made harmless (see read). */
#define UD_READ		1u
#define UD_STALE	2u

struct wop {
	uint64_t tag;
	uint32_t len;		/* 0: an injected failure, res set already */
	int res;
	uint8_t cqes_left;	/* 2 with a linked fsync, else 1 */
};

struct reader {
	pthread_mutex_t lock;	/* held for a whole read: one at a time */
	struct io_uring ring;
} __attribute__((aligned(64)));

struct upg_swap_io {
	int fd;
	bool direct;
	bool device;
	uint64_t capacity;
	char *path;			/* for messages */

	pthread_mutex_t grow_lock;
	uint64_t grown;			/* fallocated, under grow_lock */

	/* The writer thread's alone. */
	struct io_uring wring;
	char *fixed_base;		/* registered, or NULL */
	size_t fixed_len;
	struct wop wops[MAX_WRITES];
	uint8_t free_wops[MAX_WRITES];	/* a stack of free indexes */
	unsigned int nr_free;

	atomic_uint next_reader;	/* where a reader starts looking */

	/* upg_swap_io_test_fail(); [0] reads, [1] writes. */
	atomic_int fail_err[2];
	atomic_uint fail_count[2];

	unsigned int nr_readers;
	struct reader readers[];
};

_Static_assert(MAX_WRITES <= 256, "free_wops holds uint8_t indexes");

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static const char *hint(int err)
{
	switch (err) {
	case -EACCES:
	case -EPERM:
		return "check its permissions or choose another directory";
	case -EROFS:
		return "the filesystem is read-only: choose a writable one";
	case -ENOENT:
	case -ENOTDIR:
		return "the directory must exist";
	case -ENOSPC:
	case -EDQUOT:
		return "the filesystem is full: free space or choose another";
	case -EBUSY:
		return "the device is mounted or in use as swap";
	default:
		return "choose another path";
	}
}

/* ---- opening --------------------------------------------------------- */

/*
 * A file in @dir under a unique name, unlinked at once: where O_TMPFILE
 * is refused, the name exists only for the moment between the two calls.
 */
static int open_unlinked(const char *dir)
{
	size_t len = strlen(dir) + sizeof("/.upager-swap-XXXXXX");
	char *name = malloc(len);
	int fd, ret;

	if (!name)
		return -ENOMEM;
	snprintf(name, len, "%s/.upager-swap-XXXXXX", dir);
	/* mkostemp: O_CREAT | O_EXCL, mode 0600. */
	fd = mkostemp(name, O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	ret = unlink(name) ? -errno : fd;
	if (ret < 0)
		close(fd);
out:
	free(name);
	return ret;
}

static int open_tmpfile(const char *dir, bool no_tmpfile)
{
	int fd = -EOPNOTSUPP;

	if (!no_tmpfile) {
		fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (fd < 0)
			fd = -errno;
	}
	/* What a filesystem without O_TMPFILE (or an old kernel) answers. */
	if (fd == -EOPNOTSUPP || fd == -EISDIR || fd == -EINVAL)
		fd = open_unlinked(dir);
	return fd;
}

/*
 * A real 4 KiB write and read at offset 0 (a read only on a device, whose
 * data is not ours to change until we are handed slots): some filesystems
 * take the O_DIRECT flag and refuse the I/O. Synchronous, at open only.
 */
static int probe_direct(struct upg_swap_io *io)
{
	void *buf = aligned_alloc(SLOT, SLOT);
	ssize_t n = SLOT;
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	memset(buf, 0, SLOT);
	if (!io->device)
		n = pwrite(io->fd, buf, SLOT, 0);
	if (n == SLOT)
		n = pread(io->fd, buf, SLOT, 0);
	if (n < 0)
		ret = -errno;
	else if (n != SLOT)
		ret = -EIO;
	free(buf);
	return ret;
}

static int set_direct(struct upg_swap_io *io, bool no_direct)
{
	int flags = fcntl(io->fd, F_GETFL);
	const char *why = "asked for";
	int ret;

	if (no_direct)
		goto buffered;
	why = "O_DIRECT refused";
	if (fcntl(io->fd, F_SETFL, flags | O_DIRECT))
		ret = -errno;
	else
		ret = probe_direct(io);
	if (!ret) {
		io->direct = true;
		return 0;
	}
	if (ret != -EINVAL) {
		upg_err("cannot use %s: %s", io->path, strerror(-ret));
		return ret;
	}
	if (fcntl(io->fd, F_SETFL, flags))
		return -errno;
buffered:
	upg_info("%s: buffered I/O (%s); each batch of writes is followed "
		 "by fdatasync", io->path, why);
	return 0;
}

static int open_file(struct upg_swap_io *io, const struct upg_swap_io_config *cfg,
		     const char *dir)
{
	int ret;

	if (cfg->max_bytes < SLOT) {
		upg_err("%s: a file store needs max_bytes (at least %u)",
			cfg->path, SLOT);
		return -EINVAL;
	}
	io->capacity = cfg->max_bytes / SLOT * SLOT;
	io->fd = open_tmpfile(dir, cfg->no_tmpfile);
	if (io->fd < 0) {
		ret = io->fd;
		upg_err("cannot create a file in %s: %s; %s", dir,
			strerror(-ret), hint(ret));
		return ret;
	}
	/* The first slot, so the probe writes where slots will be. */
	if (fallocate(io->fd, 0, 0, SLOT)) {
		ret = -errno;
		upg_err("cannot allocate in %s: %s; %s", dir, strerror(-ret),
			hint(ret));
		return ret;
	}
	io->grown = SLOT;
	return set_direct(io, cfg->no_direct);
}

static int open_device(struct upg_swap_io *io, const struct upg_swap_io_config *cfg)
{
	uint64_t size;
	int ret;

	/* O_EXCL: the kernel refuses a device mounted or used as swap. */
	io->fd = open(cfg->path, O_RDWR | O_EXCL | O_CLOEXEC);
	if (io->fd < 0) {
		ret = -errno;
		upg_err("cannot open %s: %s; %s", cfg->path, strerror(-ret),
			hint(ret));
		return ret;
	}
	io->device = true;
	if (ioctl(io->fd, BLKGETSIZE64, &size)) {
		ret = -errno;
		upg_err("cannot get the size of %s: %s", cfg->path, strerror(-ret));
		return ret;
	}
	if (cfg->max_bytes && cfg->max_bytes < size)
		size = cfg->max_bytes;
	io->capacity = io->grown = size / SLOT * SLOT;
	if (!io->capacity) {
		upg_err("%s: under one slot (%u bytes) to use", cfg->path, SLOT);
		return -EINVAL;
	}
	return set_direct(io, cfg->no_direct);
}

/* A path that does not exist yet: its directory takes the file. */
static int open_in_parent(struct upg_swap_io *io,
			  const struct upg_swap_io_config *cfg)
{
	char *dir = strdup(cfg->path);
	char *slash;
	int ret;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	ret = open_file(io, cfg, dir);
	free(dir);
	return ret;
}

static int open_store(struct upg_swap_io *io, const struct upg_swap_io_config *cfg)
{
	struct stat st;
	int ret;

	if (!stat(cfg->path, &st)) {
		if (S_ISDIR(st.st_mode))
			return open_file(io, cfg, cfg->path);
		if (S_ISBLK(st.st_mode))
			return open_device(io, cfg);
		if (S_ISREG(st.st_mode)) {
			upg_err("%s: a file is there and is never overwritten; "
				"give a directory or a new name", cfg->path);
			return -EEXIST;
		}
		upg_err("%s: neither a directory nor a block device", cfg->path);
		return -EINVAL;
	}
	ret = -errno;
	if (ret == -ENOENT)
		return open_in_parent(io, cfg);
	upg_err("cannot use %s: %s; %s", cfg->path, strerror(-ret), hint(ret));
	return ret;
}

/* ---- rings ----------------------------------------------------------- */

static int ring_init(struct io_uring *ring, unsigned int entries)
{
	int ret = io_uring_queue_init(entries, ring, 0);

	if (ret)
		upg_err("cannot set up io_uring: %s%s", strerror(-ret),
			ret == -EPERM ? "; see kernel.io_uring_disabled" : "");
	return ret;
}

/*
 * Registration pins the pages; it can be refused (RLIMIT_MEMLOCK without
 * CAP_IPC_LOCK, memory of a file mapping). Plain writes work the same, a
 * little slower, so that is a warning, not a failure.
 */
static void register_fixed(struct upg_swap_io *io, void *buf, size_t len)
{
	size_t nr = (size_t)round_up(len, FIXED_CHUNK) / FIXED_CHUNK;
	struct iovec *iov = calloc(nr, sizeof(*iov));
	int ret = -ENOMEM;

	if (iov) {
		for (size_t i = 0; i < nr; i++) {
			iov[i].iov_base = (char *)buf + i * FIXED_CHUNK;
			iov[i].iov_len = i + 1 < nr ? FIXED_CHUNK
						    : len - i * FIXED_CHUNK;
		}
		ret = io_uring_register_buffers(&io->wring, iov, (unsigned int)nr);
		free(iov);
	}
	if (ret) {
		upg_warn("cannot register the writer's buffers: %s; writing "
			 "without", strerror(-ret));
		return;
	}
	io->fixed_base = buf;
	io->fixed_len = len;
}

static int writer_init(struct upg_swap_io *io, const struct upg_swap_io_config *cfg)
{
	int ret = ring_init(&io->wring, WRITER_ENTRIES);

	if (ret)
		return ret;
	for (unsigned int i = 0; i < MAX_WRITES; i++)
		io->free_wops[i] = (uint8_t)(MAX_WRITES - 1 - i);
	io->nr_free = MAX_WRITES;
	if (cfg->fixed_buf && cfg->fixed_len)
		register_fixed(io, cfg->fixed_buf, cfg->fixed_len);
	return 0;
}

static void readers_fini(struct upg_swap_io *io, unsigned int nr)
{
	for (unsigned int i = 0; i < nr; i++) {
		io_uring_queue_exit(&io->readers[i].ring);
		pthread_mutex_destroy(&io->readers[i].lock);
	}
}

/*
 * The read rings. Past MIN_READERS a ring the kernel refuses (out of fds,
 * or of locked memory before 5.12) only means fewer: reads then share.
 */
static int readers_init(struct upg_swap_io *io)
{
	for (unsigned int i = 0; i < io->nr_readers; i++) {
		int ret = ring_init(&io->readers[i].ring, READER_ENTRIES);

		if (ret && i >= MIN_READERS) {
			upg_warn("%s: %u read rings of %u (%s): reads will share them",
				 io->path, i, io->nr_readers, strerror(-ret));
			io->nr_readers = i;
			break;
		}
		if (ret) {
			readers_fini(io, i);
			return ret;
		}
		pthread_mutex_init(&io->readers[i].lock, NULL);
	}
	return 0;
}

int upg_swap_io_open(const struct upg_swap_io_config *cfg, struct upg_swap_io **out)
{
	unsigned int nr = cfg->readers < MIN_READERS ? MIN_READERS
			: cfg->readers > MAX_READERS ? MAX_READERS : cfg->readers;
	struct upg_swap_io *io;
	int ret;

	if (!cfg->path || !cfg->path[0]) {
		upg_err("no path for the swap store");
		return -EINVAL;
	}
	io = aligned_alloc(_Alignof(struct upg_swap_io),
			   sizeof(*io) + nr * sizeof(io->readers[0]));
	if (!io)
		return -ENOMEM;
	memset(io, 0, sizeof(*io) + nr * sizeof(io->readers[0]));
	io->nr_readers = nr;
	io->fd = -1;
	io->path = strdup(cfg->path);
	ret = -ENOMEM;
	if (!io->path)
		goto err_free;
	pthread_mutex_init(&io->grow_lock, NULL);
	ret = open_store(io, cfg);
	if (ret)
		goto err_close;
	ret = writer_init(io, cfg);
	if (ret)
		goto err_close;
	ret = readers_init(io);
	if (ret)
		goto err_writer;
	*out = io;
	return 0;

err_writer:
	if (io->fixed_base)
		io_uring_unregister_buffers(&io->wring);
	io_uring_queue_exit(&io->wring);
err_close:
	if (io->fd >= 0)
		close(io->fd);
	pthread_mutex_destroy(&io->grow_lock);
err_free:
	free(io->path);
	free(io);
	return ret;
}

uint64_t upg_swap_io_capacity(const struct upg_swap_io *io)
{
	return io->capacity;
}

bool upg_swap_io_is_direct(const struct upg_swap_io *io)
{
	return io->direct;
}

bool upg_swap_io_is_device(const struct upg_swap_io *io)
{
	return io->device;
}

/* ---- growth ---------------------------------------------------------- */

static int falloc_to(struct upg_swap_io *io, uint64_t end)
{
	int ret;

	do
		ret = fallocate(io->fd, 0, (off_t)io->grown,
				(off_t)(end - io->grown)) ? -errno : 0;
	while (ret == -EINTR);	/* tmpfs stops a long one for a signal */
	if (!ret)
		io->grown = end;
	return ret;
}

int upg_swap_io_grow(struct upg_swap_io *io, uint64_t bytes)
{
	uint64_t want = round_up(bytes, SLOT), end;
	int ret = 0;

	if (bytes > io->capacity)
		return -ENOSPC;
	if (io->device)
		return 0;
	pthread_mutex_lock(&io->grow_lock);
	if (want > io->grown) {
		end = round_up(bytes, EXTENT);
		if (end > io->capacity)
			end = io->capacity;
		ret = falloc_to(io, end);
		/*
		 * No room for a whole extent: take what was asked, so a
		 * nearly full filesystem still gives its last megabytes.
		 */
		if (ret == -ENOSPC && end > want)
			ret = falloc_to(io, want);
		if (ret && ret != -ENOSPC)
			upg_err("cannot grow the store in %s: %s", io->path,
				strerror(-ret));
	}
	pthread_mutex_unlock(&io->grow_lock);
	return ret;
}

/* ---- writes ---------------------------------------------------------- */

/* The next injected failure for reads or writes, or 0. */
static int take_failure(struct upg_swap_io *io, bool write)
{
	unsigned int n = atomic_load(&io->fail_count[write]);

	while (n && !atomic_compare_exchange_weak(&io->fail_count[write], &n,
						  n - 1))
		;
	return n ? atomic_load(&io->fail_err[write]) : 0;
}

static void prep_write(struct upg_swap_io *io, struct io_uring_sqe *sqe,
		       uint64_t off, const void *buf, size_t len)
{
	uintptr_t at = (uintptr_t)buf - (uintptr_t)io->fixed_base;

	/* Inside the registered memory and within one of its chunks. */
	if (io->fixed_base && (uintptr_t)buf >= (uintptr_t)io->fixed_base &&
	    len <= io->fixed_len && at <= io->fixed_len - len &&
	    at / FIXED_CHUNK == (at + len - 1) / FIXED_CHUNK)
		io_uring_prep_write_fixed(sqe, io->fd, buf, (unsigned int)len,
					  off, (int)(at / FIXED_CHUNK));
	else
		io_uring_prep_write(sqe, io->fd, buf, (unsigned int)len, off);
}

int upg_swap_io_write(struct upg_swap_io *io, uint64_t off, const void *buf,
		      size_t len, uint64_t tag)
{
	unsigned int nr_sqes = io->direct ? 1 : 2;
	struct io_uring_sqe *sqe;
	struct wop *w;
	uint64_t ud;
	int err;

	assert(off % SLOT == 0 && len % SLOT == 0 && len && len <= MAX_IO_LEN);
	assert(off <= io->capacity && len <= io->capacity - off);
	if (!io->nr_free || io_uring_sq_space_left(&io->wring) < nr_sqes)
		return -EBUSY;
	ud = (uint64_t)io->free_wops[--io->nr_free] << UD_SHIFT;
	w = &io->wops[ud >> UD_SHIFT];
	*w = (struct wop){ .tag = tag, .len = (uint32_t)len, .cqes_left = 1 };
	sqe = io_uring_get_sqe(&io->wring);
	err = take_failure(io, true);
	if (err) {
		/* Through the ring all the same, so it completes in order. */
		io_uring_prep_nop(sqe);
		w->len = 0;
		w->res = err;
	} else {
		prep_write(io, sqe, off, buf, len);
	}
	io_uring_sqe_set_data64(sqe, ud);
	if (err || io->direct)
		return 0;
	io_uring_sqe_set_flags(sqe, IOSQE_IO_LINK);
	sqe = io_uring_get_sqe(&io->wring);
	io_uring_prep_fsync(sqe, io->fd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data64(sqe, ud | UD_FSYNC);
	w->cqes_left = 2;
	return 0;
}

unsigned int upg_swap_io_pending(const struct upg_swap_io *io)
{
	return MAX_WRITES - io->nr_free;
}

/* Count one CQE to its write; true once the write is done. */
static bool write_cqe(struct upg_swap_io *io, const struct io_uring_cqe *cqe)
{
	struct wop *w = &io->wops[cqe->user_data >> UD_SHIFT];

	if (cqe->user_data & UD_FSYNC) {
		/* -ECANCELED after a failed write: keep the write's error. */
		if (!w->res)
			w->res = cqe->res;
	} else if (w->len) {
		if (cqe->res < 0)
			w->res = cqe->res;
		else if ((uint32_t)cqe->res != w->len)
			w->res = -EIO;
	}
	return --w->cqes_left == 0;
}

/* Take the CQEs there are, stopping before a write @done has no room for. */
static unsigned int reap(struct upg_swap_io *io, struct upg_swap_io_done *done,
			 unsigned int room)
{
	struct io_uring_cqe *cqe;
	unsigned int n = 0;
	uint8_t i;

	while (!io_uring_peek_cqe(&io->wring, &cqe)) {
		i = (uint8_t)(cqe->user_data >> UD_SHIFT);
		if (n == room && io->wops[i].cqes_left == 1)
			break;
		if (write_cqe(io, cqe)) {
			done[n].tag = io->wops[i].tag;
			done[n++].res = io->wops[i].res;
			io->free_wops[io->nr_free++] = i;
		}
		io_uring_cqe_seen(&io->wring, cqe);
	}
	return n;
}

int upg_swap_io_wait(struct upg_swap_io *io, struct upg_swap_io_done *done,
		     unsigned int max, unsigned int min_done)
{
	unsigned int n = 0, want = min_done;
	struct io_uring_cqe *cqe;
	int ret;

	/* Never wait for more than can come, or than @done can take. */
	if (want > upg_swap_io_pending(io))
		want = upg_swap_io_pending(io);
	if (want > max)
		want = max;
	do
		ret = io_uring_submit(&io->wring);
	while (ret == -EINTR);
	if (ret < 0)	/* The SQEs stay queued; the next call tries again. */
		return ret;
	for (;;) {
		n += reap(io, done + n, max - n);
		if (n >= want)
			return (int)n;
		ret = io_uring_wait_cqe(&io->wring, &cqe);
		if (ret < 0 && ret != -EINTR)
			return n ? (int)n : ret;
	}
}

/* ---- reads ----------------------------------------------------------- */

static struct reader *reader_get(struct upg_swap_io *io)
{
	unsigned int start = atomic_fetch_add_explicit(&io->next_reader, 1,
						       memory_order_relaxed);
	struct reader *r;

	for (unsigned int i = 0; i < io->nr_readers; i++) {
		r = &io->readers[(start + i) % io->nr_readers];
		if (!pthread_mutex_trylock(&r->lock))
			return r;
	}
	r = &io->readers[start % io->nr_readers];
	pthread_mutex_lock(&r->lock);
	return r;
}

static int ring_read(struct reader *r, int fd, uint64_t off, void *buf,
		     size_t len)
{
	/* The ring is empty between reads: there is always an SQE. */
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
	struct io_uring_cqe *cqe;
	uint64_t ud = UD_STALE;	/* an EINTR before any CQE loops again */
	int ret;

	io_uring_prep_read(sqe, fd, buf, (unsigned int)len, off);
	io_uring_sqe_set_data64(sqe, UD_READ);
	/*
	 * Submit and wait in one system call. Once the read is taken the
	 * call returns its count (1) whatever the wait did, so a negative
	 * return still means the SQE was not taken.
	 */
	do
		ret = io_uring_submit_and_wait(&r->ring, 1);
	while (ret == -EINTR || ret == -EAGAIN);
	if (ret < 0) {
		/*
		 * The kernel did not take it and the next submit on this
		 * ring would: make it a no-op, so it never writes into a
		 * buffer our caller has moved on from.
		 */
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, UD_STALE);
		return ret;
	}
	do {
		ret = io_uring_wait_cqe(&r->ring, &cqe);
		if (ret == -EINTR)
			continue;
		if (ret < 0)
			return ret;
		ud = cqe->user_data;
		ret = cqe->res;
		io_uring_cqe_seen(&r->ring, cqe);
	} while (ud != UD_READ);	/* a stale no-op's CQE: skip it */
	if (ret < 0)
		return ret;
	return (size_t)ret == len ? 0 : -EIO;
}

int upg_swap_io_read(struct upg_swap_io *io, uint64_t off, void *buf, size_t len)
{
	struct reader *r;
	int ret;

	assert(off % SLOT == 0 && len % SLOT == 0 && len && len <= MAX_IO_LEN);
	assert(off <= io->capacity && len <= io->capacity - off);
	ret = take_failure(io, false);
	if (ret)
		return ret;
	r = reader_get(io);
	ret = ring_read(r, io->fd, off, buf, len);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

/* ---- closing and tests ----------------------------------------------- */

void upg_swap_io_close(struct upg_swap_io *io)
{
	struct upg_swap_io_done done[16];
	int ret;

	if (!io)
		return;
	/* The ring must not outlive a write into its caller's buffers. */
	while (upg_swap_io_pending(io)) {
		ret = upg_swap_io_wait(io, done, 16, 1);
		if (ret < 0) {
			upg_err("%s: cannot drain the writes: %s", io->path,
				strerror(-ret));
			break;
		}
	}
	readers_fini(io, io->nr_readers);
	if (io->fixed_base)
		io_uring_unregister_buffers(&io->wring);
	io_uring_queue_exit(&io->wring);
	close(io->fd);
	pthread_mutex_destroy(&io->grow_lock);
	free(io->path);
	free(io);
}

void upg_swap_io_test_fail(struct upg_swap_io *io, bool write, int err,
			   unsigned int count)
{
	atomic_store(&io->fail_err[write], err);
	atomic_store(&io->fail_count[write], count);
}

int upg_swap_io_test_fd(const struct upg_swap_io *io)
{
	return io->fd;
}
