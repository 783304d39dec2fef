/*
 * Printing results: fio-like text, a JSON document with stable field names
 * (docs/upager-bench.1, OUTPUT), and an optional gnuplot picture.
 */
#ifndef UPG_BENCH_REPORT_H
#define UPG_BENCH_REPORT_H

#include <stdio.h>

#include "job.h"
#include "run.h"

/* One job's results under each engine it ran. */
struct bench_outcome {
	const struct bench_job *job;
	struct bench_result res[BENCH_NR_ENGINES];
	unsigned int ran;	/* 1 << engine for each entry of res[] filled */
	enum bench_engine order[BENCH_NR_ENGINES];
	unsigned int nr;	/* engines in the order they ran */
};

void bench_report_text(FILE *f, const struct bench_outcome *o);
/* The whole document: every job x engine. */
void bench_report_json(FILE *f, const struct bench_outcome *o, size_t nr);
/* Latency CDF and ops/s bars per engine, by gnuplot. Returns 0 or -errno. */
int bench_report_plot(const char *path, const struct bench_outcome *o, size_t nr);

/* The engine the ratios are taken against: kernel-zram, kernel-swapfile, ram. */
int bench_baseline(const struct bench_outcome *o, enum bench_engine *out);
double bench_ops_per_sec(const struct bench_result *r);
uint64_t bench_ram_total(const struct bench_result *r);

#endif
