/*
 * fault_mode=sigbus: with UFFD_FEATURE_SIGBUS the kernel raises SIGBUS in
 * the faulting thread instead of queueing a message, and the thread fills
 * its own fault from the signal handler. No wake-up crosses CPUs, which
 * halves the cost here, but a kernel-mode access (read(2) into a missing
 * page) gets EFAULT: hence opt-in only.
 *
 * The handler takes rt->lock shared. That is safe because no library code
 * touches managed memory while holding anything, so a SIGBUS can never
 * interrupt a holder of the lock in the same thread. One runtime at a time
 * owns the handler; SIGBUS for other addresses goes to the previous one.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <ucontext.h>

#define UPG_LOG_PREFIX "sigbus: "
#include "core.h"
#include "log.h"

static struct upg_runtime *_Atomic sigbus_rt;
static struct sigaction old_action;
static pthread_mutex_t attach_lock = PTHREAD_MUTEX_INITIALIZER;

static bool is_write_fault(const ucontext_t *uc)
{
#if defined(__x86_64__)
	/* Page-fault error code: bit 1 is set for a write. */
	return uc->uc_mcontext.gregs[REG_ERR] & 2;
#else
	(void)uc;
	return true;	/* a write fill is right for reads too, just slower */
#endif
}

static void chain(int sig, siginfo_t *si, void *uc)
{
	if (old_action.sa_flags & SA_SIGINFO) {
		old_action.sa_sigaction(sig, si, uc);
	} else if (old_action.sa_handler != SIG_DFL &&
		   old_action.sa_handler != SIG_IGN) {
		old_action.sa_handler(sig);
	} else {
		/* Returning re-runs the access, which now dies as it should. */
		signal(SIGBUS, SIG_DFL);
	}
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	struct upg_runtime *rt = atomic_load(&sigbus_rt);
	uintptr_t addr = (uintptr_t)si->si_addr;
	int saved_errno = errno;
	struct upg_counters *c;
	uint64_t t0;

	if (!rt || si->si_code != BUS_ADRERR) {
		chain(sig, si, uc);
		return;
	}
	c = upg_shared_counters(rt);
	t0 = upg_now_ns();
	/* One lookup: not ours means someone else's SIGBUS. */
	upg_fault_tid = (uint32_t)gettid();
	if (!upg_fault_handle(rt, c, addr, is_write_fault(uc) ? UPG_FH_WRITE : 0)) {
		upg_fault_tid = 0;
		errno = saved_errno;
		chain(sig, si, uc);
		return;
	}
	upg_fault_tid = 0;
	upg_lat_record(c, upg_now_ns() - t0);
	errno = saved_errno;
}

int upg_sigbus_attach(struct upg_runtime *rt)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus,
		/* NODEFER: a handler of another signal may touch managed memory. */
		.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART };
	int ret = 0;

	pthread_mutex_lock(&attach_lock);
	if (atomic_load(&sigbus_rt)) {
		upg_err("another runtime already uses fault_mode=sigbus");
		ret = -EBUSY;
		goto out;
	}
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &old_action)) {
		ret = -errno;
		goto out;
	}
	atomic_store(&sigbus_rt, rt);
out:
	pthread_mutex_unlock(&attach_lock);
	return ret;
}

void upg_sigbus_detach(struct upg_runtime *rt)
{
	pthread_mutex_lock(&attach_lock);
	if (atomic_load(&sigbus_rt) == rt) {
		atomic_store(&sigbus_rt, NULL);
		sigaction(SIGBUS, &old_action, NULL);
	}
	pthread_mutex_unlock(&attach_lock);
}
