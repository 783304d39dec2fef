/*
 * upager-bench jobs: fio's INI shape and key names, parsed strictly. A typo
 * in a benchmark's budget or size must not quietly measure something else,
 * so a value that is not entirely what the key expects is an error that
 * names the file, the line and the key. One table describes every key; the
 * checks that involve more than one key (budget within one page..size, size
 * a multiple of bs) wait for bench_job_finish(), and the file parser blames
 * them on the line that set the key.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <upager/upager.h>

#include "job.h"

#define PAGE_SIZE_BYTES	4096u
#define BS_MIN		4096u		/* the region is paged in 4K pages */
#define BS_MAX		(2u << 20)	/* a huge page; more buys nothing */
#define NUMJOBS_MAX	1024u
#define DEFAULT_SEED	0x5eedu
#define ERR_MAX		512		/* room for "FILE:LINE: job NAME: " */

#define ARRAY_LEN(a)	(sizeof(a) / sizeof((a)[0]))

/* ---- names ---- */

static const char *const rw_names[] = {
	[BENCH_READ] = "read", [BENCH_WRITE] = "write",
	[BENCH_RANDREAD] = "randread", [BENCH_RANDWRITE] = "randwrite",
	[BENCH_RW] = "rw", [BENCH_RANDRW] = "randrw",
};

static const char *const content_names[] = {
	[BENCH_CONTENT_TEXT] = "text", [BENCH_CONTENT_RANDOM] = "random",
	[BENCH_CONTENT_ZERO] = "zero", [BENCH_CONTENT_MIXED] = "mixed",
};

static const char *const engine_names[] = {
	[BENCH_ENGINE_RAM] = "ram",
	[BENCH_ENGINE_KERNEL_ZRAM] = "kernel-zram",
	[BENCH_ENGINE_KERNEL_SWAPFILE] = "kernel-swapfile",
	[BENCH_ENGINE_UPAGER] = "upager",
};

const char *bench_rw_name(enum bench_rw rw)
{
	return (unsigned int)rw < ARRAY_LEN(rw_names) ? rw_names[rw] : "?";
}

const char *bench_content_name(enum bench_content c)
{
	return (unsigned int)c < ARRAY_LEN(content_names) ? content_names[c] : "?";
}

const char *bench_engine_name(enum bench_engine e)
{
	return (unsigned int)e < ARRAY_LEN(engine_names) ? engine_names[e] : "?";
}

int bench_engine_parse(const char *name, enum bench_engine *out)
{
	for (unsigned int e = 0; e < BENCH_NR_ENGINES; e++) {
		if (name && !strcmp(name, engine_names[e])) {
			*out = (enum bench_engine)e;
			return 0;
		}
	}
	return -EINVAL;
}

bool bench_rw_is_random(enum bench_rw rw)
{
	return rw == BENCH_RANDREAD || rw == BENCH_RANDWRITE || rw == BENCH_RANDRW;
}

/* ---- value syntax ---- */

/* Digits only: strtoull() would take " 5", "+5" and "-5" (as a huge one). */
static int parse_u64(const char *s, const char **end, uint64_t *out)
{
	unsigned long long v;
	char *e;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &e, 10);
	if (errno)
		return -EINVAL;
	*end = e;
	*out = v;
	return 0;
}

/* A finite decimal number, nothing before or after it. */
static int parse_double(const char *s, double *out)
{
	char *end;
	double v;

	if (!isdigit((unsigned char)*s) && *s != '.')
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !isfinite(v))
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_uint_range(const char *s, unsigned int min, unsigned int max,
			    unsigned int *out)
{
	const char *end;
	uint64_t v;

	if (parse_u64(s, &end, &v) || *end || v < min || v > max)
		return -EINVAL;
	*out = (unsigned int)v;
	return 0;
}

/* fio's time syntax: seconds, or a number with ms, s, m or h. */
static int parse_time_ms(const char *s, uint64_t *out)
{
	static const struct { const char *suffix; uint64_t ms; } units[] = {
		{ "", 1000 }, { "ms", 1 }, { "s", 1000 },
		{ "m", 60 * 1000 }, { "h", 60 * 60 * 1000 },
	};
	const char *end;
	uint64_t v;

	if (parse_u64(s, &end, &v))
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_LEN(units); i++) {
		if (strcasecmp(end, units[i].suffix))
			continue;
		if (v > UINT64_MAX / units[i].ms)
			return -EINVAL;
		*out = v * units[i].ms;
		return 0;
	}
	return -EINVAL;
}

/* The booleans STYLE.md lists; a bare flag (NULL) is true. */
/* A bare flag ("time_based") is true; a value reads as UPAGER_* booleans. */
static int parse_bool(const char *s, bool *out)
{
	if (!s) {
		*out = true;
		return 0;
	}
	return upg_parse_bool(s, out);
}

static int parse_name(const char *s, const char *const *names, size_t nr)
{
	for (size_t i = 0; i < nr; i++)
		if (names[i] && !strcmp(s, names[i]))
			return (int)i;
	return -1;
}

/* 3G, 1536M, 4K or plain bytes: the largest unit that is exact. */
static const char *fmt_size(uint64_t v, char *buf, size_t len)
{
	static const char units[] = "KMGT";
	int u = -1;

	while (v && u < 3 && !(v & 1023)) {
		v >>= 10;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%" PRIu64, v);
	else
		snprintf(buf, len, "%" PRIu64 "%c", v, units[u]);
	return buf;
}

static bool name_is_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n >= BENCH_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!isprint((unsigned char)*s))
			return false;
	return true;
}

/* ---- the keys ---- */

/*
 * A setter returns 0 or -EINVAL. It may write why into @why; if it does not,
 * the caller says "expected HELP". The key is added by the caller too.
 */
typedef int set_fn(struct bench_job *job, const char *value, char *why,
		   size_t len);

static int set_size(struct bench_job *job, const char *v, char *why, size_t len)
{
	uint64_t size;

	(void)why, (void)len;
	if (upg_parse_size(v, &size) || !size)
		return -EINVAL;
	job->size = size;
	return 0;
}

static int set_bs(struct bench_job *job, const char *v, char *why, size_t len)
{
	uint64_t bs;

	(void)why, (void)len;
	if (upg_parse_size(v, &bs) || bs < BS_MIN || bs > BS_MAX || (bs & (bs - 1)))
		return -EINVAL;
	job->bs = bs;
	return 0;
}

static int set_rw(struct bench_job *job, const char *v, char *why, size_t len)
{
	int i = parse_name(v, rw_names, ARRAY_LEN(rw_names));

	(void)why, (void)len;
	if (i < 0 && !strcmp(v, "readwrite"))
		i = BENCH_RW;	/* fio's other name for rw */
	if (i < 0)
		return -EINVAL;
	job->rw = (enum bench_rw)i;
	return 0;
}

static int set_rwmixread(struct bench_job *job, const char *v, char *why,
			 size_t len)
{
	(void)why, (void)len;
	return parse_uint_range(v, 0, 100, &job->rwmixread);
}

/* Is @p in range for @kind? Writes why not. Shared with the finish check. */
static bool dist_param_ok(enum bench_dist_kind kind, double p, char *why,
			  size_t len)
{
	switch (kind) {
	case BENCH_DIST_RANDOM:
		return true;
	case BENCH_DIST_ZIPF:
		if (p > 0 && p != 1.0)
			return true;
		snprintf(why, len, "zipf theta must be more than 0 and not 1, got %g", p);
		return false;
	case BENCH_DIST_PARETO:
		if (p > 0 && p < 1)
			return true;
		snprintf(why, len, "pareto h must be between 0 and 1 (exclusive), got %g", p);
		return false;
	case BENCH_DIST_NORMAL:
		if (p > 0 && p <= 100)
			return true;
		snprintf(why, len, "normal deviation is a %% of the range, more than 0 and at most 100, got %g", p);
		return false;
	}
	snprintf(why, len, "unknown distribution %d", (int)kind);
	return false;
}

static int set_dist(struct bench_job *job, const char *v, char *why, size_t len)
{
	static const char *const kinds[] = {
		[BENCH_DIST_RANDOM] = "random", [BENCH_DIST_ZIPF] = "zipf",
		[BENCH_DIST_PARETO] = "pareto", [BENCH_DIST_NORMAL] = "normal",
	};
	const char *colon = strchr(v, ':');
	char kind[16];
	double p = 0;
	int k;

	if (!colon) {
		if (strcmp(v, "random"))
			return -EINVAL;
		job->dist = BENCH_DIST_RANDOM;
		job->dist_param = 0;
		return 0;
	}
	if ((size_t)(colon - v) >= sizeof(kind))
		return -EINVAL;
	memcpy(kind, v, (size_t)(colon - v));
	kind[colon - v] = '\0';
	k = parse_name(kind, kinds, ARRAY_LEN(kinds));
	if (k <= BENCH_DIST_RANDOM || parse_double(colon + 1, &p))
		return -EINVAL;
	if (!dist_param_ok((enum bench_dist_kind)k, p, why, len))
		return -EINVAL;
	job->dist = (enum bench_dist_kind)k;
	job->dist_param = p;
	return 0;
}

static int set_numjobs(struct bench_job *job, const char *v, char *why,
		       size_t len)
{
	(void)why, (void)len;
	return parse_uint_range(v, 1, NUMJOBS_MAX, &job->numjobs);
}

static int set_runtime(struct bench_job *job, const char *v, char *why,
		       size_t len)
{
	(void)why, (void)len;
	return parse_time_ms(v, &job->runtime_ms);
}

static int set_ramp_time(struct bench_job *job, const char *v, char *why,
			 size_t len)
{
	(void)why, (void)len;
	return parse_time_ms(v, &job->ramp_ms);
}

static int set_time_based(struct bench_job *job, const char *v, char *why,
			  size_t len)
{
	(void)why, (void)len;
	return parse_bool(v, &job->time_based);
}

static int set_loops(struct bench_job *job, const char *v, char *why,
		     size_t len)
{
	(void)why, (void)len;
	return parse_uint_range(v, 1, UINT_MAX, &job->loops);
}

static int set_randseed(struct bench_job *job, const char *v, char *why,
			size_t len)
{
	unsigned long long seed;
	uint64_t seed64;
	const char *end;
	char *e;

	(void)why, (void)len;
	if (v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
		if (!isxdigit((unsigned char)v[2]))
			return -EINVAL;
		errno = 0;
		seed = strtoull(v + 2, &e, 16);
		if (errno || *e)
			return -EINVAL;
		job->seed = seed;
		return 0;
	}
	if (parse_u64(v, &end, &seed64) || *end)
		return -EINVAL;
	job->seed = seed64;
	return 0;
}

static int set_budget(struct bench_job *job, const char *v, char *why,
		      size_t len)
{
	size_t n = strlen(v);
	uint64_t bytes;
	double pct;

	if (n > 1 && v[n - 1] == '%') {
		char num[32];

		if (n - 1 >= sizeof(num))
			return -EINVAL;
		memcpy(num, v, n - 1);
		num[n - 1] = '\0';
		if (parse_double(num, &pct))
			return -EINVAL;
		if (!(pct > 0 && pct <= 100)) {
			snprintf(why, len, "a percentage of size must be more than 0 and at most 100, got '%s'", v);
			return -EINVAL;
		}
		job->budget_is_pct = true;
		job->budget_pct = pct;
		job->budget = 0;
		return 0;
	}
	if (upg_parse_size(v, &bytes))
		return -EINVAL;
	job->budget_is_pct = false;
	job->budget_pct = 0;
	job->budget = bytes;
	return 0;
}

static int set_content(struct bench_job *job, const char *v, char *why,
		       size_t len)
{
	int i = parse_name(v, content_names, ARRAY_LEN(content_names));

	(void)why, (void)len;
	if (i < 0)
		return -EINVAL;
	job->content = (enum bench_content)i;
	return 0;
}

static int set_engine(struct bench_job *job, const char *v, char *why,
		      size_t len)
{
	enum bench_engine e;

	(void)why, (void)len;
	if (bench_engine_parse(v, &e))
		return -EINVAL;
	job->engines = 1u << e;
	return 0;
}

static int set_name(struct bench_job *job, const char *v, char *why, size_t len)
{
	(void)why, (void)len;
	if (!name_is_ok(v))
		return -EINVAL;
	snprintf(job->name, sizeof(job->name), "%s", v);
	return 0;
}

struct key_desc {
	const char *name;
	const char *alias;	/* fio's other name for the key */
	set_fn *set;
	bool flag;		/* may be given without a value */
	const char *help;	/* what a value must be */
};

static const struct key_desc key_table[] = {
	/* name                 alias        setter          flag   expected value */
	{ "size",               NULL,        set_size,       false,
	  "a number of bytes, more than 0, with an optional K, M, G or T suffix (binary)" },
	{ "bs",                 "blocksize", set_bs,         false,
	  "a power of two from 4K to 2M (fio allows more, but the region is paged in 4K pages)" },
	{ "rw",                 "readwrite", set_rw,         false,
	  "read, write, randread, randwrite, rw (or readwrite) or randrw" },
	{ "rwmixread",          NULL,        set_rwmixread,  false,
	  "a whole percentage from 0 to 100" },
	{ "random_distribution", NULL,       set_dist,       false,
	  "random, zipf:THETA, pareto:H or normal:DEV" },
	{ "numjobs",            NULL,        set_numjobs,    false,
	  "a whole number from 1 to 1024" },
	{ "runtime",            NULL,        set_runtime,    false,
	  "a time: whole seconds, or a whole number with ms, s, m or h" },
	{ "ramp_time",          NULL,        set_ramp_time,  false,
	  "a time: whole seconds, or a whole number with ms, s, m or h" },
	{ "time_based",         NULL,        set_time_based, true,
	  "no value, or 1/0, on/off, yes/no, true/false" },
	{ "loops",              NULL,        set_loops,      false,
	  "a whole number, at least 1" },
	{ "randseed",           NULL,        set_randseed,   false,
	  "a whole number, decimal or 0x hex" },
	{ "budget",             NULL,        set_budget,     false,
	  "bytes with an optional K, M, G or T suffix, or a percentage of size such as 25%" },
	{ "content",            NULL,        set_content,    false,
	  "text, random, zero or mixed" },
	{ "engine",             NULL,        set_engine,     false,
	  "ram, kernel-zram, kernel-swapfile or upager" },
	{ "name",               NULL,        set_name,       false,
	  "1 to 63 printable characters" },
};

#define NR_KEYS	ARRAY_LEN(key_table)

static int key_index(const char *key)
{
	for (size_t i = 0; i < NR_KEYS; i++)
		if (!strcmp(key, key_table[i].name) ||
		    (key_table[i].alias && !strcmp(key, key_table[i].alias)))
			return (int)i;
	return -1;
}

static void vset_err(char *err, size_t len, const char *fmt, va_list ap)
{
	if (err && len)
		vsnprintf(err, len, fmt, ap);
}

static void set_err(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vset_err(err, len, fmt, ap);
	va_end(ap);
}

/* set_err() and -EINVAL, for the checks of a whole job. */
static int fail(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vset_err(err, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

void bench_job_defaults(struct bench_job *job)
{
	*job = (struct bench_job){
		.name = "cmdline",
		.size = 0,			/* must be given, as in fio */
		.bs = 4096,
		.rw = BENCH_READ,
		.rwmixread = 50,
		.dist = BENCH_DIST_RANDOM,
		.numjobs = 1,
		.loops = 1,
		.budget_is_pct = true,		/* 100%: no memory pressure */
		.budget_pct = 100,
		.content = BENCH_CONTENT_TEXT,
		.engines = 1u << BENCH_ENGINE_UPAGER,
		.seed = DEFAULT_SEED,
	};
}

/* bench_job_set(), also saying which key (table index) it set. */
static int set_key(struct bench_job *job, const char *key, const char *value,
		   int *idx, char *err, size_t err_len)
{
	char why[256] = "";
	int i = key_index(key);
	int ret;

	*idx = i;
	if (i < 0) {
		set_err(err, err_len, "%s: unknown key", key);
		return -ENOENT;
	}
	if (!value && !key_table[i].flag) {
		set_err(err, err_len, "%s: needs a value: %s", key, key_table[i].help);
		return -EINVAL;
	}
	ret = key_table[i].set(job, value, why, sizeof(why));
	if (ret && why[0])
		set_err(err, err_len, "%s: %s", key, why);
	else if (ret)
		set_err(err, err_len, "%s: expected %s, got '%s'", key,
			key_table[i].help, value);
	return ret;
}

int bench_job_set(struct bench_job *job, const char *key, const char *value,
		  char *err, size_t err_len)
{
	int idx;

	return set_key(job, key, value, &idx, err, err_len);
}

/* @budget's bytes, rounded down to a whole page. */
static uint64_t resolve_budget(const struct bench_job *job)
{
	uint64_t b = job->budget;

	if (job->budget_is_pct)
		b = (uint64_t)((double)job->size * job->budget_pct / 100.0);
	return b & ~(uint64_t)(PAGE_SIZE_BYTES - 1);
}

uint64_t bench_job_budget(const struct bench_job *job)
{
	return resolve_budget(job);
}

/* The single-key ranges again, for a job whose fields were set directly. */
static int check_fields(const struct bench_job *job, const char **blame,
			char *err, size_t len)
{
	char why[256];

	*blame = "bs";
	if (job->bs < BS_MIN || job->bs > BS_MAX || (job->bs & (job->bs - 1)))
		return fail(err, len, "bs: expected %s, got %" PRIu64,
			    key_table[key_index("bs")].help, job->bs);
	*blame = "rw";
	if ((unsigned int)job->rw >= ARRAY_LEN(rw_names))
		return fail(err, len, "rw: unknown mode %d", (int)job->rw);
	*blame = "rwmixread";
	if (job->rwmixread > 100)
		return fail(err, len, "rwmixread: %u is more than 100", job->rwmixread);
	*blame = "random_distribution";
	if (!dist_param_ok(job->dist, job->dist_param, why, sizeof(why)))
		return fail(err, len, "random_distribution: %s", why);
	*blame = "numjobs";
	if (job->numjobs < 1 || job->numjobs > NUMJOBS_MAX)
		return fail(err, len, "numjobs: must be from 1 to %u, got %u",
			    NUMJOBS_MAX, job->numjobs);
	*blame = "loops";
	if (job->loops < 1)
		return fail(err, len, "loops: must be at least 1");
	*blame = "content";
	if ((unsigned int)job->content >= ARRAY_LEN(content_names))
		return fail(err, len, "content: unknown content %d", (int)job->content);
	*blame = "engine";
	if (!job->engines || job->engines >> BENCH_NR_ENGINES)
		return fail(err, len, "engine: no engine, or an unknown one (set 0x%x)",
			    job->engines);
	*blame = "name";
	if (!name_is_ok(job->name))
		return fail(err, len, "name: expected %s",
			    key_table[key_index("name")].help);
	return 0;
}

/* bench_job_finish(), also saying which key is to blame for an error. */
static int finish(struct bench_job *job, const char **blame, char *err,
		  size_t len)
{
	char a[32], b[32];
	uint64_t budget;
	int ret;

	ret = check_fields(job, blame, err, len);
	if (ret)
		return ret;
	*blame = "size";
	if (!job->size)
		return fail(err, len, "size: not set (there is no default)");
	if (job->size % job->bs)
		return fail(err, len, "size: %s is not a multiple of bs (%s)",
			    fmt_size(job->size, a, sizeof(a)),
			    fmt_size(job->bs, b, sizeof(b)));
	*blame = "time_based";
	if (job->time_based && !job->runtime_ms)
		return fail(err, len, "time_based: needs a runtime");

	*blame = "budget";
	if (job->budget_is_pct && !(job->budget_pct > 0 && job->budget_pct <= 100))
		return fail(err, len, "budget: %g%% is not more than 0 and at most 100",
			    job->budget_pct);
	if (!job->budget_is_pct && job->budget > job->size)
		return fail(err, len, "budget: %s is more than size (%s)",
			    fmt_size(job->budget, a, sizeof(a)),
			    fmt_size(job->size, b, sizeof(b)));
	budget = resolve_budget(job);
	if (budget < PAGE_SIZE_BYTES && job->budget_is_pct)
		return fail(err, len, "budget: %g%% of size (%s) is less than one page (%u bytes)",
			    job->budget_pct, fmt_size(job->size, a, sizeof(a)),
			    PAGE_SIZE_BYTES);
	if (budget < PAGE_SIZE_BYTES)
		return fail(err, len, "budget: %s is less than one page (%u bytes)",
			    fmt_size(job->budget, a, sizeof(a)), PAGE_SIZE_BYTES);
	job->budget = budget;
	*blame = NULL;
	return 0;
}

int bench_job_finish(struct bench_job *job, char *err, size_t err_len)
{
	const char *blame;

	return finish(job, &blame, err, err_len);
}

/* ---- job files ---- */

/* Where a job's keys were set: a line of the file, the command line or not. */
#define SET_DEFAULT	0
#define SET_CMDLINE	(-1)

struct parsed_job {
	struct bench_job job;
	unsigned int line;		/* of its [section]; 0: command line */
	int where[NR_KEYS];		/* a line, SET_DEFAULT or SET_CMDLINE */
};

struct parser {
	const char *path;		/* NULL: the command line only */
	struct parsed_job global;
	struct parsed_job *jobs;
	size_t nr, cap;
	struct parsed_job *cur;		/* the section being read, or NULL */
	char *err;
	size_t err_len;
};

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/* Set @key on @pj, recording @where; an error gets no location yet. */
static int apply(struct parsed_job *pj, const char *key, const char *value,
		 int where, char *err, size_t len)
{
	int idx, ret;

	ret = set_key(&pj->job, key, value, &idx, err, len);
	if (!ret)
		pj->where[idx] = where;
	/* An unknown key is -ENOENT to bench_job_set()'s caller; here, a bad file. */
	return ret == -ENOENT ? -EINVAL : ret;
}

static int new_job(struct parser *p, const char *name, unsigned int line)
{
	struct parsed_job *pj;

	if (p->nr == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 8;

		pj = realloc(p->jobs, cap * sizeof(*pj));
		if (!pj) {
			set_err(p->err, p->err_len, "out of memory");
			return -ENOMEM;
		}
		p->jobs = pj;
		p->cap = cap;
	}
	pj = &p->jobs[p->nr++];
	*pj = p->global;		/* [global] so far, then the section's own */
	pj->line = line;
	snprintf(pj->job.name, sizeof(pj->job.name), "%s", name);
	p->cur = pj;
	return 0;
}

static int parse_section(struct parser *p, char *s, unsigned int line)
{
	char *end = strchr(s, ']');
	char *name;

	if (!end || *trim(end + 1)) {
		set_err(p->err, p->err_len, "%s:%u: expected [NAME] on its own",
			p->path, line);
		return -EINVAL;
	}
	*end = '\0';
	name = trim(s + 1);
	if (!strcmp(name, "global")) {
		p->cur = &p->global;
		return 0;
	}
	if (!name_is_ok(name)) {
		set_err(p->err, p->err_len, "%s:%u: [%s]: a job name is %s",
			p->path, line, name, key_table[key_index("name")].help);
		return -EINVAL;
	}
	return new_job(p, name, line);
}

static int parse_line(struct parser *p, char *s, unsigned int line)
{
	char msg[ERR_MAX], *eq, *key, *value = NULL;
	int ret;

	s[strcspn(s, ";#")] = '\0';	/* no value of ours has ; or # */
	s = trim(s);
	if (!*s)
		return 0;
	if (*s == '[')
		return parse_section(p, s, line);
	eq = strchr(s, '=');
	if (eq) {
		*eq = '\0';
		value = trim(eq + 1);
	}
	key = trim(s);
	if (!*key) {
		set_err(p->err, p->err_len, "%s:%u: no key before '='", p->path, line);
		return -EINVAL;
	}
	if (!p->cur) {
		set_err(p->err, p->err_len,
			"%s:%u: %s: before any section (put it under [global] or a [job])",
			p->path, line, key);
		return -EINVAL;
	}
	if (p->cur == &p->global && !strcmp(key, "name")) {
		/* Each section names its job, so a global name would be lost. */
		set_err(p->err, p->err_len, "%s:%u: name: only in a job section",
			p->path, line);
		return -EINVAL;
	}
	ret = apply(p->cur, key, value, (int)line, msg, sizeof(msg));
	if (ret)
		set_err(p->err, p->err_len, "%s:%u: %s", p->path, line, msg);
	return ret;
}

static int read_file(struct parser *p)
{
	unsigned int line = 0;
	char *buf = NULL;
	size_t cap = 0;
	FILE *f;
	int ret = 0;

	f = fopen(p->path, "r");
	if (!f) {
		ret = -errno;
		set_err(p->err, p->err_len, "%s: %s", p->path, strerror(-ret));
		return ret;
	}
	while (!ret && getline(&buf, &cap, f) >= 0)
		ret = parse_line(p, buf, ++line);
	if (!ret && ferror(f)) {
		ret = -EIO;
		set_err(p->err, p->err_len, "%s: read error", p->path);
	}
	if (!ret && !p->nr) {
		ret = -EINVAL;
		set_err(p->err, p->err_len, "%s: no job: only [global] or nothing", p->path);
	}
	free(buf);
	fclose(f);
	return ret;
}

/* "key=value" or a bare "key", onto every job. */
static int apply_overrides(struct parser *p, const char *const *overrides)
{
	char msg[ERR_MAX], buf[1024];
	int ret;

	for (; overrides && *overrides; overrides++) {
		char *eq, *value = NULL;

		if (strlen(*overrides) >= sizeof(buf)) {
			set_err(p->err, p->err_len, "command line: option too long");
			return -EINVAL;
		}
		strcpy(buf, *overrides);
		eq = strchr(buf, '=');
		if (eq) {
			*eq = '\0';
			value = eq + 1;
		}
		for (size_t i = 0; i < p->nr; i++) {
			ret = apply(&p->jobs[i], buf, value, SET_CMDLINE, msg, sizeof(msg));
			if (ret) {
				set_err(p->err, p->err_len, "command line: %s", msg);
				return ret;
			}
		}
	}
	return 0;
}

/* Finish every job; an error points at the line that set the key to blame. */
static int finish_all(struct parser *p)
{
	char msg[ERR_MAX];

	for (size_t i = 0; i < p->nr; i++) {
		struct parsed_job *pj = &p->jobs[i];
		const char *blame;
		int ret, where = SET_DEFAULT;

		ret = finish(&pj->job, &blame, msg, sizeof(msg));
		if (!ret)
			continue;
		if (blame && key_index(blame) >= 0)
			where = pj->where[key_index(blame)];
		if (!p->path)
			set_err(p->err, p->err_len, "command line: %s", msg);
		else if (where == SET_CMDLINE)
			set_err(p->err, p->err_len, "command line: job %s: %s",
				pj->job.name, msg);
		else
			set_err(p->err, p->err_len, "%s:%u: job %s: %s", p->path,
				where > 0 ? (unsigned int)where : pj->line,
				pj->job.name, msg);
		return ret;
	}
	return 0;
}

int bench_job_parse_file(const char *path, const char *const *overrides,
			 struct bench_job **jobs, size_t *nr_jobs,
			 char *err, size_t err_len)
{
	struct parser p = { .path = path, .err = err, .err_len = err_len };
	struct bench_job *out;
	int ret;

	bench_job_defaults(&p.global.job);
	if (path)
		ret = read_file(&p);
	else
		ret = new_job(&p, "cmdline", 0);
	if (!ret)
		ret = apply_overrides(&p, overrides);
	if (!ret)
		ret = finish_all(&p);
	if (ret)
		goto out;
	out = malloc(p.nr * sizeof(*out));
	if (!out) {
		set_err(err, err_len, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < p.nr; i++)
		out[i] = p.jobs[i].job;
	*jobs = out;
	*nr_jobs = p.nr;
out:
	free(p.jobs);
	return ret;
}
