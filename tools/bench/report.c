/*
 * Reports. Every figure of upager is a ratio against the kernel taken in
 * the same run, so the text report ends each job with ratios against the
 * baseline engine, for throughput and for total RAM (a win bought with more
 * memory must show).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report.h"

double bench_ops_per_sec(const struct bench_result *r)
{
	return r->run_sec > 0 ? (double)r->ops / r->run_sec : 0;
}

uint64_t bench_ram_total(const struct bench_result *r)
{
	return r->ram_resident + r->ram_store + r->ram_meta;
}

static bool usable(const struct bench_outcome *o, enum bench_engine e)
{
	return (o->ran & (1u << e)) && !o->res[e].skipped && !o->res[e].status;
}

int bench_baseline(const struct bench_outcome *o, enum bench_engine *out)
{
	static const enum bench_engine pref[] = { BENCH_ENGINE_KERNEL_ZRAM,
		BENCH_ENGINE_KERNEL_SWAPFILE, BENCH_ENGINE_RAM };

	for (size_t i = 0; i < sizeof(pref) / sizeof(pref[0]); i++)
		if (usable(o, pref[i])) {
			*out = pref[i];
			return 0;
		}
	return -ENOENT;
}

static double us(uint64_t ns)
{
	return (double)ns / 1e3;
}

static void print_size(FILE *f, uint64_t b)
{
	if (b >= (1ull << 30) && !(b % (1ull << 30)))
		fprintf(f, "%lluG", (unsigned long long)(b >> 30));
	else if (b >= (1ull << 20))
		fprintf(f, "%.0fM", (double)b / (1 << 20));
	else
		fprintf(f, "%lluK", (unsigned long long)(b >> 10));
}

static void print_job_line(FILE *f, const struct bench_job *j)
{
	fprintf(f, "%s: (rw=%s", j->name, bench_rw_name(j->rw));
	if (j->rw == BENCH_RW || j->rw == BENCH_RANDRW)
		fprintf(f, ", rwmixread=%u", j->rwmixread);
	fprintf(f, ", bs=");
	print_size(f, j->bs);
	fprintf(f, ", size=");
	print_size(f, j->size);
	fprintf(f, ", budget=");
	print_size(f, bench_job_budget(j));
	fprintf(f, " (%.0f%%)", 100.0 * (double)bench_job_budget(j) / (double)j->size);
	if (bench_rw_is_random(j->rw)) {
		static const char *const dist[] = { "random", "zipf", "pareto", "normal" };

		fprintf(f, ", dist=%s", dist[j->dist]);
		if (j->dist != BENCH_DIST_RANDOM)
			fprintf(f, ":%g", j->dist_param);
	}
	fprintf(f, ", numjobs=%u, content=%s)\n", j->numjobs, bench_content_name(j->content));
}

static void print_engine(FILE *f, const struct bench_job *j, const struct bench_result *r)
{
	fprintf(f, "  %s:", bench_engine_name(r->engine));
	if (r->skipped || r->status) {
		fprintf(f, " %s: %s\n", r->skipped ? "skipped" : "FAILED", r->note);
		return;
	}
	fprintf(f, " ops/s=%.0f, BW=%.1fMB/s (%llu ops in %.2fs; ",
		bench_ops_per_sec(r), (double)r->bytes / r->run_sec / 1e6,
		(unsigned long long)r->ops, r->run_sec);
	if (r->region_reused)
		fprintf(f, "region kept from the job before)\n");
	else
		fprintf(f, "populate %.2fs)\n", r->populate_sec);
	fprintf(f, "    lat (usec, 1 in %d sampled): min=%.2f, p50=%.2f, p90=%.2f, "
		"p99=%.2f, p99.9=%.2f, max=%.2f\n", BENCH_LAT_SAMPLE, us(r->lat_min),
		us(bench_lat_quantile_ns(r, 0.5)), us(bench_lat_quantile_ns(r, 0.9)),
		us(bench_lat_quantile_ns(r, 0.99)), us(bench_lat_quantile_ns(r, 0.999)),
		us(r->lat_max));
	fprintf(f, "    faults/s=%.0f (%s), cpu=%.0f%% of one CPU, all CPUs busy=%.0f%%\n",
		r->run_sec > 0 ? (double)r->faults / r->run_sec : 0,
		r->engine == BENCH_ENGINE_UPAGER ? "upager faults" : "major faults",
		100.0 * r->cpu_sec / r->run_sec, r->sys_busy_pct);
	fprintf(f, "    RAM: total=%.1fMiB (resident %.1f + store %.1f + meta %.1f), budget=",
		(double)bench_ram_total(r) / (1 << 20), (double)r->ram_resident / (1 << 20),
		(double)r->ram_store / (1 << 20), (double)r->ram_meta / (1 << 20));
	print_size(f, r->budget);
	if (r->compr_ratio > 0)
		fprintf(f, ", compression %.2fx", r->compr_ratio);
	fprintf(f, "\n");
	if (r->note[0])
		fprintf(f, "    note: %s\n", r->note);
	(void)j;
}

void bench_report_text(FILE *f, const struct bench_outcome *o)
{
	enum bench_engine base;

	print_job_line(f, o->job);
	for (unsigned int i = 0; i < o->nr; i++)
		print_engine(f, o->job, &o->res[o->order[i]]);
	if (bench_baseline(o, &base))
		return;
	fprintf(f, "  ratios vs %s (ops/s, RAM total):", bench_engine_name(base));
	for (unsigned int i = 0; i < o->nr; i++) {
		const struct bench_result *r = &o->res[o->order[i]];

		if (o->order[i] == base || !usable(o, o->order[i]))
			continue;
		fprintf(f, " %s %.2fx %.2fx%s;", bench_engine_name(r->engine),
			bench_ops_per_sec(r) / bench_ops_per_sec(&o->res[base]),
			(double)bench_ram_total(r) / (double)bench_ram_total(&o->res[base]),
			/* A ratio against a limited engine is no like-for-like. */
			r->budget > o->res[base].budget ? " (larger budget)" : "");
	}
	fprintf(f, "\n");
}

/* JSON strings here are our own names and notes: escape the few specials. */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void json_result(FILE *f, const struct bench_job *j, const struct bench_result *r)
{
	fprintf(f, "    {\"job\": ");
	json_str(f, j->name);
	fprintf(f, ", \"engine\": \"%s\", \"status\": \"%s\", ", bench_engine_name(r->engine),
		r->skipped ? "skipped" : r->status ? "failed" : "ok");
	fprintf(f, "\"rw\": \"%s\", \"bs\": %llu, \"numjobs\": %u, \"content\": \"%s\",\n",
		bench_rw_name(j->rw), (unsigned long long)j->bs, j->numjobs,
		bench_content_name(j->content));
	fprintf(f, "     \"size_bytes\": %llu, \"budget_bytes\": %llu, \"ops\": %llu, "
		"\"ops_per_sec\": %.1f, \"mb_per_sec\": %.2f,\n",
		(unsigned long long)r->size, (unsigned long long)r->budget,
		(unsigned long long)r->ops, bench_ops_per_sec(r),
		r->run_sec > 0 ? (double)r->bytes / r->run_sec / 1e6 : 0);
	fprintf(f, "     \"lat_ns\": {\"samples\": %llu, \"min\": %llu, \"p50\": %llu, "
		"\"p90\": %llu, \"p99\": %llu, \"p999\": %llu, \"max\": %llu},\n",
		(unsigned long long)r->lat_samples, (unsigned long long)r->lat_min,
		(unsigned long long)bench_lat_quantile_ns(r, 0.5),
		(unsigned long long)bench_lat_quantile_ns(r, 0.9),
		(unsigned long long)bench_lat_quantile_ns(r, 0.99),
		(unsigned long long)bench_lat_quantile_ns(r, 0.999),
		(unsigned long long)r->lat_max);
	fprintf(f, "     \"faults\": %llu, \"faults_per_sec\": %.1f, \"cpu_pct\": %.1f, "
		"\"sys_busy_pct\": %.1f, \"populate_sec\": %.6f, \"region_reused\": %s, "
		"\"run_sec\": %.3f,\n",
		(unsigned long long)r->faults,
		r->run_sec > 0 ? (double)r->faults / r->run_sec : 0,
		r->run_sec > 0 ? 100.0 * r->cpu_sec / r->run_sec : 0, r->sys_busy_pct,
		r->populate_sec, r->region_reused ? "true" : "false", r->run_sec);
	fprintf(f, "     \"ram_total_bytes\": %llu, \"ram_resident_bytes\": %llu, "
		"\"ram_store_bytes\": %llu, \"ram_meta_bytes\": %llu, \"compr_ratio\": %.3f, "
		"\"note\": ",
		(unsigned long long)bench_ram_total(r), (unsigned long long)r->ram_resident,
		(unsigned long long)r->ram_store, (unsigned long long)r->ram_meta,
		r->compr_ratio);
	json_str(f, r->note);
	fprintf(f, "}");
}

void bench_report_json(FILE *f, const struct bench_outcome *o, size_t nr)
{
	bool first = true;

	fprintf(f, "{\n  \"tool\": \"upager-bench\", \"version\": 1, \"cpus\": %ld,\n"
		"  \"results\": [\n", sysconf(_SC_NPROCESSORS_ONLN));
	for (size_t i = 0; i < nr; i++)
		for (unsigned int k = 0; k < o[i].nr; k++) {
			if (!first)
				fprintf(f, ",\n");
			first = false;
			json_result(f, o[i].job, &o[i].res[o[i].order[k]]);
		}
	fprintf(f, "\n  ]\n}\n");
}

/* Write "latency_us cumulative_fraction" rows of one result's CDF. */
static void plot_cdf_data(FILE *f, const struct bench_result *r)
{
	uint64_t seen = 0;

	for (unsigned int b = 0; b < UPG_LAT_BUCKETS; b++) {
		if (!r->lat_hist[b])
			continue;
		seen += r->lat_hist[b];
		fprintf(f, "%.3f %.6f\n", us(upg_lat_bucket_ns(b + 1)),
			(double)seen / (double)r->lat_samples);
	}
	fprintf(f, "e\n");
}

int bench_report_plot(const char *path, const struct bench_outcome *o, size_t nr)
{
	const char *ext = strrchr(path, '.');
	bool png = ext && !strcmp(ext, ".png");
	size_t plotted = 0;
	FILE *g;
	int n = 0, rc;

	if (!ext || (strcmp(ext, ".svg") && !png) || strchr(path, '\''))
		return -EINVAL;
	for (size_t i = 0; i < nr; i++)
		for (unsigned int k = 0; k < o[i].nr; k++)
			plotted += usable(&o[i], o[i].order[k]);
	if (!plotted)
		return -ENODATA;
	g = popen("gnuplot", "w");
	if (!g)
		return -errno;
	fprintf(g, "set terminal %s size 1200,500\nset output '%s'\n",
		png ? "pngcairo" : "svg", path);
	fprintf(g, "set multiplot layout 1,2\nset logscale x\nset xlabel 'latency (us)'\n"
		"set ylabel 'fraction of accesses'\nset key bottom right\n"
		"set title 'latency CDF (sampled accesses)'\nplot ");
	for (size_t i = 0; i < nr; i++)
		for (unsigned int k = 0; k < o[i].nr; k++)
			if (usable(&o[i], o[i].order[k]))
				fprintf(g, "%s'-' with steps title '%s %s'", n++ ? ", " : "",
					o[i].job->name, bench_engine_name(o[i].order[k]));
	fprintf(g, "\n");
	for (size_t i = 0; i < nr; i++)
		for (unsigned int k = 0; k < o[i].nr; k++)
			if (usable(&o[i], o[i].order[k]))
				plot_cdf_data(g, &o[i].res[o[i].order[k]]);
	fprintf(g, "unset logscale x\nset xlabel ''\nset ylabel 'ops/s'\nset title 'throughput'\n"
		"set yrange [0:*]\nset style fill solid\nset boxwidth 0.6\nset xtics rotate by -30\n"
		"plot '-' using 0:2:xtic(1) with boxes notitle\n");
	for (size_t i = 0; i < nr; i++)
		for (unsigned int k = 0; k < o[i].nr; k++)
			if (usable(&o[i], o[i].order[k]))
				fprintf(g, "\"%s %s\" %.1f\n", o[i].job->name,
					bench_engine_name(o[i].order[k]),
					bench_ops_per_sec(&o[i].res[o[i].order[k]]));
	fprintf(g, "e\nunset multiplot\n");
	rc = pclose(g);
	return rc == 0 ? 0 : -EIO;
}
