/*
 * struct upg_options: defaults, then UPAGER_* variables, then the caller.
 * One table describes every option; parsing is strict (a value that is not
 * entirely a number, or is out of range, is an error), because a typo in a
 * budget must not silently become the default.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define UPG_LOG_PREFIX "options: "
#include "log.h"
#include "options.h"

enum opt_kind { OPT_SIZE, OPT_LEVEL, OPT_UINT, OPT_BOOL, OPT_ENUM, OPT_FEATURES, OPT_PATH };

struct opt_desc {
	const char *name;
	enum opt_kind kind;
	size_t offset;
	const char *help;
	uint64_t min, max;	/* OPT_SIZE, OPT_UINT; max 0: no limit */
	bool pow2;		/* OPT_SIZE: a power of two */
	const char *const *names;	/* OPT_ENUM: value i's name, NULL-ended */
};

#define OPT_AT(field) offsetof(struct upg_options, field)

#define UPG_OOM_WAIT_MS_MAX	(24u * 3600 * 1000)

/* OPT_ENUM names, in the order of the enum's values. */
static const char *const fault_mode_names[] = { "poll", "sigbus", NULL };
static const char *const oom_names[] = { "wait", "kill", "callback", NULL };
static const char *const overcommit_names[] = { "heuristic", "always", "never", NULL };
_Static_assert(sizeof(enum upg_oom_policy) == sizeof(unsigned int) &&
	       sizeof(enum upg_overcommit) == sizeof(unsigned int) &&
	       sizeof(enum upg_fault_mode) == sizeof(unsigned int), "OPT_ENUM fields");

static const struct opt_desc opt_table[] = {
	/* UPAGER_<name>    kind           field                   help */
	{ "BLOCK_SIZE",     OPT_SIZE,      OPT_AT(block_size),     "bytes filled per fault, 4K..2M, a power of 2",
	  4096, 2u << 20, true, NULL },
	{ "BUDGET",         OPT_SIZE,      OPT_AT(budget),         "resident bytes before eviction, 0 = no limit",
	  0, 0, false, NULL },
	{ "BUDGET_TOTAL",   OPT_SIZE,      OPT_AT(budget_total),   "resident + zpool bytes, 0 = no limit",
	  0, 0, false, NULL },
	{ "ZPOOL_MAX",      OPT_SIZE,      OPT_AT(zpool_max),      "zpool bytes, 0 = no cap of its own",
	  0, 0, false, NULL },
	{ "SWAP",           OPT_PATH,      OPT_AT(swap),           "swap store: a directory or a block device, empty = none",
	  0, 0, false, NULL },
	{ "SWAP_SIZE",      OPT_SIZE,      OPT_AT(swap_size),      "swap store's most bytes (a device: 0 = all of it)",
	  0, 0, false, NULL },
	{ "LOW_WATERMARK",  OPT_LEVEL,     OPT_AT(low_watermark),  "evictor stops here: bytes or N% of budget (97%)",
	  0, 0, false, NULL },
	{ "HIGH_WATERMARK", OPT_LEVEL,     OPT_AT(high_watermark), "evictor starts here: bytes or N% of budget (99%)",
	  0, 0, false, NULL },
	{ "OOM",            OPT_ENUM,      OPT_AT(oom),            "budget cannot be kept: wait, kill or callback",
	  0, 0, false, oom_names },
	{ "OOM_WAIT_MS",    OPT_UINT,      OPT_AT(oom_wait_ms),    "oom=wait gives up after this, 0 = 10000",
	  0, UPG_OOM_WAIT_MS_MAX, false, NULL },
	{ "OVERCOMMIT",     OPT_ENUM,      OPT_AT(overcommit),     "regions past budget + store: heuristic, always, never",
	  0, 0, false, overcommit_names },
	{ "FAULT_THREADS",  OPT_UINT,      OPT_AT(fault_threads),  "uffd reader threads, 0 = one per CPU (two with a swap store), at most 256",
	  0, UPG_FAULT_THREADS_MAX, false, NULL },
	{ "PIN_THREADS",    OPT_BOOL,      OPT_AT(pin_threads),    "pin reader i to CPU i", 0, 0, false, NULL },
	{ "FAULT_MODE",     OPT_ENUM,      OPT_AT(fault_mode),     "poll (reader threads) or sigbus (opt-in)",
	  0, 0, false, fault_mode_names },
	{ "DISABLE",        OPT_FEATURES,  OPT_AT(features),       "kernel features not to use, comma-separated", 0, 0, false, NULL },
	{ "VERBOSE",        OPT_BOOL,      OPT_AT(verbose),        "log options and features at start", 0, 0, false, NULL },
};

UPG_API int upg_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (toupper((unsigned char)*end)) {
	case 'K': shift = 10; end++; break;
	case 'M': shift = 20; end++; break;
	case 'G': shift = 30; end++; break;
	case 'T': shift = 40; end++; break;
	}
	/* "64K", "64KB" (binary, as fio reads it) and "64KiB"; nothing else. */
	if (shift && (end[0] == 'i' || end[0] == 'I') && toupper((unsigned char)end[1]) == 'B')
		end += 2;
	else if (shift && toupper((unsigned char)end[0]) == 'B')
		end++;
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

UPG_API int upg_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "1", "on", "yes", "true" };
	static const char *const no[] = { "0", "off", "no", "false" };

	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(s, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* Bytes, or "N%" (1..100) of the budget as UPG_PERCENT(N). */
static int parse_level(const char *s, size_t *out)
{
	size_t n = strlen(s);
	uint64_t v;

	if (n > 1 && s[n - 1] == '%') {
		char buf[8];
		unsigned int pct;

		if (n > sizeof(buf) || !isdigit((unsigned char)s[0]))
			return -EINVAL;
		memcpy(buf, s, n - 1);
		buf[n - 1] = '\0';
		pct = (unsigned int)strtoul(buf, NULL, 10);
		if (strspn(buf, "0123456789") != n - 1 || pct < 1 || pct > 100)
			return -EINVAL;
		*out = UPG_PERCENT(pct);
		return 0;
	}
	if (upg_parse_size(s, &v) || v > SIZE_MAX || upg_is_percent((size_t)v))
		return -EINVAL;
	*out = (size_t)v;
	return 0;
}

static int parse_uint(const char *s, unsigned int *out)
{
	unsigned long v;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > UINT_MAX)
		return -EINVAL;
	*out = (unsigned int)v;
	return 0;
}

/* Enum fields are unsigned int: their enums have no negative values. */
static int parse_enum(const char *s, const char *const *names, unsigned int *out)
{
	for (unsigned int i = 0; names[i]; i++)
		if (!strcasecmp(s, names[i])) {
			*out = i;
			return 0;
		}
	return -EINVAL;
}

static unsigned int enum_count(const char *const *names)
{
	unsigned int n = 0;

	while (names[n])
		n++;
	return n;
}

/* "move,zeropage" clears those bits from the allowed set; "" clears none. */
static int parse_features(const char *s, unsigned int *out)
{
	unsigned int allowed = UPG_FEAT_ALL;
	char buf[256], *save, *tok;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		unsigned int bit;

		for (bit = 1; bit & UPG_FEAT_ALL; bit <<= 1)
			if (!strcasecmp(tok, upg_feature_name(bit)))
				break;
		if (!(bit & UPG_FEAT_ALL))
			return -EINVAL;
		allowed &= ~bit;
	}
	*out = allowed;
	return 0;
}

static int parse_one(const struct opt_desc *d, const char *value,
		     struct upg_options *o)
{
	char *field = (char *)o + d->offset;
	uint64_t size;
	int ret;

	switch (d->kind) {
	case OPT_SIZE:
		ret = upg_parse_size(value, &size);
		if (!ret && size > SIZE_MAX)
			ret = -EINVAL;
		if (!ret)
			*(size_t *)field = (size_t)size;
		return ret;
	case OPT_LEVEL:
		return parse_level(value, (size_t *)field);
	case OPT_UINT:
		return parse_uint(value, (unsigned int *)field);
	case OPT_BOOL:
		return upg_parse_bool(value, (bool *)field);
	case OPT_ENUM:
		return parse_enum(value, d->names, (unsigned int *)field);
	case OPT_FEATURES:
		return parse_features(value, (unsigned int *)field);
	case OPT_PATH:
		/* An absolute path, or none: a relative one would change with cwd. */
		if ((*value && *value != '/') || strlen(value) >= UPG_SWAP_PATH_MAX)
			return -EINVAL;
		strcpy(field, value);
		return 0;
	}
	return -EINVAL;
}

/* Is the field @d describes in range? Parsing checked its syntax. */
static bool field_ok(const struct opt_desc *d, const struct upg_options *o)
{
	const char *field = (const char *)o + d->offset;
	uint64_t v;

	switch (d->kind) {
	case OPT_SIZE:
		v = *(const size_t *)field;
		break;
	case OPT_UINT:
		v = *(const unsigned int *)field;
		break;
	case OPT_LEVEL:
		v = *(const size_t *)field;
		return !upg_is_percent(v) || (upg_percent_of(v) >= 1 && upg_percent_of(v) <= 100);
	case OPT_ENUM:
		return *(const unsigned int *)field < enum_count(d->names);
	case OPT_FEATURES:
		return !(o->features & ~UPG_FEAT_ALL);
	default:
		return true;
	}
	return v >= d->min && (!d->max || v <= d->max) && (!d->pow2 || !(v & (v - 1)));
}

/* Checks between fields: each alone may be fine. */
static int budget_ok(const struct upg_options *o)
{
	size_t budget = o->budget ? o->budget : o->budget_total;
	size_t low, high;

	upg_watermarks(o, budget, &low, &high);

	if ((o->budget && o->budget < o->block_size) ||
	    (o->budget_total && o->budget_total < o->block_size)) {
		upg_warn("UPAGER_BUDGET/BUDGET_TOTAL: below one fill block (%zu bytes)",
			 o->block_size);
		return -EINVAL;
	}
	if (o->budget && o->budget_total && o->budget_total < o->budget) {
		upg_warn("UPAGER_BUDGET_TOTAL (%zu) is below UPAGER_BUDGET (%zu)",
			 o->budget_total, o->budget);
		return -EINVAL;
	}
	if (budget && (low > budget || high > budget || low > high)) {
		upg_warn("UPAGER_LOW_WATERMARK/HIGH_WATERMARK: need low <= high <= budget");
		return -EINVAL;
	}
	return 0;
}

int upg_options_validate(const struct upg_options *o)
{
	int ret = 0;

	for (size_t i = 0; i < sizeof(opt_table) / sizeof(opt_table[0]); i++) {
		if (field_ok(&opt_table[i], o))
			continue;
		upg_warn("UPAGER_%s: out of range: %s", opt_table[i].name, opt_table[i].help);
		ret = -EINVAL;
	}
	if (o->oom == UPG_OOM_CALLBACK && !o->oom_callback) {
		upg_warn("UPAGER_OOM=callback: no oom_callback is set (code only)");
		ret = -EINVAL;
	}
	if (!memchr(o->swap, '\0', sizeof(o->swap))) {
		upg_warn("UPAGER_SWAP: the path is not terminated");
		ret = -EINVAL;
	} else if (o->swap[0] && !o->budget && !o->budget_total) {
		/* Without a budget nothing is evicted: the store would sit unused. */
		upg_warn("UPAGER_SWAP=%s needs a budget (UPAGER_BUDGET or UPAGER_BUDGET_TOTAL)",
			 o->swap);
		ret = -EINVAL;
	}
	return ret ? ret : budget_ok(o);
}

UPG_API int upg_options_set(struct upg_options *o, const char *name,
			    const char *value)
{
	if (!name || !value)
		return -EINVAL;
	if (!strncasecmp(name, "UPAGER_", 7))
		name += 7;
	for (size_t i = 0; i < sizeof(opt_table) / sizeof(opt_table[0]); i++) {
		const struct opt_desc *d = &opt_table[i];
		struct upg_options tmp = *o;

		if (strcasecmp(name, d->name))
			continue;
		if (parse_one(d, value, &tmp) || !field_ok(d, &tmp)) {
			upg_warn("UPAGER_%s=\"%s\": %s; keeping the previous value",
				 d->name, value, d->help);
			return -EINVAL;
		}
		*o = tmp;
		return 0;
	}
	return -ENOENT;
}

UPG_API int upg_options_init(struct upg_options *o)
{
	int ret = 0;

	*o = (struct upg_options){
		/*
		 * A page: a random access brings back only what it needs, and
		 * readahead gives streams their long fills (bench/run-standard).
		 */
		.block_size = 4 << 10,
		.fault_threads = 0,
		.pin_threads = true,
		.fault_mode = UPG_FAULT_POLL,
		.features = UPG_FEAT_ALL,
		.verbose = false,
	};
	for (size_t i = 0; i < sizeof(opt_table) / sizeof(opt_table[0]); i++) {
		char var[64] = "UPAGER_";
		const char *value;

		strcat(var, opt_table[i].name);
		value = getenv(var);
		if (value && upg_options_set(o, opt_table[i].name, value))
			ret = -EINVAL;
	}
	return ret;
}

static void format_value(const struct opt_desc *d, const struct upg_options *o,
			 char *buf, size_t len)
{
	const char *field = (const char *)o + d->offset;
	size_t n = 0;

	switch (d->kind) {
	case OPT_SIZE:
		snprintf(buf, len, "%zu", *(const size_t *)field);
		return;
	case OPT_LEVEL:
		if (upg_is_percent(*(const size_t *)field))
			snprintf(buf, len, "%u%%", upg_percent_of(*(const size_t *)field));
		else
			snprintf(buf, len, "%zu", *(const size_t *)field);
		return;
	case OPT_UINT:
		snprintf(buf, len, "%u", *(const unsigned int *)field);
		return;
	case OPT_BOOL:
		snprintf(buf, len, "%s", *(const bool *)field ? "on" : "off");
		return;
	case OPT_ENUM:
		snprintf(buf, len, "%s", *(const unsigned int *)field < enum_count(d->names) ?
			 d->names[*(const unsigned int *)field] : "?");
		return;
	case OPT_PATH:
		snprintf(buf, len, "%s", *field ? field : "(none)");
		return;
	case OPT_FEATURES:
		buf[0] = '\0';
		for (unsigned int bit = 1; bit & UPG_FEAT_ALL; bit <<= 1)
			if (!(o->features & bit) && n < len)
				n += (size_t)snprintf(buf + n, len - n, "%s%s",
						      n ? "," : "", upg_feature_name(bit));
		return;
	}
}

void upg_options_dump(const struct upg_options *o)
{
	for (size_t i = 0; i < sizeof(opt_table) / sizeof(opt_table[0]); i++) {
		char value[128];

		format_value(&opt_table[i], o, value, sizeof(value));
		upg_info("UPAGER_%-14s = %-10s  # %s", opt_table[i].name, value,
			 opt_table[i].help);
	}
}
