/*
 * upager-bench jobs: every key with good values (and the exact fields they
 * give) and bad ones (the exact code and the key named in the message),
 * the whole-job checks of bench_job_finish(), and job files: [global]
 * inheritance, the order global < section < command line, comments, and
 * errors that carry the file, the line and the key (issue 3).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "job.h"

#define ARRAY_LEN(a)	(sizeof(a) / sizeof((a)[0]))

TestSuite(bench_job, .timeout = 10);

static char err[1024];

/* Defaults, then @key=@value, which must be accepted. */
static struct bench_job job_with(const char *key, const char *value)
{
	struct bench_job j;
	int ret;

	bench_job_defaults(&j);
	ret = bench_job_set(&j, key, value, err, sizeof(err));
	cr_assert_eq(ret, 0, "%s=%s: %d, %s", key, value ? value : "(flag)", ret, err);
	return j;
}

/* A job with size set, so bench_job_finish() can pass. */
static struct bench_job sized(const char *size)
{
	return job_with("size", size);
}

static void set_ok(struct bench_job *j, const char *key, const char *value)
{
	int ret = bench_job_set(j, key, value, err, sizeof(err));

	cr_assert_eq(ret, 0, "%s=%s: %d, %s", key, value, ret, err);
}

/* ---- job files, written to /tmp ---- */

static char path[64];

static void write_file(const char *text)
{
	int fd;

	snprintf(path, sizeof(path), "/tmp/bench_job_XXXXXX");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static int parse(const char *text, const char *const *overrides,
		 struct bench_job **jobs, size_t *nr)
{
	int ret;

	write_file(text);
	*jobs = NULL;
	*nr = 0;
	err[0] = '\0';
	ret = bench_job_parse_file(path, overrides, jobs, nr, err, sizeof(err));
	unlink(path);
	return ret;
}

/* Parse @text, which must fail with -EINVAL; err must begin "PATH@where". */
static void parse_fails(const char *text, const char *const *overrides,
			const char *where)
{
	struct bench_job *jobs;
	char want[256];
	size_t nr;
	int ret;

	ret = parse(text, overrides, &jobs, &nr);
	cr_assert_eq(ret, -EINVAL, "ret %d, err '%s'", ret, err);
	cr_assert_null(jobs);
	snprintf(want, sizeof(want), "%s%s", path, where);
	cr_assert_eq(strncmp(err, want, strlen(want)), 0,
		     "err '%s' does not begin '%s'", err, want);
}

static void assert_err_is(const char *fmt_after_path)
{
	char want[512];

	snprintf(want, sizeof(want), "%s%s", path, fmt_after_path);
	cr_assert_str_eq(err, want);
}

/* ---- defaults and names ---- */

Test(bench_job, defaults_are_fios_plus_ours)
{
	struct bench_job j;

	memset(&j, 0xa5, sizeof(j));
	bench_job_defaults(&j);
	cr_assert_str_eq(j.name, "cmdline");
	cr_assert_eq(j.size, 0);
	cr_assert_eq(j.bs, 4096);
	cr_assert_eq(j.rw, BENCH_READ);
	cr_assert_eq(j.rwmixread, 50);
	cr_assert_eq(j.dist, BENCH_DIST_RANDOM);
	cr_assert_eq(j.numjobs, 1);
	cr_assert_eq(j.runtime_ms, 0);
	cr_assert_eq(j.ramp_ms, 0);
	cr_assert_eq(j.time_based, false);
	cr_assert_eq(j.loops, 1);
	cr_assert_eq(j.budget_is_pct, true);
	cr_assert_float_eq(j.budget_pct, 100.0, 1e-9);
	cr_assert_eq(j.content, BENCH_CONTENT_TEXT);
	cr_assert_eq(j.engines, 1u << BENCH_ENGINE_UPAGER);
	cr_assert_eq(j.seed, 0x5eed);
}

Test(bench_job, names_round_trip)
{
	static const char *const rw[] = { "read", "write", "randread",
		"randwrite", "rw", "randrw" };
	static const char *const content[] = { "text", "random", "zero", "mixed" };
	static const char *const engines[] = { "ram", "kernel-zram",
		"kernel-swapfile", "upager" };
	enum bench_engine e;

	for (unsigned int i = 0; i < ARRAY_LEN(rw); i++)
		cr_assert_str_eq(bench_rw_name((enum bench_rw)i), rw[i]);
	for (unsigned int i = 0; i < ARRAY_LEN(content); i++)
		cr_assert_str_eq(bench_content_name((enum bench_content)i), content[i]);
	cr_assert_eq(ARRAY_LEN(engines), BENCH_NR_ENGINES);
	for (unsigned int i = 0; i < BENCH_NR_ENGINES; i++) {
		cr_assert_str_eq(bench_engine_name((enum bench_engine)i), engines[i]);
		e = BENCH_NR_ENGINES;
		cr_assert_eq(bench_engine_parse(engines[i], &e), 0);
		cr_assert_eq(e, (enum bench_engine)i);
	}
	cr_assert_str_eq(bench_rw_name((enum bench_rw)99), "?");
	cr_assert_str_eq(bench_engine_name(BENCH_NR_ENGINES), "?");
}

Test(bench_job, engine_parse_refuses_unknown_names)
{
	enum bench_engine e = BENCH_ENGINE_RAM;

	cr_assert_eq(bench_engine_parse("zram", &e), -EINVAL);
	cr_assert_eq(bench_engine_parse("", &e), -EINVAL);
	cr_assert_eq(bench_engine_parse("kernel", &e), -EINVAL);
	cr_assert_eq(e, BENCH_ENGINE_RAM);
}

Test(bench_job, only_rand_modes_are_random)
{
	cr_assert(!bench_rw_is_random(BENCH_READ));
	cr_assert(!bench_rw_is_random(BENCH_WRITE));
	cr_assert(!bench_rw_is_random(BENCH_RW));
	cr_assert(bench_rw_is_random(BENCH_RANDREAD));
	cr_assert(bench_rw_is_random(BENCH_RANDWRITE));
	cr_assert(bench_rw_is_random(BENCH_RANDRW));
}

/* ---- good values, key by key ---- */

Test(bench_job, size_takes_bytes_and_binary_suffixes)
{
	static const struct { const char *v; uint64_t bytes; } cases[] = {
		{ "4096", 4096 }, { "64K", 64 << 10 }, { "64k", 64 << 10 },
		{ "64KiB", 64 << 10 }, { "64kb", 64 << 10 }, { "2M", 2 << 20 },
		{ "3g", 3ull << 30 }, { "2GiB", 2ull << 30 }, { "1T", 1ull << 40 },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		cr_assert_eq(job_with("size", cases[i].v).size, cases[i].bytes,
			     "size=%s", cases[i].v);
}

Test(bench_job, bs_takes_powers_of_two_from_4k_to_2m)
{
	cr_assert_eq(job_with("bs", "4K").bs, 4096);
	cr_assert_eq(job_with("bs", "4096").bs, 4096);
	cr_assert_eq(job_with("bs", "64k").bs, 64 << 10);
	cr_assert_eq(job_with("bs", "2M").bs, 2 << 20);
	cr_assert_eq(job_with("blocksize", "8K").bs, 8 << 10);	/* fio's alias */
}

Test(bench_job, rw_takes_every_fio_mode)
{
	static const struct { const char *v; enum bench_rw rw; } cases[] = {
		{ "read", BENCH_READ }, { "write", BENCH_WRITE },
		{ "randread", BENCH_RANDREAD }, { "randwrite", BENCH_RANDWRITE },
		{ "rw", BENCH_RW }, { "readwrite", BENCH_RW },
		{ "randrw", BENCH_RANDRW },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		cr_assert_eq(job_with("rw", cases[i].v).rw, cases[i].rw,
			     "rw=%s", cases[i].v);
	cr_assert_eq(job_with("readwrite", "randwrite").rw, BENCH_RANDWRITE);
}

Test(bench_job, rwmixread_takes_0_to_100)
{
	cr_assert_eq(job_with("rwmixread", "0").rwmixread, 0);
	cr_assert_eq(job_with("rwmixread", "30").rwmixread, 30);
	cr_assert_eq(job_with("rwmixread", "100").rwmixread, 100);
}

Test(bench_job, random_distribution_takes_each_kind_and_parameter)
{
	static const struct {
		const char *v;
		enum bench_dist_kind kind;
		double param;
	} cases[] = {
		{ "random", BENCH_DIST_RANDOM, 0 },
		{ "zipf:0.99", BENCH_DIST_ZIPF, 0.99 },
		{ "zipf:1.2", BENCH_DIST_ZIPF, 1.2 },
		{ "pareto:0.5", BENCH_DIST_PARETO, 0.5 },
		{ "normal:20", BENCH_DIST_NORMAL, 20 },
		{ "normal:100", BENCH_DIST_NORMAL, 100 },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct bench_job j = job_with("random_distribution", "zipf:0.5");

		set_ok(&j, "random_distribution", cases[i].v);
		cr_assert_eq(j.dist, cases[i].kind, "%s", cases[i].v);
		cr_assert_float_eq(j.dist_param, cases[i].param, 1e-12, "%s", cases[i].v);
	}
}

Test(bench_job, numjobs_takes_1_to_1024)
{
	cr_assert_eq(job_with("numjobs", "1").numjobs, 1);
	cr_assert_eq(job_with("numjobs", "8").numjobs, 8);
	cr_assert_eq(job_with("numjobs", "1024").numjobs, 1024);
}

Test(bench_job, runtime_and_ramp_time_take_fio_time_syntax)
{
	static const struct { const char *v; uint64_t ms; } cases[] = {
		{ "30", 30000 }, { "0", 0 }, { "500ms", 500 }, { "10s", 10000 },
		{ "2m", 120000 }, { "1h", 3600000 }, { "5S", 5000 },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		cr_assert_eq(job_with("runtime", cases[i].v).runtime_ms, cases[i].ms,
			     "runtime=%s", cases[i].v);
		cr_assert_eq(job_with("ramp_time", cases[i].v).ramp_ms, cases[i].ms,
			     "ramp_time=%s", cases[i].v);
	}
}

Test(bench_job, time_based_is_a_flag_or_a_boolean)
{
	struct bench_job j = job_with("time_based", NULL);

	cr_assert_eq(j.time_based, true);
	set_ok(&j, "time_based", "0");
	cr_assert_eq(j.time_based, false);
	set_ok(&j, "time_based", "1");
	cr_assert_eq(j.time_based, true);
	set_ok(&j, "time_based", "off");
	cr_assert_eq(j.time_based, false);
	set_ok(&j, "time_based", "yes");
	cr_assert_eq(j.time_based, true);
}

Test(bench_job, loops_takes_one_or_more)
{
	cr_assert_eq(job_with("loops", "1").loops, 1);
	cr_assert_eq(job_with("loops", "7").loops, 7);
}

Test(bench_job, randseed_takes_decimal_and_hex)
{
	cr_assert_eq(job_with("randseed", "42").seed, 42);
	cr_assert_eq(job_with("randseed", "0").seed, 0);
	cr_assert_eq(job_with("randseed", "0xC0FFEE").seed, 0xc0ffee);
	cr_assert_eq(job_with("randseed", "18446744073709551615").seed, UINT64_MAX);
}

Test(bench_job, budget_takes_bytes_or_a_percentage)
{
	struct bench_job j = job_with("budget", "512M");

	cr_assert_eq(j.budget_is_pct, false);
	cr_assert_eq(j.budget, 512 << 20);
	set_ok(&j, "budget", "25%");
	cr_assert_eq(j.budget_is_pct, true);
	cr_assert_float_eq(j.budget_pct, 25.0, 1e-12);
	set_ok(&j, "budget", "12.5%");
	cr_assert_float_eq(j.budget_pct, 12.5, 1e-12);
	set_ok(&j, "budget", "100%");
	cr_assert_float_eq(j.budget_pct, 100.0, 1e-12);
	set_ok(&j, "budget", "1G");
	cr_assert_eq(j.budget_is_pct, false);
	cr_assert_eq(j.budget, 1ull << 30);
}

Test(bench_job, content_takes_each_kind)
{
	cr_assert_eq(job_with("content", "text").content, BENCH_CONTENT_TEXT);
	cr_assert_eq(job_with("content", "random").content, BENCH_CONTENT_RANDOM);
	cr_assert_eq(job_with("content", "zero").content, BENCH_CONTENT_ZERO);
	cr_assert_eq(job_with("content", "mixed").content, BENCH_CONTENT_MIXED);
}

Test(bench_job, engine_sets_the_engine_set_to_that_one)
{
	cr_assert_eq(job_with("engine", "ram").engines, 1u << BENCH_ENGINE_RAM);
	cr_assert_eq(job_with("engine", "kernel-zram").engines,
		     1u << BENCH_ENGINE_KERNEL_ZRAM);
	cr_assert_eq(job_with("engine", "kernel-swapfile").engines,
		     1u << BENCH_ENGINE_KERNEL_SWAPFILE);
	cr_assert_eq(job_with("engine", "upager").engines, 1u << BENCH_ENGINE_UPAGER);
}

Test(bench_job, name_sets_the_job_name)
{
	cr_assert_str_eq(job_with("name", "hot zipf").name, "hot zipf");
	cr_assert_str_eq(job_with("name",
		"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk").name,
		"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk");
}

/* ---- bad values, key by key ---- */

static const struct { const char *key, *value; } bad_values[] = {
	{ "size", "" }, { "size", "abc" }, { "size", "0" }, { "size", "-1" },
	{ "size", "+4K" }, { "size", "4X" }, { "size", "1.5G" }, { "size", " 4K" },
	{ "size", "4K " }, { "size", "4 K" }, { "size", "16777216T" },
	{ "size", "18446744073709551616" }, { "size", "50%" },
	{ "bs", "2K" }, { "bs", "3K" }, { "bs", "4097" }, { "bs", "4M" },
	{ "bs", "0" }, { "bs", "abc" }, { "bs", "4k,8k" }, { "blocksize", "1G" },
	{ "rw", "trim" }, { "rw", "randtrim" }, { "rw", "" }, { "rw", "read:8" },
	{ "rw", "randreadwrite" }, { "readwrite", "sideways" },
	{ "rwmixread", "101" }, { "rwmixread", "-1" }, { "rwmixread", "50%" },
	{ "rwmixread", "" }, { "rwmixread", "4.5" },
	{ "random_distribution", "zipf" }, { "random_distribution", "zipf:" },
	{ "random_distribution", "zipf:1" }, { "random_distribution", "zipf:1.0" },
	{ "random_distribution", "zipf:0" }, { "random_distribution", "zipf:-0.5" },
	{ "random_distribution", "zipf:0.9x" }, { "random_distribution", "zipf:nan" },
	{ "random_distribution", "pareto:0" }, { "random_distribution", "pareto:1" },
	{ "random_distribution", "pareto:1.5" }, { "random_distribution", "normal:0" },
	{ "random_distribution", "normal:101" }, { "random_distribution", "gauss:3" },
	{ "random_distribution", "zoned:50/10" }, { "random_distribution", "random:1" },
	{ "random_distribution", "" },
	{ "numjobs", "0" }, { "numjobs", "1025" }, { "numjobs", "-1" },
	{ "numjobs", "x" }, { "numjobs", "" },
	{ "runtime", "abc" }, { "runtime", "10x" }, { "runtime", "10 s" },
	{ "runtime", "-1" }, { "runtime", "1.5s" }, { "runtime", "" },
	{ "runtime", "9999999999999999999h" }, { "ramp_time", "s" },
	{ "ramp_time", "2d" },
	{ "time_based", "2" }, { "time_based", "maybe" }, { "time_based", "" },
	{ "loops", "0" }, { "loops", "x" }, { "loops", "4294967296" },
	{ "randseed", "x" }, { "randseed", "0x" }, { "randseed", "0xg" },
	{ "randseed", "-1" }, { "randseed", "123abc" },
	{ "randseed", "18446744073709551616" },
	{ "budget", "0%" }, { "budget", "101%" }, { "budget", "x%" }, { "budget", "%" },
	{ "budget", "abc" }, { "budget", "-1G" }, { "budget", "25 %" }, { "budget", "" },
	{ "content", "lorem" }, { "content", "" }, { "content", "TEXT" },
	{ "engine", "zram" }, { "engine", "kernel" }, { "engine", "" },
	{ "engine", "ram,upager" }, { "engine", "RAM" },
	{ "name", "" }, { "name", "a\tb" },
	{ "name", "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl" },
};

Test(bench_job, bad_values_are_einval_naming_the_key_and_change_nothing)
{
	for (size_t i = 0; i < ARRAY_LEN(bad_values); i++) {
		const char *key = bad_values[i].key, *value = bad_values[i].value;
		struct bench_job j, before;
		char prefix[64];
		int ret;

		bench_job_defaults(&j);
		before = j;
		err[0] = '\0';
		ret = bench_job_set(&j, key, value, err, sizeof(err));
		cr_assert_eq(ret, -EINVAL, "%s=%s: %d", key, value, ret);
		snprintf(prefix, sizeof(prefix), "%s: ", key);
		cr_assert_eq(strncmp(err, prefix, strlen(prefix)), 0,
			     "%s=%s: err '%s'", key, value, err);
		cr_assert_eq(memcmp(&j, &before, sizeof(j)), 0,
			     "%s=%s changed the job", key, value);
	}
}

Test(bench_job, a_bad_value_says_what_was_expected)
{
	struct bench_job j;

	bench_job_defaults(&j);
	cr_assert_eq(bench_job_set(&j, "bs", "3K", err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "bs: expected a power of two from 4K to 2M "
			 "(fio allows more, but the region is paged in 4K pages), got '3K'");
	cr_assert_eq(bench_job_set(&j, "random_distribution", "zipf:1", err,
				   sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "random_distribution: zipf theta must be more than 0 and not 1, got 1");
	cr_assert_eq(bench_job_set(&j, "random_distribution", "pareto:2", err,
				   sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "random_distribution: pareto h must be between 0 and 1 (exclusive), got 2");
	cr_assert_eq(bench_job_set(&j, "random_distribution", "normal:200", err,
				   sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "normal deviation"), "%s", err);
	cr_assert_eq(bench_job_set(&j, "budget", "150%", err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "budget: a percentage of size must be more than 0 "
			 "and at most 100, got '150%'");
}

Test(bench_job, a_key_that_needs_a_value_refuses_none)
{
	struct bench_job j;

	bench_job_defaults(&j);
	cr_assert_eq(bench_job_set(&j, "size", NULL, err, sizeof(err)), -EINVAL);
	cr_assert_eq(strncmp(err, "size: needs a value", 19), 0, "%s", err);
	cr_assert_eq(bench_job_set(&j, "engine", NULL, err, sizeof(err)), -EINVAL);
	cr_assert_eq(strncmp(err, "engine: needs a value", 21), 0, "%s", err);
}

Test(bench_job, unknown_key_is_enoent)
{
	struct bench_job j;

	bench_job_defaults(&j);
	cr_assert_eq(bench_job_set(&j, "iodepth", "4", err, sizeof(err)), -ENOENT);
	cr_assert_str_eq(err, "iodepth: unknown key");
	cr_assert_eq(bench_job_set(&j, "Size", "4K", err, sizeof(err)), -ENOENT);
	cr_assert_eq(bench_job_set(&j, "bogus", NULL, err, sizeof(err)), -ENOENT);
	cr_assert_str_eq(err, "bogus: unknown key");
}

Test(bench_job, a_null_or_empty_err_buffer_is_fine)
{
	struct bench_job j;

	bench_job_defaults(&j);
	cr_assert_eq(bench_job_set(&j, "bs", "3K", NULL, 0), -EINVAL);
	cr_assert_eq(bench_job_set(&j, "nope", "1", NULL, 0), -ENOENT);
	cr_assert_eq(bench_job_finish(&j, NULL, 0), -EINVAL);
	err[0] = 'x';
	cr_assert_eq(bench_job_finish(&j, err, 0), -EINVAL);
	cr_assert_eq(err[0], 'x');
}

/* ---- bench_job_finish ---- */

Test(bench_job, finish_requires_a_size)
{
	struct bench_job j;

	bench_job_defaults(&j);
	cr_assert_eq(bench_job_finish(&j, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "size: not set (there is no default)");
}

Test(bench_job, finish_passes_a_plain_job_with_the_whole_size_as_budget)
{
	struct bench_job j = sized("1G");

	cr_assert_eq(bench_job_finish(&j, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(bench_job_budget(&j), 1ull << 30);
	cr_assert_eq(j.budget, 1ull << 30);
	cr_assert_eq(j.budget_is_pct, true);	/* kept, for the report */
}

Test(bench_job, finish_wants_size_a_multiple_of_bs)
{
	struct bench_job j = sized("12K");

	set_ok(&j, "bs", "8K");
	cr_assert_eq(bench_job_finish(&j, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "size: 12K is not a multiple of bs (8K)");
	set_ok(&j, "size", "16K");
	cr_assert_eq(bench_job_finish(&j, err, sizeof(err)), 0, "%s", err);
}

Test(bench_job, finish_resolves_a_percent_budget_rounded_down_to_a_page)
{
	static const struct { const char *size, *pct; uint64_t bytes; } cases[] = {
		{ "2G", "25%", 512ull << 20 },
		{ "2G", "50%", 1ull << 30 },
		{ "40K", "50%", 20 << 10 },
		{ "12K", "50%", 4096 },			/* 6K, down to a page */
		{ "1M", "33%", 344064 },		/* 346030.08 -> 84 pages */
		{ "1M", "12.5%", 128 << 10 },
		{ "8K", "100%", 8192 },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct bench_job j = sized(cases[i].size);

		set_ok(&j, "budget", cases[i].pct);
		cr_assert_eq(bench_job_budget(&j), cases[i].bytes, "%s of %s (before)",
			     cases[i].pct, cases[i].size);
		cr_assert_eq(bench_job_finish(&j, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(j.budget, cases[i].bytes, "%s of %s", cases[i].pct,
			     cases[i].size);
		cr_assert_eq(bench_job_budget(&j), cases[i].bytes);
	}
}

Test(bench_job, finish_rounds_a_byte_budget_down_to_a_page)
{
	struct bench_job j = sized("1M");

	set_ok(&j, "budget", "5000");
	cr_assert_eq(bench_job_finish(&j, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(j.budget, 4096);
	cr_assert_eq(bench_job_budget(&j), 4096);
	cr_assert_eq(j.budget_is_pct, false);
}

Test(bench_job, finish_refuses_a_budget_more_than_size)
{
	struct bench_job j = sized("2G");

	set_ok(&j, "budget", "3G");
	cr_assert_eq(bench_job_finish(&j, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "budget: 3G is more than size (2G)");
	set_ok(&j, "budget", "2G");
	cr_assert_eq(bench_job_finish(&j, err, sizeof(err)), 0, "%s", err);
}

Test(bench_job, finish_refuses_a_budget_under_one_page)
{
	struct bench_job j = sized("1M");

	set_ok(&j, "budget", "2K");
	cr_assert_eq(bench_job_finish(&j, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "budget: 2K is less than one page (4096 bytes)");
	set_ok(&j, "budget", "0");
	cr_assert_eq(bench_job_finish(&j, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "budget: 0 is less than one page (4096 bytes)");
	set_ok(&j, "budget", "0.1%");		/* 1048 bytes */
	cr_assert_eq(bench_job_finish(&j, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "budget: 0.1% of size (1M) is less than one page (4096 bytes)");
	set_ok(&j, "budget", "4K");
	cr_assert_eq(bench_job_finish(&j, err, sizeof(err)), 0, "%s", err);
}

Test(bench_job, finish_wants_a_runtime_for_time_based)
{
	struct bench_job j = sized("1M");

	set_ok(&j, "time_based", NULL);
	cr_assert_eq(bench_job_finish(&j, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "time_based: needs a runtime");
	set_ok(&j, "runtime", "10s");
	cr_assert_eq(bench_job_finish(&j, err, sizeof(err)), 0, "%s", err);
}

Test(bench_job, finish_passes_runtime_alone_and_rwmixread_on_a_read_job)
{
	struct bench_job j = sized("1M");

	set_ok(&j, "runtime", "10s");
	set_ok(&j, "rwmixread", "10");		/* meaningless for read; no error */
	set_ok(&j, "loops", "3");
	cr_assert_eq(bench_job_finish(&j, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(j.rw, BENCH_READ);
	cr_assert_eq(j.time_based, false);
}

/* A job filled in by hand, not through bench_job_set(), is checked too. */
Test(bench_job, finish_checks_fields_set_directly)
{
	static const char *const blame[] = { "numjobs", "numjobs", "bs", "bs",
		"engine", "engine", "random_distribution", "random_distribution",
		"rwmixread", "loops", "name", "budget" };

	for (size_t i = 0; i < ARRAY_LEN(blame); i++) {
		struct bench_job j = sized("1M");

		switch (i) {
		case 0: j.numjobs = 0; break;
		case 1: j.numjobs = 1025; break;
		case 2: j.bs = 3000; break;
		case 3: j.bs = 4u << 20; break;
		case 4: j.engines = 0; break;
		case 5: j.engines = 1u << BENCH_NR_ENGINES; break;
		case 6: j.dist = BENCH_DIST_ZIPF; j.dist_param = 1.0; break;
		case 7: j.dist = BENCH_DIST_PARETO; j.dist_param = 0; break;
		case 8: j.rwmixread = 101; break;
		case 9: j.loops = 0; break;
		case 10: j.name[0] = '\0'; break;
		case 11: j.budget_pct = 0; break;
		}
		cr_assert_eq(bench_job_finish(&j, err, sizeof(err)), -EINVAL, "case %zu", i);
		cr_assert_eq(strncmp(err, blame[i], strlen(blame[i])), 0,
			     "case %zu: '%s'", i, err);
	}
}

/* ---- job files ---- */

Test(bench_job, file_jobs_inherit_global_and_override_it)
{
	struct bench_job *jobs;
	size_t nr;
	int ret;

	ret = parse("[global]\n"
		    "size=1G\n"
		    "bs=64K\n"
		    "rw=randread\n"
		    "engine=ram\n"
		    "[seq]\n"
		    "rw=read\n"
		    "bs=8K\n"
		    "[zipf]\n"
		    "random_distribution=zipf:0.99\n"
		    "budget=25%\n", NULL, &jobs, &nr);
	cr_assert_eq(ret, 0, "%s", err);
	cr_assert_eq(nr, 2);
	cr_assert_str_eq(jobs[0].name, "seq");
	cr_assert_eq(jobs[0].size, 1ull << 30);
	cr_assert_eq(jobs[0].bs, 8 << 10);
	cr_assert_eq(jobs[0].rw, BENCH_READ);
	cr_assert_eq(jobs[0].dist, BENCH_DIST_RANDOM);
	cr_assert_eq(jobs[0].budget, 1ull << 30);
	cr_assert_eq(jobs[0].engines, 1u << BENCH_ENGINE_RAM);
	cr_assert_str_eq(jobs[1].name, "zipf");
	cr_assert_eq(jobs[1].size, 1ull << 30);
	cr_assert_eq(jobs[1].bs, 64 << 10);
	cr_assert_eq(jobs[1].rw, BENCH_RANDREAD);
	cr_assert_eq(jobs[1].dist, BENCH_DIST_ZIPF);
	cr_assert_float_eq(jobs[1].dist_param, 0.99, 1e-12);
	cr_assert_eq(jobs[1].budget, 256ull << 20);
	cr_assert_eq(jobs[1].engines, 1u << BENCH_ENGINE_RAM);
	free(jobs);
}

Test(bench_job, a_later_global_applies_only_to_later_jobs)
{
	struct bench_job *jobs;
	size_t nr;
	int ret;

	ret = parse("[global]\nsize=1M\n[a]\n[global]\nnumjobs=4\n[b]\n",
		    NULL, &jobs, &nr);
	cr_assert_eq(ret, 0, "%s", err);
	cr_assert_eq(nr, 2);
	cr_assert_eq(jobs[0].numjobs, 1);
	cr_assert_eq(jobs[1].numjobs, 4);
	cr_assert_eq(jobs[1].size, 1 << 20);
	free(jobs);
}

Test(bench_job, command_line_overrides_section_and_global)
{
	static const char *const over[] = { "bs=16K", "time_based", "runtime=2s",
					    "content=zero", NULL };
	struct bench_job *jobs;
	size_t nr;
	int ret;

	ret = parse("[global]\nsize=1M\nbs=64K\ncontent=random\n"
		    "[a]\nbs=8K\n[b]\nrw=write\n", over, &jobs, &nr);
	cr_assert_eq(ret, 0, "%s", err);
	cr_assert_eq(nr, 2);
	for (size_t i = 0; i < nr; i++) {
		cr_assert_eq(jobs[i].bs, 16 << 10, "job %zu", i);
		cr_assert_eq(jobs[i].time_based, true);
		cr_assert_eq(jobs[i].runtime_ms, 2000);
		cr_assert_eq(jobs[i].content, BENCH_CONTENT_ZERO);
		cr_assert_eq(jobs[i].size, 1 << 20);	/* not overridden */
	}
	cr_assert_eq(jobs[0].rw, BENCH_READ);
	cr_assert_eq(jobs[1].rw, BENCH_WRITE);
	free(jobs);
}

Test(bench_job, comments_blank_lines_and_whitespace_are_ignored)
{
	struct bench_job *jobs;
	size_t nr;
	int ret;

	ret = parse("; a comment\n"
		    "# another\n"
		    "\n"
		    "   \t\n"
		    "  [ global ]  \r\n"
		    "  size \t=  2M  \r\n"
		    "\t; indented comment\n"
		    "[  my job ]\n"
		    "bs = 8K ; after a value\n"
		    "rw=randwrite# touching\n"
		    "time_based   # a flag with a comment\n"
		    "runtime = 1m\n", NULL, &jobs, &nr);
	cr_assert_eq(ret, 0, "%s", err);
	cr_assert_eq(nr, 1);
	cr_assert_str_eq(jobs[0].name, "my job");
	cr_assert_eq(jobs[0].size, 2 << 20);
	cr_assert_eq(jobs[0].bs, 8 << 10);
	cr_assert_eq(jobs[0].rw, BENCH_RANDWRITE);
	cr_assert_eq(jobs[0].time_based, true);
	cr_assert_eq(jobs[0].runtime_ms, 60000);
	free(jobs);
}

Test(bench_job, a_flag_works_with_and_without_a_value)
{
	struct bench_job *jobs;
	size_t nr;
	int ret;

	ret = parse("[global]\nsize=1M\nruntime=1\n"
		    "[bare]\ntime_based\n"
		    "[one]\ntime_based=1\n"
		    "[zero]\ntime_based=0\n"
		    "[inherits]\n", NULL, &jobs, &nr);
	cr_assert_eq(ret, 0, "%s", err);
	cr_assert_eq(nr, 4);
	cr_assert_eq(jobs[0].time_based, true);
	cr_assert_eq(jobs[1].time_based, true);
	cr_assert_eq(jobs[2].time_based, false);
	cr_assert_eq(jobs[3].time_based, false);
	free(jobs);
}

Test(bench_job, a_file_percent_budget_is_resolved)
{
	static const char *const over[] = { "size=2G", NULL };
	struct bench_job *jobs;
	size_t nr;
	int ret;

	/* The percentage is of the final size: the command line's 2G. */
	ret = parse("[j]\nsize=1G\nbudget=25%\n", over, &jobs, &nr);
	cr_assert_eq(ret, 0, "%s", err);
	cr_assert_eq(nr, 1);
	cr_assert_eq(jobs[0].budget_is_pct, true);
	cr_assert_float_eq(jobs[0].budget_pct, 25.0, 1e-12);
	cr_assert_eq(jobs[0].budget, 512ull << 20);
	cr_assert_eq(bench_job_budget(&jobs[0]), 512ull << 20);
	free(jobs);
}

Test(bench_job, the_name_key_renames_a_section_and_engine_defaults_to_upager)
{
	struct bench_job *jobs;
	size_t nr;
	int ret;

	ret = parse("[global]\nsize=1M\n[a]\nname=renamed\n[b]\n", NULL, &jobs, &nr);
	cr_assert_eq(ret, 0, "%s", err);
	cr_assert_eq(nr, 2);
	cr_assert_str_eq(jobs[0].name, "renamed");
	cr_assert_str_eq(jobs[1].name, "b");
	cr_assert_eq(jobs[0].engines, 1u << BENCH_ENGINE_UPAGER);
	cr_assert_eq(jobs[1].engines, 1u << BENCH_ENGINE_UPAGER);
	free(jobs);
}

Test(bench_job, many_jobs_are_all_returned_in_order)
{
	char text[4096] = "[global]\nsize=1M\n";
	struct bench_job *jobs;
	size_t nr;
	int ret;

	for (int i = 0; i < 40; i++) {
		char s[64];

		snprintf(s, sizeof(s), "[job%d]\nnumjobs=%d\n", i, i + 1);
		strcat(text, s);
	}
	ret = parse(text, NULL, &jobs, &nr);
	cr_assert_eq(ret, 0, "%s", err);
	cr_assert_eq(nr, 40);
	for (unsigned int i = 0; i < 40; i++) {
		char name[16];

		snprintf(name, sizeof(name), "job%u", i);
		cr_assert_str_eq(jobs[i].name, name);
		cr_assert_eq(jobs[i].numjobs, i + 1);
	}
	free(jobs);
}

Test(bench_job, no_file_gives_one_cmdline_job_from_the_overrides)
{
	static const char *const over[] = { "size=4M", "budget=50%", "engine=ram", NULL };
	struct bench_job *jobs = NULL;
	size_t nr = 0;
	int ret;

	ret = bench_job_parse_file(NULL, over, &jobs, &nr, err, sizeof(err));
	cr_assert_eq(ret, 0, "%s", err);
	cr_assert_eq(nr, 1);
	cr_assert_str_eq(jobs[0].name, "cmdline");
	cr_assert_eq(jobs[0].size, 4 << 20);
	cr_assert_eq(jobs[0].budget, 2 << 20);
	cr_assert_eq(jobs[0].engines, 1u << BENCH_ENGINE_RAM);
	free(jobs);
}

Test(bench_job, no_file_and_no_size_says_so_from_the_command_line)
{
	static const char *const over[] = { "bs=8K", NULL };
	struct bench_job *jobs = NULL;
	size_t nr = 0;

	cr_assert_eq(bench_job_parse_file(NULL, over, &jobs, &nr, err, sizeof(err)),
		     -EINVAL);
	cr_assert_str_eq(err, "command line: size: not set (there is no default)");
	cr_assert_null(jobs);
}

/* ---- job file errors: file, line and key (issue 3) ---- */

Test(bench_job, an_unknown_key_names_file_line_and_key)
{
	parse_fails("[a]\nsize=1M\niodepth=4\n", NULL, ":3: iodepth: unknown key");
	assert_err_is(":3: iodepth: unknown key");
}

Test(bench_job, a_bad_size_names_file_line_and_key)
{
	parse_fails("[global]\n\nsize=12Q\n[a]\n", NULL, ":3: size: expected ");
}

Test(bench_job, a_budget_more_than_size_names_file_line_and_key)
{
	parse_fails("[a]\nsize=2G\nbudget=3G\n", NULL, "");
	assert_err_is(":3: job a: budget: 3G is more than size (2G)");
}

Test(bench_job, a_budget_under_one_page_names_file_line_and_key)
{
	parse_fails("[a]\nsize=1M\n\nbudget=1K\n", NULL, "");
	assert_err_is(":4: job a: budget: 1K is less than one page (4096 bytes)");
}

Test(bench_job, a_global_budget_is_blamed_on_its_own_line)
{
	parse_fails("[global]\nbudget=3M\n[ok]\nsize=4M\n[small]\nsize=2M\n", NULL, "");
	assert_err_is(":2: job small: budget: 3M is more than size (2M)");
}

Test(bench_job, numjobs_0_names_file_line_and_key)
{
	parse_fails("[a]\nsize=1M\nnumjobs=0\n", NULL, "");
	assert_err_is(":3: numjobs: expected a whole number from 1 to 1024, got '0'");
}

Test(bench_job, an_unknown_engine_names_file_line_and_key)
{
	parse_fails("[a]\nsize=1M\n  engine = zram\n", NULL, "");
	assert_err_is(":3: engine: expected ram, kernel-zram, kernel-swapfile or upager, got 'zram'");
}

Test(bench_job, a_missing_size_is_blamed_on_the_section)
{
	parse_fails("[global]\nbs=8K\n\n[a]\nrw=write\n", NULL, "");
	assert_err_is(":4: job a: size: not set (there is no default)");
}

Test(bench_job, a_key_before_any_section_is_an_error)
{
	parse_fails("; fine\nsize=1M\n[a]\n", NULL, ":2: size: before any section");
}

Test(bench_job, name_in_global_is_an_error)
{
	parse_fails("[global]\nname=x\n[a]\nsize=1M\n", NULL, ":2: name: ");
}

Test(bench_job, a_value_missing_from_a_key_is_an_error)
{
	parse_fails("[a]\nsize\n", NULL, ":2: size: needs a value");
	parse_fails("[a]\nsize=\n", NULL, ":2: size: expected ");
	parse_fails("[a]\n = 4K\n", NULL, ":2: no key");
}

Test(bench_job, a_bad_section_header_is_an_error)
{
	parse_fails("[a\nsize=1M\n", NULL, ":1: ");
	parse_fails("[a] junk\nsize=1M\n", NULL, ":1: ");
	parse_fails("[]\nsize=1M\n", NULL, ":1: ");
	parse_fails("[global]\nsize=1M\n\n[abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl]\n",
		    NULL, ":4: ");
}

Test(bench_job, a_file_without_jobs_is_an_error)
{
	parse_fails("[global]\nsize=1M\n", NULL, ": no job");
	parse_fails("; nothing\n", NULL, ": no job");
}

Test(bench_job, command_line_errors_say_command_line_and_the_key)
{
	static const char *const unknown[] = { "size=1M", "iodepth=4", NULL };
	static const char *const bad[] = { "numjobs=0", NULL };
	static const char *const budget[] = { "budget=3G", NULL };
	struct bench_job *jobs;
	size_t nr;

	cr_assert_eq(parse("[a]\nsize=1M\n", unknown, &jobs, &nr), -EINVAL);
	cr_assert_str_eq(err, "command line: iodepth: unknown key");
	cr_assert_eq(parse("[a]\nsize=1M\n", bad, &jobs, &nr), -EINVAL);
	cr_assert_str_eq(err, "command line: numjobs: expected a whole number from 1 to 1024, got '0'");
	cr_assert_eq(parse("[a]\nsize=2G\n", budget, &jobs, &nr), -EINVAL);
	cr_assert_str_eq(err, "command line: job a: budget: 3G is more than size (2G)");
	cr_assert_null(jobs);
}

Test(bench_job, a_missing_file_is_enoent_naming_it)
{
	struct bench_job *jobs = NULL;
	size_t nr = 0;

	cr_assert_eq(bench_job_parse_file("/nonexistent/job.fio", NULL, &jobs, &nr,
					  err, sizeof(err)), -ENOENT);
	cr_assert_eq(strncmp(err, "/nonexistent/job.fio: ", 22), 0, "%s", err);
	cr_assert_null(jobs);
}
