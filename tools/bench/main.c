/*
 * upager-bench: run fio-shaped jobs under upager and under what users would
 * use instead (the kernel's swap behind a memory cgroup limit), one engine
 * after the other, each in a fresh child process, and print the ratios.
 * See docs/upager-bench.1.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "job.h"
#include "kernel.h"
#include "report.h"
#include "run.h"

#define ERR_MAX	512

struct cli {
	const char **overrides;		/* "key=value", NULL-terminated */
	size_t nr_overrides;
	const char **files;
	size_t nr_files;
	enum bench_engine compare[BENCH_NR_ENGINES];
	unsigned int nr_compare;	/* 0: each job's own engine key */
	bool json;
	const char *output;		/* NULL: stdout */
	const char *plot;
	const char *swap_dir;		/* kernel-swapfile's file goes here */
	bool keep_region;		/* jobs that agree share one populated region */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: upager-bench [--KEY=VALUE ...] [--compare=ENGINE,...]\n"
		"                    [--output-format=normal|json] [--output=FILE]\n"
		"                    [--plot=FILE.svg|FILE.png] [--swap-dir=DIR] [--keep-region]\n"
		"                    [JOBFILE ...]\n"
		"Job keys (fio's names): size bs rw rwmixread random_distribution numjobs\n"
		"runtime ramp_time time_based loops randseed name; ours: budget content engine.\n"
		"Engines: ram kernel-zram kernel-swapfile upager. See upager-bench(1).\n");
}

static int parse_compare(struct cli *c, const char *list, char *err, size_t len)
{
	char buf[256], *save, *tok;

	snprintf(buf, sizeof(buf), "%s", list);
	c->nr_compare = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		enum bench_engine e;

		if (bench_engine_parse(tok, &e)) {
			snprintf(err, len, "--compare: unknown engine \"%s\"", tok);
			return -EINVAL;
		}
		if (c->nr_compare == BENCH_NR_ENGINES) {
			snprintf(err, len, "--compare: an engine is named twice");
			return -EINVAL;
		}
		c->compare[c->nr_compare++] = e;
	}
	return c->nr_compare ? 0 : -EINVAL;
}

static int parse_cli(int argc, char **argv, struct cli *c, char *err, size_t len)
{
	c->overrides = calloc((size_t)argc + 1, sizeof(char *));
	c->files = calloc((size_t)argc + 1, sizeof(char *));
	if (!c->overrides || !c->files)
		return -ENOMEM;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			exit(0);
		} else if (!strncmp(a, "--compare=", 10)) {
			if (parse_compare(c, a + 10, err, len))
				return -EINVAL;
		} else if (!strcmp(a, "--output-format=json")) {
			c->json = true;
		} else if (!strcmp(a, "--output-format=normal")) {
			c->json = false;
		} else if (!strncmp(a, "--output=", 9)) {
			c->output = a + 9;
		} else if (!strncmp(a, "--plot=", 7)) {
			c->plot = a + 7;
		} else if (!strcmp(a, "--keep-region")) {
			c->keep_region = true;
		} else if (!strncmp(a, "--swap-dir=", 11)) {
			c->swap_dir = a + 11;
		} else if (!strncmp(a, "--", 2) && a[2]) {
			c->overrides[c->nr_overrides++] = a + 2;	/* key=value or flag */
		} else {
			c->files[c->nr_files++] = a;
		}
	}
	return 0;
}

/* Jobs from the files, or one job from the command line alone. */
static int load_jobs(const struct cli *c, struct bench_job **jobs, size_t *nr,
		     char *err, size_t len)
{
	if (!c->nr_files)
		return bench_job_parse_file(NULL, c->overrides, jobs, nr, err, len);
	*jobs = NULL;
	*nr = 0;
	for (size_t f = 0; f < c->nr_files; f++) {
		struct bench_job *more, *all;
		size_t n;
		int ret = bench_job_parse_file(c->files[f], c->overrides, &more, &n, err, len);

		if (ret)
			return ret;
		all = realloc(*jobs, (*nr + n) * sizeof(*all));
		if (!all)
			return -ENOMEM;
		memcpy(all + *nr, more, n * sizeof(*all));
		free(more);
		*jobs = all;
		*nr += n;
	}
	return 0;
}

static bool is_kernel(enum bench_engine e)
{
	return e == BENCH_ENGINE_KERNEL_ZRAM || e == BENCH_ENGINE_KERNEL_SWAPFILE;
}

static int read_full(int fd, void *buf, size_t len)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = read(fd, (char *)buf + done, len - done);

		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		done += (size_t)n;
	}
	return 0;
}

struct child_pipes {
	int go, out;
};

/* Hand the results over, then stay mapped while the parent reads usage. */
static void child_measured(struct bench_result *res, void *arg)
{
	struct child_pipes *p = arg;
	char byte;

	if (write(p->out, res, sizeof(*res)) != (ssize_t)sizeof(*res))
		_exit(1);
	if (read(p->go, &byte, 1) < 0)
		_exit(1);
}

/* Say the region is populated; go on when the parent has set the limit. */
static void child_populated(void *arg)
{
	struct child_pipes *p = arg;
	char byte = 'p';

	if (write(p->out, &byte, 1) != 1 || read(p->go, &byte, 1) != 1)
		_exit(1);
}

/* The child: wait for the go, run the group, report each job, exit. */
static void child(const struct bench_job *const *jobs, size_t nr,
		  enum bench_engine e, int go, int out, bool progress)
{
	struct bench_result *res = malloc(sizeof(*res));
	struct child_pipes p = { go, out };
	char byte;

	if (!res || read(go, &byte, 1) != 1)
		_exit(1);
	bench_run_group(jobs, nr, e, res, progress, child_populated, child_measured, &p);
	_exit(0);
}

static void fill_kernel_ram(struct bench_kernel_env *env, struct bench_result *r)
{
	struct bench_kernel_usage u;

	if (bench_kernel_usage(env, &u))
		return;
	r->ram_resident = u.cgroup_bytes;
	r->ram_store = u.zram_mem_bytes;
	r->ram_meta = 0;	/* page tables are charged to the cgroup (kmem) */
	if (u.zram_compr_bytes)
		r->compr_ratio = (double)u.zram_orig_bytes / (double)u.zram_compr_bytes;
}

static void mark_died(struct bench_result *r, enum bench_engine e, int ret,
		      bool signalled)
{
	memset(r, 0, sizeof(*r));
	r->engine = e;
	r->status = ret;
	snprintf(r->note, sizeof(r->note), "the run died (%s%s)", strerror(-ret),
		 signalled ? ", killed by a signal" : "");
}

/*
 * One child runs the group's jobs one after the other; the parent reads
 * each job's result (and the cgroup's usage, while the child still holds
 * its memory), then lets it go on. The kernel engines' child populates
 * without a limit and the parent applies it after: populating 2 GiB under
 * the limit took 15-20 s here (the kernel swapped out as it went), against
 * ~5 s to reclaim down to the limit at once; the pages left resident are
 * the same, the most recently written.
 */
static void run_in_child(const struct bench_job *const *jobs, size_t nr,
			 enum bench_engine e, struct bench_kernel_env *env,
			 struct bench_result **res, bool progress)
{
	int go[2], out[2], status = 0;
	size_t done = 0;
	char byte;
	pid_t pid;
	int ret;

	if (pipe(go) || pipe(out)) {
		for (size_t k = 0; k < nr; k++)
			mark_died(res[k], e, -errno, false);
		return;
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		close(go[1]);
		close(out[0]);
		child(jobs, nr, e, go[0], out[1], progress);
	}
	close(go[0]);
	close(out[1]);
	ret = pid < 0 ? -errno : env ? bench_kernel_enter(env, pid) : 0;
	if (!ret)	/* go populate; wait for it */
		ret = write(go[1], "g", 1) != 1 ? -EPIPE : read_full(out[0], &byte, 1);
	if (!ret && env)
		ret = bench_kernel_set_limit(env, bench_job_budget(jobs[0]));
	while (!ret && done < nr) {
		if (write(go[1], "g", 1) != 1)
			ret = -errno;
		else
			ret = read_full(out[0], res[done], sizeof(*res[done]));
		if (!ret && env)
			fill_kernel_ram(env, res[done]);
		done += !ret;
	}
	close(go[1]);		/* lets the child exit */
	close(out[0]);
	if (pid > 0 && waitpid(pid, &status, 0) == pid && !ret &&
	    !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		ret = -ECHILD;
	for (size_t k = ret ? done : nr; k < nr; k++)
		mark_died(res[k], e, ret, pid > 0 && WIFSIGNALED(status));
}

static void run_engine(const struct cli *c, const struct bench_job *const *jobs,
		       size_t nr, enum bench_engine e, struct bench_result **res,
		       bool progress)
{
	struct bench_kernel_env *env = NULL;
	char why[BENCH_NOTE_MAX];

	for (size_t k = 0; k < nr; k++) {
		memset(res[k], 0, sizeof(*res[k]));
		res[k]->engine = e;
	}
	if (is_kernel(e)) {
		int ret = bench_kernel_check(e, why, sizeof(why));

		if (!ret)
			ret = bench_kernel_setup(e, bench_job_budget(jobs[0]), jobs[0]->size,
						 c->swap_dir, &env, why, sizeof(why));
		if (!ret && (ret = bench_kernel_set_limit(env, UINT64_MAX)))
			snprintf(why, sizeof(why), "lifting the limit: %s", strerror(-ret));
		if (ret) {
			for (size_t k = 0; k < nr; k++) {
				res[k]->skipped = true;
				snprintf(res[k]->note, sizeof(res[k]->note), "%s", why);
			}
			bench_kernel_teardown(env);	/* NULL when setup failed */
			return;
		}
	}
	run_in_child(jobs, nr, e, env, res, progress);
	bench_kernel_teardown(env);
}

static void plan_engines(const struct cli *c, const struct bench_job *job,
			 struct bench_outcome *o)
{
	o->job = job;
	o->nr = 0;
	if (c->nr_compare) {
		for (unsigned int i = 0; i < c->nr_compare; i++)
			o->order[o->nr++] = c->compare[i];
	} else {
		for (unsigned int e = 0; e < BENCH_NR_ENGINES; e++)
			if (job->engines & (1u << e))
				o->order[o->nr++] = (enum bench_engine)e;
	}
}

/*
 * Jobs that can share one populated region (--keep-region): same size,
 * content, seed, budget and engines. Their access pattern, mix, threads
 * and times may differ.
 */
static bool same_region(const struct bench_job *a, const struct bench_job *b)
{
	return a->size == b->size && a->content == b->content &&
	       a->seed == b->seed && a->engines == b->engines &&
	       bench_job_budget(a) == bench_job_budget(b);
}

/*
 * Run job @first and, with --keep-region, every later job that shares its
 * region, under each engine; mark them done. Returns how many ran.
 */
static size_t run_group(const struct cli *c, const struct bench_job *jobs,
			size_t nr_jobs, size_t first, bool *done,
			struct bench_outcome *outcomes, bool progress)
{
	const struct bench_job **group = calloc(nr_jobs, sizeof(*group));
	struct bench_result **res = calloc(nr_jobs, sizeof(*res));
	size_t *idx = calloc(nr_jobs, sizeof(*idx));
	size_t nr = 0;

	if (!group || !res || !idx) {
		fprintf(stderr, "upager-bench: out of memory\n");
		exit(1);
	}
	for (size_t j = first; j < nr_jobs; j++) {
		if (done[j] || (j != first && !(c->keep_region &&
						same_region(&jobs[first], &jobs[j]))))
			continue;
		done[j] = true;
		idx[nr] = j;
		group[nr++] = &jobs[j];
		plan_engines(c, &jobs[j], &outcomes[j]);
	}
	for (unsigned int i = 0; i < outcomes[first].nr; i++) {
		enum bench_engine e = outcomes[first].order[i];

		for (size_t k = 0; k < nr; k++) {
			res[k] = &outcomes[idx[k]].res[e];
			outcomes[idx[k]].ran |= 1u << e;
		}
		run_engine(c, group, nr, e, res, progress);
	}
	free(group);
	free(res);
	free(idx);
	return nr;
}

int main(int argc, char **argv)
{
	struct cli c = { .swap_dir = "/var/tmp" };
	struct bench_outcome *outcomes;
	struct bench_job *jobs;
	char err[ERR_MAX] = "";
	size_t nr_jobs;
	bool progress, *done, *shown;
	FILE *out = stdout;
	int failed = 0;

	if (parse_cli(argc, argv, &c, err, sizeof(err)) ||
	    load_jobs(&c, &jobs, &nr_jobs, err, sizeof(err))) {
		fprintf(stderr, "upager-bench: %s\n", err[0] ? err : "bad arguments");
		usage(stderr);
		free(c.overrides);
		free(c.files);
		return 2;
	}
	if (c.output && !(out = fopen(c.output, "w"))) {
		fprintf(stderr, "upager-bench: %s: %s\n", c.output, strerror(errno));
		return 2;
	}
	/* Live progress when a person watches stdout; drawn on stderr, so a
	 * redirected report stays clean. */
	progress = isatty(STDOUT_FILENO) && isatty(STDERR_FILENO);
	outcomes = calloc(nr_jobs, sizeof(*outcomes));
	if (!outcomes)
		return 1;
	done = calloc(nr_jobs, sizeof(*done));
	shown = calloc(nr_jobs, sizeof(*shown));
	if (!done || !shown)
		return 1;
	for (size_t i = 0; i < nr_jobs; i++) {
		if (done[i])
			continue;
		run_group(&c, jobs, nr_jobs, i, done, outcomes, progress);
		for (size_t j = i; j < nr_jobs && !c.json; j++)
			if (done[j] && !shown[j]) {
				bench_report_text(out, &outcomes[j]);
				shown[j] = true;
			}
	}
	for (size_t i = 0; i < nr_jobs; i++)
		for (unsigned int k = 0; k < outcomes[i].nr; k++)
			failed |= outcomes[i].res[outcomes[i].order[k]].status != 0;
	if (c.json)
		bench_report_json(out, outcomes, nr_jobs);
	if (c.plot && bench_report_plot(c.plot, outcomes, nr_jobs))
		fprintf(stderr, "upager-bench: could not draw %s (is gnuplot installed?)\n", c.plot);
	if (out != stdout)
		fclose(out);
	free(outcomes);
	free(done);
	free(shown);
	free(jobs);
	free(c.overrides);
	free(c.files);
	return failed ? 1 : 0;
}
