/*
 * struct upg_options: the defaults, every UPAGER_* variable, strict parsing
 * of bad values (which warn by name, keep the default and leave the other
 * variables applied), upg_options_set() and the internal parse helpers.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "options.h"

#define ARRAY_LEN(a)	(sizeof(a) / sizeof((a)[0]))

static const char *const env_names[] = {
	"UPAGER_BLOCK_SIZE", "UPAGER_FAULT_THREADS", "UPAGER_PIN_THREADS",
	"UPAGER_FAULT_MODE", "UPAGER_DISABLE", "UPAGER_VERBOSE",
	"UPAGER_BUDGET", "UPAGER_BUDGET_TOTAL", "UPAGER_ZPOOL_MAX",
	"UPAGER_LOW_WATERMARK", "UPAGER_HIGH_WATERMARK",
};

/* The caller's UPAGER_* values, put back after each test. */
static char *saved_env[ARRAY_LEN(env_names)];

static void env_clear(void)
{
	for (size_t i = 0; i < ARRAY_LEN(env_names); i++)
		unsetenv(env_names[i]);
}

static void env_save_and_clear(void)
{
	for (size_t i = 0; i < ARRAY_LEN(env_names); i++) {
		const char *v = getenv(env_names[i]);

		saved_env[i] = v ? strdup(v) : NULL;
	}
	env_clear();
}

static void env_restore(void)
{
	env_clear();
	for (size_t i = 0; i < ARRAY_LEN(env_names); i++) {
		if (saved_env[i])
			setenv(env_names[i], saved_env[i], 1);
		free(saved_env[i]);
		saved_env[i] = NULL;
	}
}

TestSuite(options, .init = env_save_and_clear, .fini = env_restore,
	  .timeout = 10);

/* What upg_options_init() must give with no UPAGER_* variable set. */
static struct upg_options defaults(void)
{
	return (struct upg_options){
		.block_size = 4 << 10,
		.fault_threads = 0,
		.pin_threads = true,
		.fault_mode = UPG_FAULT_POLL,
		.features = UPG_FEAT_ALL,
		.verbose = false,
	};
}

/* Field by field: the struct has padding, so memcmp only fits exact copies. */
static void assert_options_eq(const struct upg_options *got,
			      const struct upg_options *want, const char *what)
{
	cr_assert_eq(got->block_size, want->block_size, "%s: block_size %zu, want %zu",
		     what, got->block_size, want->block_size);
	cr_assert_eq(got->fault_threads, want->fault_threads,
		     "%s: fault_threads %u, want %u", what, got->fault_threads,
		     want->fault_threads);
	cr_assert_eq(got->pin_threads, want->pin_threads, "%s: pin_threads %d, want %d",
		     what, got->pin_threads, want->pin_threads);
	cr_assert_eq(got->fault_mode, want->fault_mode, "%s: fault_mode %d, want %d",
		     what, (int)got->fault_mode, (int)want->fault_mode);
	cr_assert_eq(got->features, want->features, "%s: features 0x%x, want 0x%x",
		     what, got->features, want->features);
	cr_assert_eq(got->verbose, want->verbose, "%s: verbose %d, want %d",
		     what, got->verbose, want->verbose);
	cr_assert(got->budget == want->budget && got->budget_total == want->budget_total &&
		  got->zpool_max == want->zpool_max &&
		  got->low_watermark == want->low_watermark &&
		  got->high_watermark == want->high_watermark,
		  "%s: budget fields %zu %zu %zu %zu %zu", what, got->budget,
		  got->budget_total, got->zpool_max, got->low_watermark, got->high_watermark);
}

/* upg_options_init() with only @var=@value set; asserts it returns 0. */
static struct upg_options init_with(const char *var, const char *value)
{
	struct upg_options o;
	int ret;

	env_clear();
	setenv(var, value, 1);
	t_log_capture();
	ret = upg_options_init(&o);
	cr_assert_eq(ret, 0, "%s=\"%s\": upg_options_init returned %d", var, value, ret);
	cr_assert_not(t_log_contains(var), "%s=\"%s\" is valid but was warned about",
		      var, value);
	return o;
}

/*
 * @var=@bad next to a valid @other=@other_value: init returns -EINVAL,
 * warns naming @var, and gives @want (the default for @var, @other applied).
 */
static void check_bad(const char *var, const char *bad, const char *other,
		      const char *other_value, const struct upg_options *want)
{
	struct upg_options o;
	char what[128];
	int ret;

	snprintf(what, sizeof(what), "%s=\"%s\"", var, bad);
	env_clear();
	setenv(var, bad, 1);
	setenv(other, other_value, 1);
	t_log_capture();
	ret = upg_options_init(&o);
	cr_assert_eq(ret, -EINVAL, "%s: upg_options_init returned %d, want -EINVAL",
		     what, ret);
	cr_assert(t_log_contains(var), "%s: no warning names %s", what, var);
	assert_options_eq(&o, want, what);
}

/* ---- defaults ---------------------------------------------------------- */

Test(options, init_without_environment_gives_defaults)
{
	struct upg_options o, want = defaults();

	t_log_capture();
	cr_assert_eq(upg_options_init(&o), 0);
	assert_options_eq(&o, &want, "no UPAGER_* set");
	cr_assert_eq(o.block_size, 4096);
	cr_assert_eq(o.features, UPG_FEAT_ALL);
	cr_assert_not(t_log_contains("UPAGER_"), "defaults logged a warning");
}

Test(options, unrelated_upager_variable_is_ignored)
{
	struct upg_options o, want = defaults();

	setenv("UPAGER_NO_SUCH_KNOB", "3000", 1);
	cr_assert_eq(upg_options_init(&o), 0);
	assert_options_eq(&o, &want, "UPAGER_NO_SUCH_KNOB set");
	unsetenv("UPAGER_NO_SUCH_KNOB");
}

/* ---- every variable, valid values ------------------------------------ */

Test(options, block_size_is_read_from_environment)
{
	static const struct { const char *s; size_t want; } cases[] = {
		{ "4K", 4096 }, { "64K", 65536 }, { "2M", 2u << 20 },
		{ "4096", 4096 }, { "64KiB", 65536 }, { "8k", 8192 },
		{ "1m", 1u << 20 }, { "2097152", 2u << 20 },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct upg_options o = init_with("UPAGER_BLOCK_SIZE", cases[i].s);

		cr_assert_eq(o.block_size, cases[i].want, "\"%s\" gave %zu, want %zu",
			     cases[i].s, o.block_size, cases[i].want);
	}
}

Test(options, fault_threads_is_read_from_environment)
{
	static const struct { const char *s; unsigned int want; } cases[] = {
		{ "0", 0 }, { "1", 1 }, { "8", 8 }, { "256", 256 },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct upg_options o = init_with("UPAGER_FAULT_THREADS", cases[i].s);

		cr_assert_eq(o.fault_threads, cases[i].want, "\"%s\" gave %u",
			     cases[i].s, o.fault_threads);
	}
}

/* Every spelling, on both booleans (their defaults differ: each shows). */
Test(options, bool_variables_accept_every_spelling_in_any_case)
{
	static const char *const yes[] = { "1", "on", "yes", "true", "ON", "Yes", "TRUE", "oN" };
	static const char *const no[] = { "0", "off", "no", "false", "OFF", "No", "FALSE", "fAlSe" };

	for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
		struct upg_options o = init_with("UPAGER_VERBOSE", yes[i]);

		cr_assert(o.verbose, "UPAGER_VERBOSE=\"%s\" did not set verbose", yes[i]);
		o = init_with("UPAGER_PIN_THREADS", yes[i]);
		cr_assert(o.pin_threads, "UPAGER_PIN_THREADS=\"%s\" cleared it", yes[i]);
	}
	for (size_t i = 0; i < ARRAY_LEN(no); i++) {
		struct upg_options o = init_with("UPAGER_PIN_THREADS", no[i]);

		cr_assert_not(o.pin_threads, "UPAGER_PIN_THREADS=\"%s\" left it on", no[i]);
		o = init_with("UPAGER_VERBOSE", no[i]);
		cr_assert_not(o.verbose, "UPAGER_VERBOSE=\"%s\" set it", no[i]);
	}
}

Test(options, fault_mode_is_read_from_environment)
{
	cr_assert_eq(init_with("UPAGER_FAULT_MODE", "sigbus").fault_mode, UPG_FAULT_SIGBUS);
	cr_assert_eq(init_with("UPAGER_FAULT_MODE", "SIGBUS").fault_mode, UPG_FAULT_SIGBUS);
	cr_assert_eq(init_with("UPAGER_FAULT_MODE", "poll").fault_mode, UPG_FAULT_POLL);
	cr_assert_eq(init_with("UPAGER_FAULT_MODE", "Poll").fault_mode, UPG_FAULT_POLL);
}

Test(options, disable_clears_exactly_the_named_features)
{
	struct upg_options o;

	o = init_with("UPAGER_DISABLE", "zeropage,move");
	cr_assert_eq(o.features, UPG_FEAT_ALL & ~(UPG_FEAT_ZEROPAGE | UPG_FEAT_MOVE),
		     "features 0x%x", o.features);
	o = init_with("UPAGER_DISABLE", "MOVE, ZeroPage");
	cr_assert_eq(o.features, UPG_FEAT_ALL & ~(UPG_FEAT_ZEROPAGE | UPG_FEAT_MOVE),
		     "features 0x%x", o.features);
	o = init_with("UPAGER_DISABLE", "");
	cr_assert_eq(o.features, UPG_FEAT_ALL, "\"\" cleared 0x%x",
		     UPG_FEAT_ALL & ~o.features);
}

Test(options, disable_knows_every_feature_name)
{
	unsigned int all_off = 0;

	for (unsigned int bit = 1; bit & UPG_FEAT_ALL; bit <<= 1) {
		const char *name = upg_feature_name(bit);
		struct upg_options o;

		cr_assert_not_null(name, "feature 0x%x has no name", bit);
		o = init_with("UPAGER_DISABLE", name);
		cr_assert_eq(o.features, UPG_FEAT_ALL & ~bit, "\"%s\" gave 0x%x", name,
			     o.features);
		all_off |= bit;
	}
	cr_assert_eq(all_off, UPG_FEAT_ALL);
}

Test(options, every_variable_applies_together)
{
	struct upg_options o;

	setenv("UPAGER_BLOCK_SIZE", "2M", 1);
	setenv("UPAGER_FAULT_THREADS", "3", 1);
	setenv("UPAGER_PIN_THREADS", "off", 1);
	setenv("UPAGER_FAULT_MODE", "sigbus", 1);
	setenv("UPAGER_DISABLE", "devnode,poison", 1);
	setenv("UPAGER_VERBOSE", "yes", 1);
	cr_assert_eq(upg_options_init(&o), 0);
	assert_options_eq(&o, &(struct upg_options){
		.block_size = 2u << 20, .fault_threads = 3, .pin_threads = false,
		.fault_mode = UPG_FAULT_SIGBUS,
		.features = UPG_FEAT_ALL & ~(UPG_FEAT_DEVNODE | UPG_FEAT_POISON),
		.verbose = true }, "all six set");
}

/* ---- bad values in the environment ----------------------------------- */

Test(options, bad_block_size_warns_keeps_default_and_applies_the_rest)
{
	static const char *const bad[] = {
		"3000",				/* not a power of 2 */
		"8193", "8K+1",			/* 8K+1, as a number and as text */
		"4M", "1K", "0",		/* out of 4K..2M */
		"", "64X", "-4K", "+64K", " 64K", "0x1000",
		"99999999999999999999",		/* overflows strtoull */
		"64K junk", "64KBB", "64Ki",
	};
	struct upg_options want = defaults();

	want.fault_threads = 3;
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		check_bad("UPAGER_BLOCK_SIZE", bad[i], "UPAGER_FAULT_THREADS", "3", &want);
}

Test(options, bad_fault_threads_warns_keeps_default_and_applies_the_rest)
{
	static const char *const bad[] = {
		"-1", "abc", "257", "1.5", "", " 4", "4 ", "4294967296",
	};
	struct upg_options want = defaults();

	want.block_size = 4096;
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		check_bad("UPAGER_FAULT_THREADS", bad[i], "UPAGER_BLOCK_SIZE", "4K", &want);
}

Test(options, bad_bool_warns_keeps_default_and_applies_the_rest)
{
	static const char *const bad[] = { "maybe", "", "2", "y", "onn", " on" };
	struct upg_options want_pin = defaults(), want_verbose = defaults();

	want_pin.fault_mode = UPG_FAULT_SIGBUS;
	want_verbose.pin_threads = false;
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		check_bad("UPAGER_PIN_THREADS", bad[i], "UPAGER_FAULT_MODE", "sigbus",
			  &want_pin);
		check_bad("UPAGER_VERBOSE", bad[i], "UPAGER_PIN_THREADS", "0",
			  &want_verbose);
	}
}

Test(options, bad_fault_mode_warns_keeps_default_and_applies_the_rest)
{
	static const char *const bad[] = { "spin", "", "sigbus ", "1" };
	struct upg_options want = defaults();

	want.verbose = true;
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		check_bad("UPAGER_FAULT_MODE", bad[i], "UPAGER_VERBOSE", "1", &want);
}

/* A list with one unknown name clears nothing, not the names before it. */
Test(options, bad_disable_warns_keeps_default_and_applies_the_rest)
{
	static const char *const bad[] = { "nosuch", "zeropage,nosuch", "move;zeropage" };
	struct upg_options want = defaults();

	want.block_size = 2u << 20;
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		check_bad("UPAGER_DISABLE", bad[i], "UPAGER_BLOCK_SIZE", "2M", &want);
}

Test(options, two_bad_variables_are_both_named)
{
	struct upg_options o, want = defaults();

	setenv("UPAGER_BLOCK_SIZE", "3000", 1);
	setenv("UPAGER_FAULT_MODE", "spin", 1);
	setenv("UPAGER_VERBOSE", "on", 1);
	t_log_capture();
	cr_assert_eq(upg_options_init(&o), -EINVAL);
	cr_assert(t_log_contains("UPAGER_BLOCK_SIZE"));
	cr_assert(t_log_contains("UPAGER_FAULT_MODE"));
	want.verbose = true;
	assert_options_eq(&o, &want, "two bad, one good");
}

struct line_count { const char *needle; unsigned int n; };

static void count_lines(int level, const char *msg, void *arg)
{
	struct line_count *c = arg;

	(void)level;
	if (strstr(msg, c->needle))
		c->n++;
}

/*
 * STYLE.md: "A bad value warns once by name". Values that parse but are out
 * of range must not also get upg_options_validate()'s own warning.
 */
Test(options, bad_value_warns_once)
{
	static const struct { const char *var, *value; } bad[] = {
		{ "UPAGER_BLOCK_SIZE", "64X" }, { "UPAGER_BLOCK_SIZE", "" },
		{ "UPAGER_BLOCK_SIZE", "3000" }, { "UPAGER_BLOCK_SIZE", "4M" },
		{ "UPAGER_FAULT_THREADS", "abc" }, { "UPAGER_FAULT_THREADS", "257" },
		{ "UPAGER_FAULT_MODE", "spin" }, { "UPAGER_DISABLE", "nosuch" },
	};

	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		struct line_count c = { .needle = bad[i].var };
		struct upg_options o;

		env_clear();
		setenv(bad[i].var, bad[i].value, 1);
		upg_set_log_fn(count_lines, &c);
		cr_assert_eq(upg_options_init(&o), -EINVAL);
		upg_set_log_fn(NULL, NULL);
		cr_assert_eq(c.n, 1, "%s=\"%s\": named in %u log lines, want 1",
			     bad[i].var, bad[i].value, c.n);
	}
}

/* ---- upg_options_set() ------------------------------------------------ */

Test(options, set_takes_name_with_or_without_prefix_in_any_case)
{
	static const char *const names[] = {
		"BLOCK_SIZE", "UPAGER_BLOCK_SIZE", "block_size", "upager_Block_Size",
	};

	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		struct upg_options o = defaults();
		int ret = upg_options_set(&o, names[i], "2M");

		cr_assert_eq(ret, 0, "\"%s\": returned %d", names[i], ret);
		cr_assert_eq(o.block_size, 2u << 20, "\"%s\": block_size %zu", names[i],
			     o.block_size);
	}
}

Test(options, set_reaches_every_option)
{
	struct upg_options o = defaults();

	cr_assert_eq(upg_options_set(&o, "FAULT_THREADS", "7"), 0);
	cr_assert_eq(upg_options_set(&o, "PIN_THREADS", "no"), 0);
	cr_assert_eq(upg_options_set(&o, "FAULT_MODE", "sigbus"), 0);
	cr_assert_eq(upg_options_set(&o, "DISABLE", "wp_async"), 0);
	cr_assert_eq(upg_options_set(&o, "VERBOSE", "true"), 0);
	assert_options_eq(&o, &(struct upg_options){
		.block_size = 4 << 10, .fault_threads = 7, .pin_threads = false,
		.fault_mode = UPG_FAULT_SIGBUS,
		.features = UPG_FEAT_ALL & ~UPG_FEAT_WP_ASYNC, .verbose = true },
		"after set");
}

Test(options, set_does_not_read_the_environment)
{
	struct upg_options o = defaults();

	setenv("UPAGER_BLOCK_SIZE", "3000", 1);
	cr_assert_eq(upg_options_set(&o, "VERBOSE", "1"), 0);
	cr_assert_eq(o.block_size, 4 << 10);
	cr_assert(o.verbose);
}

Test(options, set_unknown_name_is_enoent_and_changes_nothing)
{
	static const char *const names[] = {
		"NOSUCH", "BLOCK", "BLOCK_SIZES", "UPAGER_", "", "UPAGER_UPAGER_VERBOSE",
		"XUPAGER_VERBOSE",
	};
	struct upg_options o = defaults(), copy;

	memcpy(&copy, &o, sizeof(o));
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		int ret = upg_options_set(&o, names[i], "1");

		cr_assert_eq(ret, -ENOENT, "\"%s\": returned %d, want -ENOENT", names[i], ret);
		cr_assert_eq(memcmp(&o, &copy, sizeof(o)), 0, "\"%s\" changed opts", names[i]);
	}
}

Test(options, set_bad_value_is_einval_and_leaves_struct_unchanged)
{
	static const struct { const char *name, *value; } bad[] = {
		{ "BLOCK_SIZE", "3000" }, { "BLOCK_SIZE", "4M" }, { "BLOCK_SIZE", "64K junk" },
		{ "BLOCK_SIZE", "" }, { "FAULT_THREADS", "257" }, { "FAULT_THREADS", "-1" },
		{ "PIN_THREADS", "maybe" }, { "FAULT_MODE", "spin" },
		{ "DISABLE", "nosuch" }, { "DISABLE", "move,nosuch" }, { "VERBOSE", "" },
	};
	struct upg_options o = defaults(), copy;

	/* Not the defaults, so a reset to them would show too. */
	o.block_size = 4096;
	o.fault_threads = 5;
	o.pin_threads = false;
	o.fault_mode = UPG_FAULT_SIGBUS;
	o.features = UPG_FEAT_ALL & ~UPG_FEAT_SIGBUS;
	o.verbose = true;
	memcpy(&copy, &o, sizeof(o));
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		int ret;

		t_log_capture();
		ret = upg_options_set(&o, bad[i].name, bad[i].value);
		cr_assert_eq(ret, -EINVAL, "%s=\"%s\": returned %d, want -EINVAL",
			     bad[i].name, bad[i].value, ret);
		cr_assert_eq(memcmp(&o, &copy, sizeof(o)), 0, "%s=\"%s\" changed opts",
			     bad[i].name, bad[i].value);
		cr_assert(t_log_contains(bad[i].name), "%s=\"%s\": not named in a warning",
			  bad[i].name, bad[i].value);
	}
}

/* ---- upg_parse_size() / upg_parse_bool() ----------------------------- */

Test(options, parse_size_takes_binary_suffixes)
{
	static const struct { const char *s; uint64_t want; } cases[] = {
		{ "0", 0 }, { "1", 1 }, { "4096", 4096 },
		{ "1K", 1ull << 10 }, { "1k", 1ull << 10 }, { "64K", 64ull << 10 },
		{ "2M", 2ull << 20 }, { "2m", 2ull << 20 },
		{ "3G", 3ull << 30 }, { "3g", 3ull << 30 },
		{ "5T", 5ull << 40 }, { "5t", 5ull << 40 },
		{ "64KiB", 64ull << 10 }, { "64kib", 64ull << 10 }, { "2MiB", 2ull << 20 },
		{ "1GiB", 1ull << 30 }, { "1TiB", 1ull << 40 },
		{ "64KB", 64ull << 10 }, { "64Kb", 64ull << 10 }, { "2MB", 2ull << 20 },
		{ "18446744073709551615", UINT64_MAX },
		{ "17179869183G", UINT64_MAX - (1ull << 30) + 1 },	/* 2^34 - 1 G */
		{ "16777215T", UINT64_MAX - (1ull << 40) + 1 },		/* 2^24 - 1 T */
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		uint64_t v = 12345;
		int ret = upg_parse_size(cases[i].s, &v);

		cr_assert_eq(ret, 0, "\"%s\": returned %d", cases[i].s, ret);
		cr_assert_eq(v, cases[i].want, "\"%s\" gave %llu, want %llu", cases[i].s,
			     (unsigned long long)v, (unsigned long long)cases[i].want);
	}
}

Test(options, parse_size_rejects_overflow)
{
	static const char *const bad[] = {
		"17179869184G",			/* 2^34 G = 2^64 */
		"16777216T",			/* 2^24 T = 2^64 */
		"18014398509481984K",		/* 2^54 K = 2^64 */
		"18446744073709551616",		/* UINT64_MAX + 1 */
		"99999999999999999999",
	};

	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		uint64_t v;
		int ret = upg_parse_size(bad[i], &v);

		cr_assert_eq(ret, -EINVAL, "\"%s\": returned %d, want -EINVAL", bad[i], ret);
	}
}

Test(options, parse_size_rejects_anything_but_a_number_and_a_suffix)
{
	static const char *const bad[] = {
		"", "K", "64X", "64K junk", "64 K", " 64", "64 ", "+64", "-4K",
		"1.5M", "0x10", "64KK", "64KBB", "64KBiB", "64Ki", "64KiBx", "64iB",
		"4096B", "64P",
	};

	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		uint64_t v;
		int ret = upg_parse_size(bad[i], &v);

		cr_assert_eq(ret, -EINVAL, "\"%s\": returned %d, want -EINVAL", bad[i], ret);
	}
	cr_assert_eq(upg_parse_size(NULL, &(uint64_t){ 0 }), -EINVAL);
}

Test(options, parse_bool_takes_every_spelling_in_any_case)
{
	static const struct { const char *s; bool want; } cases[] = {
		{ "1", true }, { "on", true }, { "yes", true }, { "true", true },
		{ "ON", true }, { "YeS", true }, { "TRUE", true },
		{ "0", false }, { "off", false }, { "no", false }, { "false", false },
		{ "OFF", false }, { "nO", false }, { "False", false },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		bool v = !cases[i].want;
		int ret = upg_parse_bool(cases[i].s, &v);

		cr_assert_eq(ret, 0, "\"%s\": returned %d", cases[i].s, ret);
		cr_assert_eq(v, cases[i].want, "\"%s\" gave %d", cases[i].s, v);
	}
}

Test(options, parse_bool_rejects_other_words)
{
	static const char *const bad[] = {
		"", "maybe", "2", "-1", "y", "n", "t", "onn", " on", "on ", "yes please",
		"01", "truee",
	};

	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		bool v;
		int ret = upg_parse_bool(bad[i], &v);

		cr_assert_eq(ret, -EINVAL, "\"%s\": returned %d, want -EINVAL", bad[i], ret);
	}
}

/* ---- upg_runtime_create() validates before opening a userfaultfd ------ */

/*
 * runtime.c runs upg_options_validate() before upg_uffd_init(), so these
 * need no userfaultfd: on a machine without one they still give -EINVAL.
 */
Test(options, runtime_create_rejects_invalid_struct)
{
	static char token;
	struct upg_runtime *const sentinel = (struct upg_runtime *)&token;
	struct upg_runtime *rt = sentinel;	/* must stay as is on failure */
	struct upg_options o;

	t_log_capture();
	t_options_default(&o);
	o.block_size = 3000;
	cr_assert_eq(upg_runtime_create(&o, &rt), -EINVAL);
	cr_assert_eq(rt, sentinel, "*out was written on failure");
	cr_assert(t_log_contains("UPAGER_BLOCK_SIZE"));

	t_options_default(&o);
	o.block_size = 4u << 20;
	cr_assert_eq(upg_runtime_create(&o, &rt), -EINVAL);

	t_options_default(&o);
	o.fault_threads = 257;
	cr_assert_eq(upg_runtime_create(&o, &rt), -EINVAL);

	t_options_default(&o);
	o.fault_mode = (enum upg_fault_mode)7;
	cr_assert_eq(upg_runtime_create(&o, &rt), -EINVAL);

	t_options_default(&o);
	o.features = UPG_FEAT_ALL + 1;		/* an unknown bit */
	cr_assert_eq(upg_runtime_create(&o, &rt), -EINVAL);
	cr_assert_eq(rt, sentinel, "*out was written on failure");
}

Test(options, runtime_create_without_opts_rejects_bad_environment)
{
	struct upg_runtime *rt = NULL;

	setenv("UPAGER_BLOCK_SIZE", "3000", 1);
	t_log_capture();
	cr_assert_eq(upg_runtime_create(NULL, &rt), -EINVAL);
	cr_assert_null(rt);
	cr_assert(t_log_contains("UPAGER_BLOCK_SIZE"));
}

/* Issue 4: the paging knobs. */
Test(options, budget_knobs_are_read_from_environment)
{
	struct upg_options o;

	setenv("UPAGER_BUDGET", "512M", 1);
	setenv("UPAGER_BUDGET_TOTAL", "1G", 1);
	setenv("UPAGER_ZPOOL_MAX", "256M", 1);
	setenv("UPAGER_LOW_WATERMARK", "80%", 1);
	setenv("UPAGER_HIGH_WATERMARK", "480M", 1);
	cr_assert_eq(upg_options_init(&o), 0);
	cr_assert_eq(o.budget, 512ul << 20);
	cr_assert_eq(o.budget_total, 1ul << 30);
	cr_assert_eq(o.zpool_max, 256ul << 20);
	cr_assert_eq(o.low_watermark, UPG_PERCENT(80));
	cr_assert_eq(o.high_watermark, 480ul << 20);
	cr_assert_eq(upg_options_validate(&o), 0);
}

Test(options, bad_watermark_percentages_are_refused)
{
	static const char *const bad[] = { "0%", "101%", "150%", "%", "9x%", "-5%", "50%%", "1e3%" };
	struct upg_options o = defaults();

	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		cr_assert_eq(upg_options_set(&o, "LOW_WATERMARK", bad[i]), -EINVAL, "%s", bad[i]);
		cr_assert_eq(o.low_watermark, 0, "%s changed the field", bad[i]);
	}
	cr_assert_eq(upg_options_set(&o, "LOW_WATERMARK", "100%"), 0);
	cr_assert_eq(o.low_watermark, UPG_PERCENT(100));
}

Test(options, impossible_budgets_are_refused_by_name)
{
	struct upg_options o = defaults();

	t_log_capture();
	o.block_size = 64 << 10;
	o.budget = 4096;		/* below one 64 KiB block */
	cr_assert_eq(upg_options_validate(&o), -EINVAL);
	cr_assert(t_log_contains("below one fill block"));

	o = defaults();
	o.budget = 1ul << 30;
	o.budget_total = 512ul << 20;	/* total below the resident budget */
	cr_assert_eq(upg_options_validate(&o), -EINVAL);
	cr_assert(t_log_contains("UPAGER_BUDGET_TOTAL"));

	o = defaults();
	o.budget = 1ul << 30;
	o.low_watermark = UPG_PERCENT(95);
	o.high_watermark = UPG_PERCENT(90);	/* low above high */
	cr_assert_eq(upg_options_validate(&o), -EINVAL);

	o = defaults();
	o.budget = 1ul << 30;
	o.low_watermark = UPG_PERCENT(100);	/* above the default high (99 %) */
	cr_assert_eq(upg_options_validate(&o), -EINVAL);

	o = defaults();
	o.budget = 1ul << 30;
	o.high_watermark = 2ul << 30;		/* above the budget */
	cr_assert_eq(upg_options_validate(&o), -EINVAL);
	cr_assert(t_log_contains("WATERMARK"));
}

/*
 * Default watermarks: 97 % and 99 % of a large budget; a small one keeps
 * a gap of an eighth of it between budget, high and low, so the evictor
 * has room to work before fills wait. One set by hand is taken as it is.
 */
Test(options, default_watermarks_leave_a_gap_under_small_budgets)
{
	struct upg_options o = defaults();
	size_t low, high;

	upg_watermarks(&o, 1ul << 30, &low, &high);
	cr_assert_eq(high, (1ul << 30) / 100 * 99);
	cr_assert_eq(low, (1ul << 30) / 100 * 97);
	upg_watermarks(&o, 4ul << 20, &low, &high);
	cr_assert_eq(high, (4ul << 20) - (512ul << 10));
	cr_assert_eq(low, (4ul << 20) - (1ul << 20));
	o.high_watermark = UPG_PERCENT(99);
	upg_watermarks(&o, 4ul << 20, &low, &high);
	cr_assert_eq(high, (4ul << 20) / 100 * 99);
	cr_assert_eq(low, high - (512ul << 10));
}

/* Issue 4: the oom and overcommit policies. */
Test(options, oom_and_overcommit_are_read_by_name)
{
	struct upg_options o;

	setenv("UPAGER_OOM", "Kill", 1);
	setenv("UPAGER_OOM_WAIT_MS", "2500", 1);
	setenv("UPAGER_OVERCOMMIT", "never", 1);
	cr_assert_eq(upg_options_init(&o), 0);
	cr_assert_eq(o.oom, UPG_OOM_KILL);
	cr_assert_eq(o.oom_wait_ms, 2500);
	cr_assert_eq(o.overcommit, UPG_OVERCOMMIT_NEVER);
	cr_assert_eq(upg_options_set(&o, "OOM", "wait"), 0);
	cr_assert_eq(o.oom, UPG_OOM_WAIT);
	cr_assert_eq(upg_options_set(&o, "OVERCOMMIT", "always"), 0);
	cr_assert_eq(o.overcommit, UPG_OVERCOMMIT_ALWAYS);
}

Test(options, bad_oom_values_are_refused_by_name)
{
	struct upg_options o = defaults();
	struct upg_runtime *rt = NULL;

	t_log_capture();
	cr_assert_eq(upg_options_set(&o, "OOM", "panic"), -EINVAL);
	cr_assert_eq(upg_options_set(&o, "OOM", ""), -EINVAL);
	cr_assert_eq(upg_options_set(&o, "OVERCOMMIT", "sometimes"), -EINVAL);
	cr_assert_eq(upg_options_set(&o, "OOM_WAIT_MS", "-1"), -EINVAL);
	cr_assert_eq(upg_options_set(&o, "OOM_WAIT_MS", "99999999999"), -EINVAL);
	cr_assert_eq(o.oom, UPG_OOM_WAIT, "a bad value changed the field");
	cr_assert(t_log_contains("UPAGER_OOM"));
	/* callback without a function: refused, named. */
	o.oom = UPG_OOM_CALLBACK;
	cr_assert_eq(upg_options_validate(&o), -EINVAL);
	cr_assert(t_log_contains("oom_callback"));
	cr_assert_eq(upg_runtime_create(&o, &rt), -EINVAL);
	o = defaults();
	o.overcommit = (enum upg_overcommit)3;
	cr_assert_eq(upg_options_validate(&o), -EINVAL);
}

/* Issue 5: the swap store's knobs. */
Test(options, swap_knobs_are_read_from_environment)
{
	struct upg_options o;

	setenv("UPAGER_BUDGET", "64M", 1);
	setenv("UPAGER_SWAP", "/var/tmp", 1);
	setenv("UPAGER_SWAP_SIZE", "4G", 1);
	setenv("UPAGER_DISABLE", "tmpfile,direct", 1);
	cr_assert_eq(upg_options_init(&o), 0);
	cr_assert_str_eq(o.swap, "/var/tmp");
	cr_assert_eq(o.swap_size, 4ul << 30);
	cr_assert_eq(o.features, UPG_FEAT_ALL & ~(UPG_FEAT_TMPFILE | UPG_FEAT_DIRECT));
	cr_assert_eq(upg_options_validate(&o), 0);
}

Test(options, a_relative_or_too_long_swap_path_is_refused_by_name)
{
	struct upg_options o = defaults();
	char longpath[UPG_SWAP_PATH_MAX + 8];

	t_log_capture();
	cr_assert_eq(upg_options_set(&o, "SWAP", "swapdir"), -EINVAL);
	cr_assert(t_log_contains("UPAGER_SWAP"));
	longpath[0] = '/';
	memset(longpath + 1, 'a', sizeof(longpath) - 2);
	longpath[sizeof(longpath) - 1] = '\0';
	cr_assert_eq(upg_options_set(&o, "SWAP", longpath), -EINVAL);
	cr_assert_eq(o.swap[0], '\0', "a refused path changed the field");
	cr_assert_eq(upg_options_set(&o, "SWAP", ""), 0);
}

Test(options, a_swap_store_without_a_budget_is_refused)
{
	struct upg_options o = defaults();

	t_log_capture();
	strcpy(o.swap, "/tmp");
	o.swap_size = 1ul << 30;
	cr_assert_eq(upg_options_validate(&o), -EINVAL);
	cr_assert(t_log_contains("needs a budget"));
	o.budget = 64ul << 20;
	cr_assert_eq(upg_options_validate(&o), 0);
	memset(o.swap, 'a', sizeof(o.swap));	/* no terminator */
	o.swap[0] = '/';
	cr_assert_eq(upg_options_validate(&o), -EINVAL);
}
