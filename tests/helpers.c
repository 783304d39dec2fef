/* Shared test helpers. */
#include <criterion/criterion.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

unsigned int t_pager_features = UPG_FEAT_ALL;

void t_copy_out_mode(void)
{
	t_pager_features = UPG_FEAT_ALL & ~UPG_FEAT_MOVE;
}

char t_swap_dir[64];

void t_swap_mode(void)
{
	strcpy(t_swap_dir, "/tmp/upager-test-swap-XXXXXX");
	cr_assert_not_null(mkdtemp(t_swap_dir));
}

void t_swap_mode_end(void)
{
	/* The store's file never had a name: the directory is empty. */
	if (t_swap_dir[0])
		cr_assert_eq(rmdir(t_swap_dir), 0, "%s: %s", t_swap_dir, strerror(errno));
}

void t_options_default(struct upg_options *o)
{
	extern char **environ;
	char **saved = environ;
	char *empty[] = { NULL };

	/* Tests must not depend on the caller's UPAGER_* variables. */
	environ = empty;
	cr_assert_eq(upg_options_init(o), 0);
	environ = saved;
}

struct upg_runtime *t_runtime_create_opts(const struct upg_options *opts)
{
	struct upg_runtime *rt = NULL;
	struct upg_options o = *opts;
	int ret;

	if (t_swap_dir[0] && (o.budget || o.budget_total) && !o.swap[0]) {
		size_t budget = o.budget ? o.budget : o.budget_total;

		strcpy(o.swap, t_swap_dir);
		o.swap_size = 1ul << 30;
		if (!o.zpool_max)
			o.zpool_max = budget / 8 < (64 << 10) ? 64 << 10 : budget / 8;
	}
	ret = upg_runtime_create(&o, &rt);

	if (ret == -EPERM || ret == -ENOSYS)
		cr_skip_test("userfaultfd not available here: %s", strerror(-ret));
	cr_assert_eq(ret, 0, "upg_runtime_create: %s", strerror(-ret));
	return rt;
}

struct upg_runtime *t_runtime_create(size_t block_size, unsigned int features)
{
	struct upg_options o;

	t_options_default(&o);
	o.block_size = block_size;
	o.features = features;
	return t_runtime_create_opts(&o);
}

struct upg_region *t_region_create(struct upg_runtime *rt, size_t len)
{
	struct upg_region *r = NULL;

	cr_assert_eq(upg_region_create(rt, len, &r), 0);
	return r;
}

static sigjmp_buf bus_jump;

static void on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(bus_jump, 1);
}

bool t_read_faults(const volatile uint8_t *p)
{
	struct sigaction sa = { .sa_handler = on_sigbus }, old;
	bool bus = false;

	sigaction(SIGBUS, &sa, &old);
	if (sigsetjmp(bus_jump, 1) == 0)
		(void)*p;
	else
		bus = true;
	sigaction(SIGBUS, &old, NULL);
	return bus;
}

void t_page_fill(void *page, size_t page_nr, unsigned int seed)
{
	uint8_t *p = page;

	for (size_t i = 0; i < T_PAGE; i++)
		p[i] = t_pattern(page_nr, i, seed);
}

int t_page_check(const void *page, size_t page_nr, unsigned int seed)
{
	const uint8_t *p = page;

	for (size_t i = 0; i < T_PAGE; i++)
		if (p[i] != t_pattern(page_nr, i, seed))
			return 0;
	return 1;
}

int t_page_is_zero(const void *page)
{
	const uint64_t *p = page;

	for (size_t i = 0; i < T_PAGE / sizeof(*p); i++)
		if (p[i])
			return 0;
	return 1;
}

void t_stats(struct upg_runtime *rt, struct upg_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->size = sizeof(*st);
	cr_assert_eq(upg_stats_get(rt, st), 0);
}

void t_stats_settled(struct upg_runtime *rt, struct upg_stats *st)
{
	struct upg_stats *prev = malloc(sizeof(*prev));

	/* Fault threads bump their counters after the fill has woken us. */
	t_stats(rt, prev);
	for (int i = 0; i < 200; i++) {
		usleep(10000);
		t_stats(rt, st);
		if (!memcmp(prev, st, offsetof(struct upg_stats, fault_ns_p50)))
			break;
		memcpy(prev, st, sizeof(*st));
	}
	free(prev);
}

static char log_buf[16384];
static size_t log_used;

static void capture(int level, const char *msg, void *arg)
{
	size_t n = strlen(msg);

	(void)level;
	(void)arg;
	if (log_used + n + 2 < sizeof(log_buf)) {
		memcpy(log_buf + log_used, msg, n);
		log_used += n;
		log_buf[log_used++] = '\n';
		log_buf[log_used] = '\0';
	}
}

void t_log_capture(void)
{
	log_used = 0;
	log_buf[0] = '\0';
	upg_set_log_fn(capture, NULL);
}

int t_log_contains(const char *needle)
{
	return strstr(log_buf, needle) != NULL;
}
