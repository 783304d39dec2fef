/*
 * The swap store's I/O: the file or block device behind the tier, and the
 * only code that touches io_uring. Offsets and lengths are multiples of
 * 4096 (UPG_SLOT_SIZE); buffers are 4096-aligned.
 *
 * Writes come from one thread (the tier's writer), queued with
 * upg_swap_io_write() and submitted together by upg_swap_io_wait(), which
 * also reaps their completions; many slots go in one submit. Reads come
 * from any thread and are synchronous for their caller (a fault needs its
 * page): each takes one of a few small rings, so readers do not queue
 * behind the writer.
 */
#ifndef UPG_SWAP_IO_H
#define UPG_SWAP_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct upg_swap_io;

struct upg_swap_io_config {
	/*
	 * Where: an existing directory (the file is made in it), a path in
	 * an existing directory that does not exist yet (made in that
	 * directory; the name itself is never linked), or a block device.
	 * A file is opened O_TMPFILE, mode 0600, so no name ever exists and
	 * it goes when the last descriptor closes, SIGKILL included; where
	 * the filesystem refuses O_TMPFILE it is created 0600 under a
	 * unique name and unlinked at once. A block device is opened
	 * O_EXCL, so a mounted one or one in use as kernel swap is refused.
	 */
	const char *path;
	/*
	 * Most bytes to use: a file grows (fallocate) up to this in extents
	 * as upg_swap_io_grow() asks; a device is used up to its size or
	 * this, whichever is smaller (0: the whole device). A file needs it.
	 */
	uint64_t max_bytes;
	/*
	 * Memory the writer's buffers live in, registered with its ring:
	 * writes inside it go as fixed-buffer writes. May be NULL.
	 */
	void *fixed_buf;
	size_t fixed_len;
	/*
	 * Threads expected to read at once (the runtime's fault threads): a
	 * read ring for each, at least 4 and at most 64 (a ring is an fd).
	 */
	unsigned int readers;
	bool no_tmpfile;	/* tests: the create-and-unlink fallback */
	bool no_direct;		/* tests: buffered I/O, as without O_DIRECT */
};

/*
 * Open the store. 0, or a negative errno (logged with the path and what
 * to do): -EINVAL (no max_bytes for a file, a size under one slot, a
 * path that is neither of the three), -EEXIST (a file is there: never
 * overwritten), -EBUSY (a device mounted or in use), -ENOENT, -EACCES,
 * -EROFS, ... from the open itself.
 */
int upg_swap_io_open(const struct upg_swap_io_config *cfg, struct upg_swap_io **out);
void upg_swap_io_close(struct upg_swap_io *io);	/* NULL is fine */

/* Bytes usable: max_bytes, or the device's size. */
uint64_t upg_swap_io_capacity(const struct upg_swap_io *io);
/* O_DIRECT in use (else buffered, each batch followed by fdatasync). */
bool upg_swap_io_is_direct(const struct upg_swap_io *io);
bool upg_swap_io_is_device(const struct upg_swap_io *io);

/*
 * Make bytes [0, @bytes) writable: a file is grown with fallocate (in
 * extents of at least 64 MiB, at most capacity; just to @bytes when the
 * filesystem has no room for the extent). 0, or -ENOSPC (the filesystem
 * is full, or @bytes passes capacity), or another errno.
 */
int upg_swap_io_grow(struct upg_swap_io *io, uint64_t bytes);

/*
 * Writer thread only. Queue a write of @len bytes from @buf at @off; it
 * completes with @tag. Never blocks, never submits; -EBUSY when the queue
 * is full (call upg_swap_io_wait first).
 */
int upg_swap_io_write(struct upg_swap_io *io, uint64_t off, const void *buf,
		      size_t len, uint64_t tag);

struct upg_swap_io_done {
	uint64_t tag;
	int res;	/* 0, or a negative errno (a short write is -EIO) */
};

/*
 * Writer thread only. Submit what is queued, then wait for at least
 * @min_done completions (0: take what is there) and store up to @max of
 * them in @done. A write counts as done once its data is on the store
 * (buffered mode: after an fdatasync). Returns how many, or a negative
 * errno if the ring itself failed.
 */
int upg_swap_io_wait(struct upg_swap_io *io, struct upg_swap_io_done *done,
		     unsigned int max, unsigned int min_done);
/* Writes queued or in flight. */
unsigned int upg_swap_io_pending(const struct upg_swap_io *io);

/*
 * Any thread: read @len bytes at @off into @buf and wait for them.
 * 0, or a negative errno (-EIO for a short read).
 */
int upg_swap_io_read(struct upg_swap_io *io, uint64_t off, void *buf, size_t len);

/*
 * Tests: the next @count reads (@write false) or writes complete with
 * @err (a negative errno) without touching the store. @count 0 clears.
 */
void upg_swap_io_test_fail(struct upg_swap_io *io, bool write, int err,
			   unsigned int count);
/* Tests: the descriptor, to corrupt bytes on the store with pwrite(). */
int upg_swap_io_test_fd(const struct upg_swap_io *io);

#endif
