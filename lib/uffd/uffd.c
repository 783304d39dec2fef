/*
 * Opening a userfaultfd, the API handshake and the range ioctls. Features
 * are probed on a throw-away fd (UFFDIO_API may be called once per fd), then
 * requested on the real one: what the kernel offers and the options allow.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define UPG_LOG_PREFIX "uffd: "
#include "../log.h"
#include "compat.h"
#include "uffd.h"

/* Without these a munmap/mremap of managed memory goes unseen (4.11+). */
#define REQUIRED_FEATURES (UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP)

static int uffd_ioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) < 0 ? -errno : 0;
}

static int open_devnode(void)
{
	int dev, fd;

	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -errno;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	fd = fd < 0 ? -errno : fd;
	close(dev);
	return fd;
}

static int open_syscall(void)
{
	long fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	return fd < 0 ? -errno : (int)fd;
}

/* Sets *@via_devnode to say which way worked. */
static int open_fd(bool try_devnode, bool *via_devnode)
{
	int fd = -ENOENT;

	*via_devnode = false;
	if (try_devnode) {
		fd = open_devnode();
		if (fd >= 0) {
			*via_devnode = true;
			return fd;
		}
	}
	fd = open_syscall();
	if (fd == -ENOSYS) {
		upg_err("the kernel has no userfaultfd (CONFIG_USERFAULTFD)");
	} else if (fd == -EPERM || fd == -EACCES) {
		upg_err("userfaultfd is not allowed for this process: give it "
			"read-write access to /dev/userfaultfd (e.g. a group and "
			"a udev rule), or set sysctl vm.unprivileged_userfaultfd=1, "
			"or grant CAP_SYS_PTRACE");
		fd = -EPERM;
	}
	return fd;
}

static int api_handshake(int fd, uint64_t features, uint64_t *offered)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int ret;

	ret = uffd_ioctl(fd, UFFDIO_API, &api);
	if (!ret && offered)
		*offered = api.features;
	return ret;
}

static bool have_pagemap_scan(void)
{
	struct pm_scan_arg arg = { .size = sizeof(arg) };
	int fd, ret;

	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	/* An empty range: 0 or EINVAL where the ioctl exists, ENOTTY where not. */
	ret = uffd_ioctl(fd, PAGEMAP_SCAN, &arg);
	close(fd);
	return ret == 0 || ret == -EINVAL;
}

static unsigned int usable_features(uint64_t offered, unsigned int allowed,
				    bool via_devnode)
{
	unsigned int f = UPG_FEAT_ZEROPAGE;	/* anonymous ranges always have it */

	if (via_devnode)
		f |= UPG_FEAT_DEVNODE;
	if (offered & UFFD_FEATURE_EVENT_REMOVE)
		f |= UPG_FEAT_EVENT_REMOVE;
	if (offered & UFFD_FEATURE_THREAD_ID)
		f |= UPG_FEAT_THREAD_ID;
	if (offered & UFFD_FEATURE_SIGBUS)
		f |= UPG_FEAT_SIGBUS;
	if (offered & UFFD_FEATURE_MOVE)
		f |= UPG_FEAT_MOVE;
	if (offered & UFFD_FEATURE_WP_ASYNC)
		f |= UPG_FEAT_WP_ASYNC;
	if (offered & UFFD_FEATURE_POISON)
		f |= UPG_FEAT_POISON;
	if (offered & UFFD_FEATURE_PAGEFAULT_FLAG_WP)
		f |= UPG_FEAT_WP;
	if (have_pagemap_scan())
		f |= UPG_FEAT_PAGEMAP_SCAN;
	return f & allowed;
}

static uint64_t kernel_request(unsigned int f, bool sigbus, bool bare)
{
	uint64_t req = REQUIRED_FEATURES;

	if (bare)	/* a staging area: pages moved in and out, no events */
		return UFFD_FEATURE_MOVE;

	if (f & UPG_FEAT_EVENT_REMOVE)
		req |= UFFD_FEATURE_EVENT_REMOVE;
	if (f & UPG_FEAT_THREAD_ID)
		req |= UFFD_FEATURE_THREAD_ID;
	if (f & UPG_FEAT_MOVE)
		req |= UFFD_FEATURE_MOVE;
	if (f & UPG_FEAT_POISON)
		req |= UFFD_FEATURE_POISON;
	if (f & UPG_FEAT_WP)
		req |= UFFD_FEATURE_PAGEFAULT_FLAG_WP;
	if (sigbus)
		req |= UFFD_FEATURE_SIGBUS;
	/* WP_ASYNC changes what a WP registration means: requested by its user. */
	return req;
}

static int init(struct upg_uffd *u, unsigned int allowed, bool sigbus, bool bare)
{
	bool via_devnode;
	uint64_t offered;
	void *zeros;
	int fd, ret;

	fd = open_fd(allowed & UPG_FEAT_DEVNODE, &via_devnode);
	if (fd < 0)
		return fd;
	ret = api_handshake(fd, 0, &offered);
	close(fd);
	if (ret) {
		upg_err("UFFDIO_API: %s", strerror(-ret));
		return ret;
	}
	if ((offered & REQUIRED_FEATURES) != REQUIRED_FEATURES) {
		upg_err("the kernel lacks UFFD_FEATURE_EVENT_UNMAP/REMAP (4.11+)");
		return -EOPNOTSUPP;
	}
	u->features = usable_features(offered, allowed, via_devnode);
	if (sigbus && !(u->features & UPG_FEAT_SIGBUS)) {
		upg_err("fault_mode=sigbus needs UFFD_FEATURE_SIGBUS (4.14+)");
		return -EOPNOTSUPP;
	}
	zeros = mmap(NULL, UPG_FILL_MAX, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (zeros == MAP_FAILED)
		return -errno;
	if (bare && !(u->features & UPG_FEAT_MOVE)) {
		ret = -EOPNOTSUPP;
		goto err_unmap;
	}
	fd = open_fd(via_devnode, &via_devnode);
	if (fd < 0) {
		ret = fd;
		goto err_unmap;
	}
	ret = api_handshake(fd, kernel_request(u->features, sigbus, bare), NULL);
	if (ret) {
		upg_err("UFFDIO_API with features: %s", strerror(-ret));
		goto err_close;
	}
	u->fd = fd;
	u->kernel_features = offered;
	u->zeros = zeros;
	return 0;

err_close:
	close(fd);
err_unmap:
	munmap(zeros, UPG_FILL_MAX);
	return ret;
}

int upg_uffd_init(struct upg_uffd *u, unsigned int allowed, bool sigbus)
{
	return init(u, allowed, sigbus, false);
}

int upg_uffd_init_staging(struct upg_uffd *u, unsigned int allowed)
{
	return init(u, allowed, false, true);
}

void upg_uffd_fini(struct upg_uffd *u)
{
	if (!u || !u->zeros)
		return;
	close(u->fd);
	munmap((void *)u->zeros, UPG_FILL_MAX);
	u->zeros = NULL;
}

int upg_uffd_register(struct upg_uffd *u, uintptr_t start, size_t len, bool wp)
{
	struct uffdio_register reg = {
		.mode = UFFDIO_REGISTER_MODE_MISSING | (wp ? UFFDIO_REGISTER_MODE_WP : 0),
		.range = { .start = start, .len = len } };
	int ret;

	ret = uffd_ioctl(u->fd, UFFDIO_REGISTER, &reg);
	if (ret)
		return ret;
	if (!(reg.ioctls & (1ull << _UFFDIO_ZEROPAGE)))
		__atomic_fetch_and(&u->features, ~(unsigned int)UPG_FEAT_ZEROPAGE,
				   __ATOMIC_RELAXED);
	return 0;
}

int upg_uffd_unregister(struct upg_uffd *u, uintptr_t start, size_t len)
{
	struct uffdio_range range = { .start = start, .len = len };

	return uffd_ioctl(u->fd, UFFDIO_UNREGISTER, &range);
}

/*
 * The kernel reports bytes done, or -errno, in the struct's last field; the
 * ioctl itself fails with -EAGAIN when it stopped part-way.
 */
static int fill_result(int ret, int64_t result, size_t *done)
{
	if (result > 0) {
		*done = (size_t)result;
		return ret ? -EEXIST : 0;	/* stopped at a mapped page */
	}
	*done = 0;
	return result < 0 ? (int)result : ret;
}

int upg_uffd_fill_zero(struct upg_uffd *u, uintptr_t start, size_t len,
		       bool write, size_t *done)
{
	int ret;

	if (!write && (__atomic_load_n(&u->features, __ATOMIC_RELAXED) & UPG_FEAT_ZEROPAGE)) {
		struct uffdio_zeropage zp = { .range = { .start = start, .len = len } };

		ret = uffd_ioctl(u->fd, UFFDIO_ZEROPAGE, &zp);
		return fill_result(ret, zp.zeropage, done);
	}
	struct uffdio_copy copy = { .dst = start, .src = (uintptr_t)u->zeros,
				    .len = len };

	ret = uffd_ioctl(u->fd, UFFDIO_COPY, &copy);
	return fill_result(ret, copy.copy, done);
}

int upg_uffd_wake(struct upg_uffd *u, uintptr_t start, size_t len)
{
	struct uffdio_range range = { .start = start, .len = len };

	return uffd_ioctl(u->fd, UFFDIO_WAKE, &range);
}

int upg_uffd_fill_copy(struct upg_uffd *u, uintptr_t start, size_t len,
		       const void *src, bool wp, size_t *done)
{
	struct uffdio_copy copy = { .dst = start, .src = (uintptr_t)src, .len = len,
				    .mode = wp ? UFFDIO_COPY_MODE_WP : 0 };
	int ret;

	ret = uffd_ioctl(u->fd, UFFDIO_COPY, &copy);
	return fill_result(ret, copy.copy, done);
}

int upg_uffd_move(struct upg_uffd *u, uintptr_t dst, uintptr_t src, size_t len,
		  size_t *done)
{
	struct uffdio_move mv = { .dst = dst, .src = src, .len = len,
				  .mode = UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES };
	int ret;

	ret = uffd_ioctl(u->fd, UFFDIO_MOVE, &mv);
	if (mv.move > 0) {
		*done = (size_t)mv.move;
		return ret;
	}
	*done = 0;
	return mv.move < 0 ? (int)mv.move : ret;
}

int upg_uffd_writeprotect(struct upg_uffd *u, uintptr_t start, size_t len, bool wp)
{
	struct uffdio_writeprotect w = { .range = { .start = start, .len = len },
					 .mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0 };

	return uffd_ioctl(u->fd, UFFDIO_WRITEPROTECT, &w);
}

int upg_uffd_poison(struct upg_uffd *u, uintptr_t start, size_t len)
{
	struct uffdio_poison p = { .range = { .start = start, .len = len } };

	if (!(__atomic_load_n(&u->features, __ATOMIC_RELAXED) & UPG_FEAT_POISON))
		return -EOPNOTSUPP;
	return uffd_ioctl(u->fd, UFFDIO_POISON, &p);
}
