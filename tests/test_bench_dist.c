/*
 * upager-bench's distributions and page content (tools/bench/dist.c,
 * content.c): the generator, each distribution's shape checked
 * statistically against its formula with fixed seeds, the scatter
 * bijection, and the contents' LZ4 ratios, mix, determinism and checksum.
 * Fixed seeds make every check repeatable; the tolerances are several
 * standard errors wide, so a wrong formula fails while sampling noise does
 * not.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <lz4.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "content.h"
#include "dist.h"

#define ARRAY_LEN(a)	(sizeof(a) / sizeof((a)[0]))

static struct bench_dist t_dist(enum bench_dist_kind kind, double param,
				uint64_t n)
{
	struct bench_dist d;

	cr_assert_eq(bench_dist_init(&d, kind, param, n), 0,
		     "init kind %d param %g n %llu", kind, param,
		     (unsigned long long)n);
	return d;
}

/* The rank of each of @nr draws counted in @count[0..n). */
static uint64_t *t_rank_counts(const struct bench_dist *d, uint64_t seed,
			       uint64_t nr)
{
	uint64_t *count = calloc(d->n, sizeof(*count));
	struct bench_rng r;

	cr_assert_not_null(count);
	bench_rng_seed(&r, seed);
	for (uint64_t i = 0; i < nr; i++) {
		uint64_t unit = bench_dist_next(d, &r);

		cr_assert_lt(unit, d->n);
		count[bench_dist_unscatter(d, unit)]++;
	}
	return count;
}

static double rel_err(double got, double want)
{
	return fabs(got - want) / want;
}

/* ---- generator ---- */

Test(bench_dist, same_seed_gives_same_sequence_and_seeds_differ)
{
	struct bench_rng a, b, c;
	int same_ac = 0;

	bench_rng_seed(&a, 42);
	bench_rng_seed(&b, 42);
	bench_rng_seed(&c, 43);
	for (int i = 0; i < 1000; i++) {
		uint64_t x = bench_rng_next(&a);

		cr_assert_eq(x, bench_rng_next(&b));
		same_ac += x == bench_rng_next(&c);
	}
	cr_assert_eq(same_ac, 0);
}

Test(bench_dist, seed_zero_gives_a_working_generator)
{
	struct bench_rng r;
	uint64_t all_or = 0, all_and = ~0ull;

	bench_rng_seed(&r, 0);
	for (int i = 0; i < 64; i++) {
		uint64_t x = bench_rng_next(&r);

		all_or |= x;
		all_and &= x;
	}
	/* Every bit both set and clear somewhere in 64 draws. */
	cr_assert_eq(all_or, ~0ull);
	cr_assert_eq(all_and, 0);
}

Test(bench_dist, doubles_are_in_zero_one_with_mean_one_half)
{
	struct bench_rng r;
	double sum = 0;

	bench_rng_seed(&r, 5);
	for (int i = 0; i < 100000; i++) {
		double u = bench_rng_double(&r);

		cr_assert(u >= 0.0 && u < 1.0);
		sum += u;
	}
	/* sd of the mean: 0.289 / sqrt(1e5) = 0.0009 */
	cr_assert_lt(fabs(sum / 100000 - 0.5), 0.005);
}

/* ---- parameters ---- */

Test(bench_dist, bad_parameters_are_einval)
{
	struct bench_dist d;

	cr_assert_eq(bench_dist_init(&d, BENCH_DIST_RANDOM, 0, 0), -EINVAL);
	cr_assert_eq(bench_dist_init(&d, BENCH_DIST_ZIPF, 1.0, 100), -EINVAL);
	cr_assert_eq(bench_dist_init(&d, BENCH_DIST_ZIPF, 0.0, 100), -EINVAL);
	cr_assert_eq(bench_dist_init(&d, BENCH_DIST_ZIPF, -0.5, 100), -EINVAL);
	cr_assert_eq(bench_dist_init(&d, BENCH_DIST_ZIPF, NAN, 100), -EINVAL);
	cr_assert_eq(bench_dist_init(&d, BENCH_DIST_PARETO, 0.0, 100), -EINVAL);
	cr_assert_eq(bench_dist_init(&d, BENCH_DIST_PARETO, 1.0, 100), -EINVAL);
	cr_assert_eq(bench_dist_init(&d, BENCH_DIST_NORMAL, 0.0, 100), -EINVAL);
	cr_assert_eq(bench_dist_init(&d, BENCH_DIST_NORMAL, -5, 100), -EINVAL);
	cr_assert_eq(bench_dist_init(&d, (enum bench_dist_kind)99, 1, 100),
		     -EINVAL);
	cr_assert_eq(bench_dist_init(&d, BENCH_DIST_ZIPF, 0.99, 100), 0);
	cr_assert_eq(bench_dist_init(&d, BENCH_DIST_PARETO, 0.9, 100), 0);
	cr_assert_eq(bench_dist_init(&d, BENCH_DIST_NORMAL, 10, 100), 0);
}

/* ---- uniform ---- */

/* chi-square, 63 degrees of freedom, 99.9% quantile */
#define CHI2_63_999	103.44

static double chi2_64(const uint64_t bucket[64], uint64_t nr)
{
	double chi2 = 0, want = nr / 64.0;

	for (int b = 0; b < 64; b++)
		chi2 += (bucket[b] - want) * (bucket[b] - want) / want;
	return chi2;
}

/* Both the ranks and the units they scatter to are uniform. */
Test(bench_dist, uniform_passes_chi_square_over_64_buckets)
{
	static const uint64_t ns[] = { 1ull << 40, 1000003, 64 * 1000 };

	for (size_t i = 0; i < ARRAY_LEN(ns); i++) {
		struct bench_dist d = t_dist(BENCH_DIST_RANDOM, 0, ns[i]);
		uint64_t by_unit[64] = { 0 }, by_rank[64] = { 0 };
		const uint64_t nr = 1000000;
		struct bench_rng r;

		bench_rng_seed(&r, 100 + i);
		for (uint64_t k = 0; k < nr; k++) {
			uint64_t unit = bench_dist_next(&d, &r);

			cr_assert_lt(unit, ns[i]);
			/* 64 * unit fits: n <= 2^40. */
			by_unit[unit * 64 / ns[i]]++;
			by_rank[bench_dist_unscatter(&d, unit) * 64 / ns[i]]++;
		}
		cr_assert_lt(chi2_64(by_unit, nr), CHI2_63_999, "n %llu: %.1f",
			     (unsigned long long)ns[i], chi2_64(by_unit, nr));
		cr_assert_lt(chi2_64(by_rank, nr), CHI2_63_999, "n %llu: %.1f",
			     (unsigned long long)ns[i], chi2_64(by_rank, nr));
	}
}

Test(bench_dist, every_kind_stays_in_range_for_tiny_and_huge_n)
{
	static const uint64_t ns[] = { 1, 2, 3, 1ull << 40 };
	static const struct { enum bench_dist_kind kind; double param; } k[] = {
		{ BENCH_DIST_RANDOM, 0 }, { BENCH_DIST_ZIPF, 0.99 },
		{ BENCH_DIST_ZIPF, 1.2 }, { BENCH_DIST_PARETO, 0.9 },
		{ BENCH_DIST_NORMAL, 10 }, { BENCH_DIST_NORMAL, 300 },
	};

	for (size_t i = 0; i < ARRAY_LEN(ns); i++) {
		for (size_t j = 0; j < ARRAY_LEN(k); j++) {
			struct bench_dist d = t_dist(k[j].kind, k[j].param, ns[i]);
			uint64_t seen = 0;
			struct bench_rng r;

			bench_rng_seed(&r, j);
			for (int m = 0; m < 20000; m++) {
				uint64_t unit = bench_dist_next(&d, &r);

				cr_assert_lt(unit, ns[i], "kind %d n %llu: %llu",
					     k[j].kind, (unsigned long long)ns[i],
					     (unsigned long long)unit);
				if (unit < 64)
					seen |= 1ull << unit;
			}
			/*
			 * Tiny ranges: every unit gets drawn, but for
			 * pareto:0.9, whose top half takes all but 2.6e-7.
			 */
			if (ns[i] <= 3 && k[j].kind != BENCH_DIST_PARETO)
				cr_assert_eq(seen, (1ull << ns[i]) - 1,
					     "kind %d n %llu", k[j].kind,
					     (unsigned long long)ns[i]);
		}
	}
}

/* ---- zipf ---- */

static double zeta_exact(uint64_t n, double theta)
{
	double sum = 0;

	for (uint64_t k = n; k >= 1; k--)
		sum += pow((double)k, -theta);
	return sum;
}

/*
 * P(rank k) = (k+1)^-theta / zeta(n): ranks 0 and 1 are exact by
 * construction, the rest come from the continuous approximation (within
 * ~1% at rank 2, less beyond; fio's truncating version is +20% at rank 2).
 * At 10^7 draws the standard error is 0.1% at rank 0 and 1.1% at rank 99.
 */
static void check_zipf(double theta)
{
	const uint64_t n = 100000, nr = 10000000;
	struct bench_dist d = t_dist(BENCH_DIST_ZIPF, theta, n);
	uint64_t *count = t_rank_counts(&d, 7, nr);
	static const struct { uint64_t rank; double tol; } top[] = {
		{ 0, 0.01 }, { 1, 0.01 }, { 2, 0.025 }, { 9, 0.02 }, { 99, 0.05 },
	};
	double zeta = zeta_exact(n, theta), want_top = 0, got_top = 0;

	for (size_t i = 0; i < ARRAY_LEN(top); i++) {
		double want = pow(top[i].rank + 1.0, -theta) / zeta;
		double got = (double)count[top[i].rank] / nr;

		cr_assert_lt(rel_err(got, want), top[i].tol,
			     "theta %g rank %llu: %.5f, want %.5f", theta,
			     (unsigned long long)top[i].rank, got, want);
	}
	/* The top 1% of the ranks. */
	for (uint64_t k = 0; k < n / 100; k++) {
		want_top += pow(k + 1.0, -theta) / zeta;
		got_top += (double)count[k] / nr;
	}
	cr_assert_lt(rel_err(got_top, want_top), 0.005,
		     "theta %g top 1%%: %.4f, want %.4f", theta, got_top,
		     want_top);
	free(count);
}

Test(bench_dist, zipf_0_99_matches_the_exact_pmf, .timeout = 60)
{
	check_zipf(0.99);
}

Test(bench_dist, zipf_1_2_matches_the_exact_pmf, .timeout = 60)
{
	check_zipf(1.2);
}

Test(bench_dist, zeta_approximation_is_within_1e_9_of_the_exact_sum)
{
	static const double thetas[] = { 0.5, 0.99, 1.001, 1.2, 2.0 };

	for (size_t i = 0; i < ARRAY_LEN(thetas); i++) {
		double exact = zeta_exact(1000000, thetas[i]);
		double approx = bench_zeta(1000000, thetas[i]);

		cr_assert_lt(rel_err(approx, exact), 1e-9,
			     "theta %g: %.15g, exact %.15g", thetas[i], approx,
			     exact);
	}
	/* Small n is summed exactly. */
	cr_assert_eq(bench_zeta(1, 0.99), 1.0);
	cr_assert_lt(rel_err(bench_zeta(2, 1.2), 1 + pow(2, -1.2)), 1e-15);
}

Test(bench_dist, zipf_over_2_to_the_40_has_rank_0_at_1_over_zeta)
{
	const uint64_t n = 1ull << 40, nr = 1000000;
	struct bench_dist d = t_dist(BENCH_DIST_ZIPF, 0.99, n);
	/* zeta(2^40, 0.99) ~ 30.9: rank 0 is 3.2% (standard error 0.6%). */
	double want = 1 / bench_zeta(n, 0.99), got;
	uint64_t rank0 = 0;
	struct bench_rng r;

	bench_rng_seed(&r, 11);
	for (uint64_t i = 0; i < nr; i++) {
		uint64_t unit = bench_dist_next(&d, &r);

		cr_assert_lt(unit, n);
		rank0 += bench_dist_unscatter(&d, unit) == 0;
	}
	got = (double)rank0 / nr;
	cr_assert_lt(rel_err(got, want), 0.03, "%.5f, want %.5f", got, want);
}

/* ---- pareto ---- */

/*
 * pareto:h draws the rank fraction r with P(r < f) = 1 - (1 - f)^(1/p),
 * p = ln h / ln(1 - h): for h = 0.9, 1/p = 21.854, so the top 10% of the
 * ranks get exactly 90% of the draws and the top 20% get 99.24%.
 */
static double pareto_cdf(double f, double h)
{
	return 1 - pow(1 - f, log1p(-h) / log(h));
}

Test(bench_dist, pareto_0_9_puts_90_percent_on_the_top_tenth, .timeout = 30)
{
	const uint64_t n = 1000000, nr = 1000000;
	struct bench_dist d = t_dist(BENCH_DIST_PARETO, 0.9, n);
	uint64_t *count = t_rank_counts(&d, 3, nr);
	uint64_t decile[10] = { 0 }, pct[10] = { 0 };
	double top20;

	for (uint64_t k = 0; k < n; k++) {
		decile[k * 10 / n] += count[k];
		if (k < n / 10)
			pct[k * 100 / n] += count[k];
	}
	/* Popularity never rises with rank, and falls while it is sampled. */
	for (int i = 0; i < 9; i++) {
		cr_assert_geq(decile[i], decile[i + 1], "decile %d", i);
		if (i < 3)
			cr_assert_gt(decile[i], decile[i + 1], "decile %d", i);
		cr_assert_gt(pct[i], pct[i + 1], "percentile %d", i);
	}
	/* Shares against the formula: sd of a share <= 0.0005 here. */
	cr_assert_lt(fabs(decile[0] / (double)nr - 0.9), 0.003);
	top20 = (decile[0] + decile[1]) / (double)nr;
	cr_assert_lt(fabs(top20 - pareto_cdf(0.2, 0.9)), 0.002, "%.4f", top20);
	cr_assert_lt(fabs(pareto_cdf(0.2, 0.9) - 0.9924), 0.0001);
	for (int i = 0; i < 10; i++) {
		double want = pareto_cdf((i + 1) / 100.0, 0.9) -
			      pareto_cdf(i / 100.0, 0.9);

		cr_assert_lt(rel_err(pct[i] / (double)nr, want), 0.03,
			     "percentile %d: %.4f, want %.4f", i,
			     pct[i] / (double)nr, want);
	}
	free(count);
}

/* ---- normal ---- */

Test(bench_dist, normal_10_percent_has_mean_n_over_2_and_sd_n_over_10)
{
	const uint64_t n = 1000000, nr = 1000000;
	struct bench_dist d = t_dist(BENCH_DIST_NORMAL, 10, n);
	double sum = 0, sum2 = 0, mean, sd;
	struct bench_rng r;

	bench_rng_seed(&r, 13);
	for (uint64_t i = 0; i < nr; i++) {
		double x = (double)bench_dist_unscatter(&d, bench_dist_next(&d, &r));

		sum += x;
		sum2 += x * x;
	}
	mean = sum / nr;
	sd = sqrt(sum2 / nr - mean * mean);
	/* Standard errors: 100 for the mean, 0.07% for the sd. */
	cr_assert_lt(fabs(mean - n / 2.0), 500, "mean %.1f", mean);
	cr_assert_lt(rel_err(sd, n / 10.0), 0.005, "sd %.1f", sd);
}

Test(bench_dist, normal_reflects_its_tails_into_the_range)
{
	/* dev 50%: a third of the draws land outside [0, n) before folding. */
	const uint64_t n = 1000, nr = 1000000;
	struct bench_dist d = t_dist(BENCH_DIST_NORMAL, 50, n);
	uint64_t *count = t_rank_counts(&d, 17, nr);

	/* Folding keeps the density smooth: no pile-up on the end units. */
	cr_assert_lt(count[0], 2 * count[1] + 100);
	cr_assert_lt(count[n - 1], 2 * count[n - 2] + 100);
	cr_assert_gt(count[0], 0);
	cr_assert_gt(count[n - 1], 0);
	free(count);
}

/* ---- scatter ---- */

static void check_bijection(uint64_t n)
{
	struct bench_dist d = t_dist(BENCH_DIST_ZIPF, 0.99, n);
	uint8_t *hit = calloc(n, 1);

	cr_assert_not_null(hit);
	for (uint64_t r = 0; r < n; r++) {
		uint64_t unit = bench_dist_scatter(&d, r);

		cr_assert_lt(unit, n);
		cr_assert_eq(hit[unit], 0, "n %llu: unit %llu hit twice",
			     (unsigned long long)n, (unsigned long long)unit);
		hit[unit] = 1;
		cr_assert_eq(bench_dist_unscatter(&d, unit), r);
	}
	free(hit);
}

Test(bench_dist, scatter_is_a_bijection)
{
	static const uint64_t ns[] = { 1, 2, 3, 1000, 4096, 4097, 65537 };

	for (size_t i = 0; i < ARRAY_LEN(ns); i++)
		check_bijection(ns[i]);
}

Test(bench_dist, hot_ranks_are_spread_over_the_range)
{
	static const uint64_t ns[] = { 1000, 4097, 1000000, 1ull << 40 };

	for (size_t i = 0; i < ARRAY_LEN(ns); i++) {
		struct bench_dist d = t_dist(BENCH_DIST_ZIPF, 0.99, ns[i]);
		int slice[64] = { 0 }, used = 0;

		/* Random placement would use ~41 of the 64 slices. */
		for (uint64_t r = 0; r < 64; r++) {
			uint64_t unit = bench_dist_scatter(&d, r);

			/* 64 * unit fits: n <= 2^40. */
			used += !slice[unit * 64 / ns[i]]++;
		}
		cr_assert_geq(used, 40, "n %llu: %d slices",
			      (unsigned long long)ns[i], used);
	}
}

Test(bench_dist, same_seed_gives_same_units_and_seeds_differ)
{
	struct bench_dist d = t_dist(BENCH_DIST_ZIPF, 0.99, 1000000);
	struct bench_rng a, b, c;
	int same_ac = 0;

	bench_rng_seed(&a, 1);
	bench_rng_seed(&b, 1);
	bench_rng_seed(&c, 2);
	for (int i = 0; i < 10000; i++) {
		uint64_t x = bench_dist_next(&d, &a);

		cr_assert_eq(x, bench_dist_next(&d, &b));
		same_ac += x == bench_dist_next(&d, &c);
	}
	/* Zipf repeats hot units, so some coincide; most do not. */
	cr_assert_lt(same_ac, 1000);
}

/* ---- content ---- */

static double lz4_ratio(const void *page)
{
	char out[LZ4_COMPRESSBOUND(BENCH_PAGE)];
	int len = LZ4_compress_default(page, out, BENCH_PAGE, sizeof(out));

	cr_assert_gt(len, 0);
	return (double)BENCH_PAGE / len;
}

static bool is_zero(const uint8_t *p)
{
	for (size_t i = 0; i < BENCH_PAGE; i++)
		if (p[i])
			return false;
	return true;
}

Test(bench_dist, text_compresses_2_5_to_3_times_with_lz4)
{
	uint8_t page[BENCH_PAGE];
	double sum = 0;

	for (uint64_t i = 0; i < 2000; i++) {
		bench_content_fill(BENCH_CONTENT_TEXT, 42, i, page);
		sum += lz4_ratio(page);
	}
	sum /= 2000;
	cr_assert(sum >= 2.5 && sum <= 3.0, "mean ratio %.3f", sum);
}

Test(bench_dist, text_is_printable_words)
{
	uint8_t page[BENCH_PAGE];
	size_t spaces = 0;

	bench_content_fill(BENCH_CONTENT_TEXT, 1, 77, page);
	for (size_t i = 0; i < BENCH_PAGE; i++) {
		cr_assert((page[i] >= 0x20 && page[i] < 0x7f) || page[i] == '\n',
			  "byte %zu is 0x%02x", i, page[i]);
		spaces += page[i] == ' ';
	}
	/* Words of a few letters: a space every 4-8 bytes. */
	cr_assert(spaces > BENCH_PAGE / 8 && spaces < BENCH_PAGE / 4,
		  "%zu spaces", spaces);
}

Test(bench_dist, random_content_does_not_compress)
{
	uint8_t page[BENCH_PAGE];

	for (uint64_t i = 0; i < 200; i++) {
		bench_content_fill(BENCH_CONTENT_RANDOM, 42, i, page);
		cr_assert_lt(lz4_ratio(page), 1.0 / 0.98, "page %llu",
			     (unsigned long long)i);
	}
}

Test(bench_dist, zero_content_is_all_zero)
{
	uint8_t page[BENCH_PAGE];

	memset(page, 0xff, sizeof(page));
	bench_content_fill(BENCH_CONTENT_ZERO, 42, 5, page);
	cr_assert(is_zero(page));
}

/*
 * Mixed: each page is exactly the text, random or zero page of the same
 * (seed, page), in 50/25/25 proportions (sd 0.5% / 0.43% over 10^4).
 */
Test(bench_dist, mixed_is_half_text_a_quarter_random_a_quarter_zero)
{
	static uint8_t page[BENCH_PAGE], pure[BENCH_PAGE];
	static const enum bench_content kinds[] = {
		BENCH_CONTENT_TEXT, BENCH_CONTENT_RANDOM, BENCH_CONTENT_ZERO,
	};
	const double want[] = { 0.5, 0.25, 0.25 };
	unsigned int nr[3] = { 0 };
	const unsigned int pages = 10000;

	for (uint64_t i = 0; i < pages; i++) {
		size_t k;

		bench_content_fill(BENCH_CONTENT_MIXED, 9, i, page);
		for (k = 0; k < ARRAY_LEN(kinds); k++) {
			bench_content_fill(kinds[k], 9, i, pure);
			if (!memcmp(page, pure, BENCH_PAGE))
				break;
		}
		cr_assert_lt(k, ARRAY_LEN(kinds), "page %llu is none",
			     (unsigned long long)i);
		nr[k]++;
	}
	for (size_t k = 0; k < 3; k++)
		cr_assert_lt(fabs((double)nr[k] / pages - want[k]), 0.025,
			     "kind %zu: %u of %u", k, nr[k], pages);
}

Test(bench_dist, content_is_deterministic_and_pages_differ)
{
	static const enum bench_content kinds[] = {
		BENCH_CONTENT_TEXT, BENCH_CONTENT_RANDOM, BENCH_CONTENT_MIXED,
	};
	static uint8_t a[BENCH_PAGE], b[BENCH_PAGE];
	enum { PAGES = 500 };
	uint64_t zero_sum;

	memset(a, 0, sizeof(a));
	zero_sum = bench_page_sum(a);

	for (size_t k = 0; k < ARRAY_LEN(kinds); k++) {
		uint64_t sums[PAGES];

		for (uint64_t i = 0; i < PAGES; i++) {
			bench_content_fill(kinds[k], 3, i, a);
			memset(b, 0xaa, sizeof(b));
			bench_content_fill(kinds[k], 3, i, b);
			cr_assert(!memcmp(a, b, BENCH_PAGE));
			sums[i] = bench_page_sum(a);
			/* Another seed, another page (unless both are zero). */
			bench_content_fill(kinds[k], 4, i, b);
			if (!is_zero(a) || !is_zero(b))
				cr_assert(memcmp(a, b, BENCH_PAGE),
					  "kind %d page %llu", kinds[k],
					  (unsigned long long)i);
		}
		for (uint64_t i = 0; i < PAGES; i++)
			for (uint64_t j = i + 1; j < PAGES; j++) {
				/* Mixed has zero pages, all alike. */
				if (sums[i] == zero_sum &&
				    kinds[k] == BENCH_CONTENT_MIXED)
					continue;
				cr_assert_neq(sums[i], sums[j],
					      "kind %d pages %llu %llu", kinds[k],
					      (unsigned long long)i,
					      (unsigned long long)j);
			}
	}
}

Test(bench_dist, page_sum_changes_when_any_one_byte_changes)
{
	static uint8_t page[BENCH_PAGE];
	uint64_t sum;

	bench_content_fill(BENCH_CONTENT_TEXT, 8, 1, page);
	sum = bench_page_sum(page);
	cr_assert_eq(bench_page_sum(page), sum);
	for (size_t i = 0; i < BENCH_PAGE; i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			page[i] ^= (uint8_t)(1u << bit);
			cr_assert_neq(bench_page_sum(page), sum, "byte %zu bit %d",
				      i, bit);
			page[i] ^= (uint8_t)(1u << bit);
		}
	}
	cr_assert_eq(bench_page_sum(page), sum);
	/* A zero page has a sum like any other, not 0. */
	memset(page, 0, sizeof(page));
	cr_assert_neq(bench_page_sum(page), 0);
}
