/*
 * The log sink: stderr by default, or the application's function. Messages
 * are formatted into a stack buffer, so logging never allocates.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

#include <upager/upager.h>
#include "log.h"

static upg_log_fn *_Atomic log_fn;
static void *_Atomic log_arg;
static _Atomic int log_level = UPG_LOG_WARN;

void upg_log_set_level(enum upg_log_level level)
{
	atomic_store(&log_level, (int)level);
}

UPG_API void upg_set_log_fn(upg_log_fn *fn, void *arg)
{
	atomic_store(&log_arg, arg);
	atomic_store(&log_fn, fn);
}

void upg_log(enum upg_log_level level, const char *fmt, ...)
{
	upg_log_fn *fn = atomic_load(&log_fn);
	char msg[512];
	va_list ap;

	if ((int)level > atomic_load(&log_level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (fn)
		fn((int)level, msg, atomic_load(&log_arg));
	else
		fprintf(stderr, "upager: %s\n", msg);
}
