/*
 * upager-bench end to end: a tiny job under ram and upager through the real
 * binary, JSON checked by Python's json module (a real parser, not ours),
 * and the bad-input exits.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

/* Run a shell command line; returns its exit status, output in @out. */
static int sh(const char *cmd, char *out, size_t len)
{
	FILE *p = popen(cmd, "r");
	size_t n = 0;
	int status;

	cr_assert_not_null(p);
	while (n + 1 < len && fgets(out + n, (int)(len - n), p))
		n += strlen(out + n);
	out[n] = '\0';
	status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static const char *bench(void)
{
	const char *b = getenv("UPAGER_BENCH");

	cr_assert_not_null(b, "meson passes UPAGER_BENCH");
	return b;
}

/* Python prints one line per result: engine status ops>0 budget note. */
#define CHECK_JSON							\
	"python3 -c 'import json,sys\n"					\
	"d=json.load(sys.stdin)\n"					\
	"for r in d[\"results\"]:\n"					\
	"  l=r[\"lat_ns\"]\n"						\
	"  ok=l[\"min\"]<=l[\"p50\"]<=l[\"p99\"]<=l[\"max\"] and l[\"samples\"]>0\n" \
	"  print(r[\"engine\"],r[\"status\"],r[\"ops\"]>0,ok,r[\"budget_bytes\"],r[\"ram_total_bytes\"]>0,r[\"note\"][:16])'"

Test(bench_run, tiny_job_under_ram_and_upager_gives_valid_json, .timeout = 120)
{
	char cmd[1024], out[4096];

	snprintf(cmd, sizeof(cmd), "%s --size=8M --rw=randrw --runtime=1 --time_based "
		 "--numjobs=2 --budget=50%% --compare=ram,upager --output-format=json | "
		 CHECK_JSON, bench());
	cr_assert_eq(sh(cmd, out, sizeof(out)), 0, "output: %s", out);
	/* ram has no limit; upager keeps the job's budget. */
	cr_assert(strstr(out, "ram ok True True 8388608 True \n"), "got: %s", out);
	cr_assert(strstr(out, "upager ok True True 4194304 True \n"), "got: %s", out);
}

Test(bench_run, loops_without_runtime_end_after_the_passes, .timeout = 120)
{
	char cmd[1024], out[4096];

	snprintf(cmd, sizeof(cmd), "%s --size=4M --rw=write --loops=3 --compare=ram "
		 "--output-format=json | python3 -c 'import json,sys\n"
		 "r=json.load(sys.stdin)[\"results\"][0]\nprint(r[\"ops\"])'", bench());
	cr_assert_eq(sh(cmd, out, sizeof(out)), 0);
	/* 3 passes of 1024 pages, counted in batches of 256 per thread. */
	cr_assert_eq(strtoull(out, NULL, 10), 3 * 1024, "ops: %s", out);
}

/*
 * Faults are counted over the timed run, as the ops are: not during the
 * ramp. Uniform reads over 4x the budget fault on about 3 ops in 4; with
 * the ramp's faults (as long as the run) counted, about 3 in 2.
 */
Test(bench_run, faults_are_counted_after_the_ramp_like_ops, .timeout = 120)
{
	char cmd[1024], out[4096];
	unsigned long long ops = 0, faults = 0;

	snprintf(cmd, sizeof(cmd), "%s --size=16M --rw=randread --budget=25%% --ramp_time=1 "
		 "--runtime=1 --time_based --numjobs=1 --compare=upager --output-format=json | "
		 "python3 -c 'import json,sys\n"
		 "r=json.load(sys.stdin)[\"results\"][0]\nprint(r[\"ops\"],r[\"faults\"])'",
		 bench());
	cr_assert_eq(sh(cmd, out, sizeof(out)), 0, "output: %s", out);
	cr_assert_eq(sscanf(out, "%llu %llu", &ops, &faults), 2, "output: %s", out);
	cr_assert_gt(faults, ops / 4, "%llu ops, %llu faults", ops, faults);
	cr_assert_leq(faults, ops, "%llu ops, %llu faults", ops, faults);
}

/*
 * --keep-region: jobs a and b agree on size, content and budget and share
 * one populated region; c has other content and gets its own. Each prints
 * name, engine, reused, populate_sec > 0, ops > 0.
 */
Test(bench_run, keep_region_populates_once_per_group, .timeout = 120)
{
	char dir[] = "/tmp/upg-bench-XXXXXX", path[64], cmd[1024], out[4096];
	const char *exe = bench();
	FILE *f;
	int status;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/jobs.fio", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("[global]\nsize=4M\nloops=1\nbudget=50%\n[a]\nrw=read\ncontent=text\n"
	      "[c]\nrw=read\ncontent=zero\n[b]\nrw=randwrite\ncontent=text\n", f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "%s --keep-region --compare=ram,upager "
		 "--output-format=json %s | python3 -c 'import json,sys\n"
		 "for r in json.load(sys.stdin)[\"results\"]:\n"
		 "  print(r[\"job\"],r[\"engine\"],r[\"region_reused\"],"
		 "r[\"populate_sec\"]>0,r[\"ops\"]>0)'", exe, path);
	status = sh(cmd, out, sizeof(out));
	/* Gone before any assert: a failed run leaves nothing in /tmp. */
	unlink(path);
	rmdir(dir);
	cr_assert_eq(status, 0, "output: %s", out);
	cr_assert_str_eq(out, "a ram False True True\na upager False True True\n"
			 "c ram False True True\nc upager False True True\n"
			 "b ram True False True\nb upager True False True\n");
}

Test(bench_run, text_report_names_every_engine_and_the_ratio, .timeout = 120)
{
	char cmd[1024], out[8192];

	snprintf(cmd, sizeof(cmd), "%s --size=4M --rw=randread --runtime=1 --time_based "
		 "--compare=ram,upager 2>&1", bench());
	cr_assert_eq(sh(cmd, out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "  ram: ops/s="), "%s", out);
	cr_assert(strstr(out, "  upager: ops/s="), "%s", out);
	cr_assert(strstr(out, "ratios vs ram (ops/s, RAM total): upager "), "%s", out);
}

Test(bench_run, bad_input_exits_2_with_the_key_named, .timeout = 60)
{
	static const char *const bad[][2] = {
		{ "--size=8M --nosuchkey=1", "nosuchkey" },
		{ "--size=8X", "size" },
		{ "--size=8M --budget=16M", "budget" },
		{ "--size=8M --numjobs=0", "numjobs" },
		{ "--size=8M --compare=ram,warp", "warp" },
		{ "--size=8M --engine=warp", "engine" },
	};
	char cmd[1024], out[4096];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(cmd, sizeof(cmd), "%s %s 2>&1", bench(), bad[i][0]);
		cr_assert_eq(sh(cmd, out, sizeof(out)), 2, "%s: %s", bad[i][0], out);
		cr_assert(strstr(out, bad[i][1]), "%s: message lacks '%s': %s",
			  bad[i][0], bad[i][1], out);
	}
}

Test(bench_run, bad_job_file_error_has_file_line_and_key, .timeout = 60)
{
	char path[] = "/tmp/upager-bench-test-XXXXXX", cmd[1024], out[4096], want[256];
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");

	fprintf(f, "[global]\nsize=8M\n\n[a]\nrw=randread\nbudget=1K\n");
	fclose(f);
	snprintf(cmd, sizeof(cmd), "%s %s 2>&1", bench(), path);
	cr_assert_eq(sh(cmd, out, sizeof(out)), 2, "%s", out);
	snprintf(want, sizeof(want), "%s:", path);
	cr_assert(strstr(out, want), "no file name: %s", out);
	cr_assert(strstr(out, "budget"), "no key: %s", out);
	unlink(path);
}
