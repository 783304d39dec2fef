/*
 * The swap store under the pager (issue 5): with a small zpool share most
 * evicted pages go through the file and come back byte for byte under
 * four threads; a slot whose bytes change on disk, or a read that fails,
 * gives SIGBUS at that page only; writes that fail keep every page in
 * memory and the program running; a clean block evicted again costs no
 * write; the file has no name, is readable by nobody else and goes with
 * a SIGKILLed process; a block device (a loop device) serves as the
 * store; a bad swap path fails at start with a clear error; a store
 * doubles the default readers, and has a read ring for each. The pager's
 * other tests run through the file too (suite swapfile, helpers.h).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "options.h"
#include "testing.h"

TestSuite(swap, .init = t_swap_mode, .fini = t_swap_mode_end);

/*
 * Page @pg at version @v: random bytes for odd pages (they go to the
 * store at once), text-like for even ones (they pass through the zpool).
 */
static void gen(uint8_t *p, size_t pg, uint32_t v)
{
	uint64_t seed = t_mix(pg * 1000003ull + v);

	for (size_t i = 0; i < T_PAGE; i += 8) {
		uint64_t w = pg % 2 ? t_mix(seed + i) : 0x2065676170206120ull + (t_mix(seed + i / 512) % 7);

		memcpy(p + i, &w, 8);
	}
	memcpy(p, &pg, sizeof(pg));
	memcpy(p + 8, &v, sizeof(v));
}

static bool ok(const uint8_t *p, size_t pg, uint32_t v)
{
	uint8_t want[T_PAGE];

	gen(want, pg, v);
	return !memcmp(p, want, T_PAGE);
}

static struct upg_runtime *swap_runtime(size_t budget, size_t zpool_max)
{
	struct upg_options o;

	t_options_default(&o);
	o.budget = budget;
	o.zpool_max = zpool_max;
	o.features = t_pager_features;
	return t_runtime_create_opts(&o);	/* adds the store (helpers.c) */
}

static uint8_t *written(struct upg_runtime *rt, size_t len, uint32_t v, struct upg_region **r)
{
	uint8_t *base;

	*r = t_region_create(rt, len);
	base = upg_region_addr(*r);
	for (size_t pg = 0; pg < len / T_PAGE; pg++)
		gen(base + pg * T_PAGE, pg, v);
	return base;
}

/* Say what a wrong page holds instead: an older version, zeros, other. */
static void describe_bad(const uint8_t *p, size_t pg, uint32_t v)
{
	uint8_t copy[T_PAGE];
	size_t first = T_PAGE, last = 0;
	uint8_t want[T_PAGE];

	memcpy(copy, p, T_PAGE);
	gen(want, pg, v);
	for (size_t i = 0; i < T_PAGE; i++)
		if (copy[i] != want[i]) {
			first = i < first ? i : first;
			last = i;
		}
	for (uint32_t old = 0; old <= v; old++)
		if (ok(copy, pg, old)) {
			fprintf(stderr, "page %zu: version %u instead of %u\n", pg, old, v);
			return;
		}
	fprintf(stderr, "page %zu v%u: bytes %zu-%zu differ, %s\n", pg, v, first, last,
		t_page_is_zero(copy) ? "all zero" : "not an older version");
}

struct worker {
	pthread_t thread;
	uint8_t *base;
	uint32_t *version;
	size_t nr_pages;
	unsigned int id, nr;
	uint64_t ops, bad;
};

/*
 * Reads and writes of this worker's pages (pg % nr == id), checked: 3 in
 * 4 on a hot quarter that fits the budget, the rest anywhere, so pages
 * leave for the file and come back again and again.
 */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t x = t_mix(w->id + 11);
	size_t mine = w->nr_pages / w->nr;

	for (uint64_t i = 0; i < w->ops; i++) {
		size_t k, pg;

		x = t_mix(x + i);
		k = x % 4 ? (x >> 8) % (mine / 16) : (x >> 8) % mine;
		pg = k * w->nr + w->id;
		if ((x >> 40) % 4 == 0) {
			gen(w->base + pg * T_PAGE, pg, ++w->version[pg]);
		} else if (!ok(w->base + pg * T_PAGE, pg, w->version[pg])) {
			if (!w->bad++)
				describe_bad(w->base + pg * T_PAGE, pg, w->version[pg]);
		}
	}
	return NULL;
}

Test(swap, pages_through_the_file_survive_four_threads, .timeout = 300)
{
	size_t len = 64ul << 20, nr = len / T_PAGE;
	struct upg_runtime *rt = swap_runtime(8ul << 20, 512ul << 10);
	struct upg_region *r;
	uint8_t *base = written(rt, len, 0, &r);
	uint32_t *version = calloc(nr, sizeof(*version));
	struct worker w[4];
	struct upg_stats st;

	for (unsigned int i = 0; i < 4; i++) {
		w[i] = (struct worker){ .base = base, .version = version, .nr_pages = nr,
					.id = i, .nr = 4, .ops = 250000 };
		pthread_create(&w[i].thread, NULL, worker_main, &w[i]);
	}
	for (unsigned int i = 0; i < 4; i++) {
		pthread_join(w[i].thread, NULL);
		cr_assert_eq(w[i].bad, 0, "worker %u read %lu wrong pages", i,
			     (unsigned long)w[i].bad);
	}
	for (size_t pg = 0; pg < nr; pg++)
		cr_assert(ok(base + pg * T_PAGE, pg, version[pg]), "page %zu", pg);
	t_stats_settled(rt, &st);
	/* Most went through the file: the zpool's share is 512 KiB. */
	cr_assert_gt(st.swap_written_pages, nr);
	cr_assert_gt(st.swap_read_pages, nr / 2);
	cr_assert_gt(st.swap_writeback_pages, 0);
	cr_assert_gt(st.swap_direct_pages, 0);
	cr_assert_eq(st.swap_checksum_errors + st.swap_read_errors + st.swap_write_errors, 0);
	cr_assert_not(st.swap_degraded);
	free(version);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

/* Every page of @base out to the store (COLD), and written there. */
static void all_out(struct upg_runtime *rt, uint8_t *base, size_t len)
{
	cr_assert_eq(upg_advise(base, len, UPG_ADV_COLD), 0);
	upg_test_swap_flush(rt);
}

Test(swap, a_slot_changed_on_disk_gives_sigbus_at_that_page_only, .timeout = 60)
{
	size_t len = 4ul << 20;
	struct upg_runtime *rt = swap_runtime(1ul << 20, 256ul << 10);
	struct upg_region *r;
	uint8_t *base = written(rt, len, 2, &r);
	struct upg_stats st;

	if (!(upg_runtime_features(rt) & (UPG_FEAT_POISON | UPG_FEAT_THREAD_ID)))
		cr_skip_test("neither UFFDIO_POISON nor the faulting thread's id here");
	all_out(rt, base, len);
	/* Page 7 is random: it went to the store at once. */
	cr_assert_eq(upg_test_corrupt_block(r, 7), 0, "block 7 is not on the store");
	cr_assert(t_read_faults(base + 7 * T_PAGE + 100), "read a corrupted page without SIGBUS");
	for (size_t pg = 0; pg < 64; pg++)
		if (pg != 7)
			cr_assert(ok(base + pg * T_PAGE, pg, 2), "page %zu", pg);
	/* Still never its wrong bytes (a stream's readahead may try it again). */
	cr_assert(t_read_faults(base + 7 * T_PAGE));
	t_stats_settled(rt, &st);
	cr_assert_geq(st.swap_checksum_errors, 1);
	cr_assert_geq(st.swapin_failed, 1);
	cr_assert_eq(st.swap_read_errors, 0);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

Test(swap, a_failed_read_gives_sigbus_at_that_page_only, .timeout = 60)
{
	size_t len = 4ul << 20;
	struct upg_runtime *rt = swap_runtime(1ul << 20, 256ul << 10);
	struct upg_region *r;
	uint8_t *base = written(rt, len, 3, &r);
	struct upg_stats st;

	if (!(upg_runtime_features(rt) & (UPG_FEAT_POISON | UPG_FEAT_THREAD_ID)))
		cr_skip_test("neither UFFDIO_POISON nor the faulting thread's id here");
	all_out(rt, base, len);
	upg_test_swap_fail(rt, false, -EIO, 1);
	/* A page in the middle of a run: its fault reads it alone. */
	cr_assert(t_read_faults(base + 301 * T_PAGE), "a failed read handed back a page");
	for (size_t pg = 600; pg < 700; pg++)
		cr_assert(ok(base + pg * T_PAGE, pg, 3), "page %zu", pg);
	t_stats_settled(rt, &st);
	cr_assert_eq(st.swap_read_errors, 1);
	cr_assert_eq(st.swapin_failed, 1);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

Test(swap, failed_writes_keep_every_page_and_the_program_running, .timeout = 120)
{
	size_t len = 16ul << 20, nr = len / T_PAGE;
	/* The zpool has room for all once the store takes no more. */
	struct upg_runtime *rt = swap_runtime(4ul << 20, 32ul << 20);
	struct upg_region *r;
	uint8_t *base;
	struct upg_stats st;

	upg_test_swap_fail(rt, true, -EIO, 1u << 30);
	base = written(rt, len, 4, &r);
	upg_test_swap_flush(rt);
	for (int round = 0; round < 2; round++)
		for (size_t pg = 0; pg < nr; pg++)
			cr_assert(ok(base + pg * T_PAGE, pg, 4), "round %d page %zu", round, pg);
	t_stats_settled(rt, &st);
	cr_assert(st.swap_degraded);
	cr_assert_gt(st.swap_write_errors, 0);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

Test(swap, a_clean_block_evicted_again_costs_no_write, .timeout = 60)
{
	size_t len = 2ul << 20;
	struct upg_runtime *rt = swap_runtime(4ul << 20, 256ul << 10);
	struct upg_region *r;
	uint8_t *base = written(rt, len, 5, &r);
	struct upg_stats a, b;

	all_out(rt, base, len);
	t_stats_settled(rt, &a);
	cr_assert_gt(a.swap_pages, 0);
	/* WILLNEED reads them back and keeps their slots (clean copies). */
	cr_assert_eq(upg_advise(base, len, UPG_ADV_WILLNEED), 0);
	for (size_t pg = 0; pg < len / T_PAGE; pg++)
		cr_assert(ok(base + pg * T_PAGE, pg, 5), "page %zu", pg);
	all_out(rt, base, len);
	t_stats_settled(rt, &b);
	cr_assert_gt(b.clean_reused, a.clean_reused);
	cr_assert_eq(b.swap_written_pages, a.swap_written_pages,
		     "%lu pages written again", (unsigned long)(b.swap_written_pages -
								 a.swap_written_pages));
	for (size_t pg = 0; pg < len / T_PAGE; pg++)
		cr_assert(ok(base + pg * T_PAGE, pg, 5), "page %zu", pg);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

/*
 * A block a read fault brings back from the store keeps its slot (its
 * copy there costs no memory), so evicting it again writes nothing; a
 * write to it drops the slot and the new bytes are stored. Odd pages are
 * random: stored straight to the store.
 */
Test(swap, a_block_read_back_by_a_fault_keeps_its_slot_until_written, .timeout = 60)
{
	size_t len = 2ul << 20, nr = len / T_PAGE, read = 0, rewritten = 0;
	struct upg_runtime *rt = swap_runtime(4ul << 20, 256ul << 10);
	struct upg_region *r;
	uint8_t *base = written(rt, len, 6, &r);
	struct upg_stats a, b;

	all_out(rt, base, len);
	t_stats_settled(rt, &a);
	/*
	 * Every 7th odd page, backwards: faults, no stream, no readahead. A
	 * stream the writes left could end on one of them and read ahead.
	 */
	upg_test_ra_forget(r);
	for (size_t pg = nr - 1; pg < nr; pg -= 14, read++)
		cr_assert(ok(base + pg * T_PAGE, pg, 6), "page %zu", pg);
	t_stats_settled(rt, &b);
	cr_assert_eq(b.readahead_blocks, a.readahead_blocks);
	cr_assert_eq(b.clean_kept - a.clean_kept, read);
	/* Half of them written: their copies on the store are stale now. */
	for (size_t pg = nr - 1; pg < nr; pg -= 28, rewritten++)
		gen(base + pg * T_PAGE, pg, 7);
	/* The last write's fault is done (COLD passes over a block held busy). */
	t_stats_settled(rt, &b);
	all_out(rt, base, len);
	t_stats_settled(rt, &b);
	cr_assert_eq(b.clean_reused - a.clean_reused, read - rewritten);
	cr_assert_eq(b.swap_written_pages - a.swap_written_pages, rewritten,
		     "%lu pages written for %zu changed (direct %lu, evicted %lu, resident %zu)",
		     (unsigned long)(b.swap_written_pages - a.swap_written_pages), rewritten,
		     (unsigned long)(b.swap_direct_pages - a.swap_direct_pages),
		     (unsigned long)(b.evict_pages - a.evict_pages), b.resident_bytes);
	for (size_t pg = 0; pg < nr; pg++) {
		uint32_t v = pg % 28 == (nr - 1) % 28 ? 7 : 6;

		cr_assert(ok(base + pg * T_PAGE, pg, v), "page %zu", pg);
	}
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

/*
 * A sequential read after a strided one: the strided stream's windows
 * left every other block in memory, and a fault between them must not
 * pair with the next as another stride of 2 (whose windows would skip
 * the blocks between again, a read a block, for as long as the stream
 * ran). Seen in upager-bench seq runs at a fifth of their speed. Every
 * page random, so the store holds them in address order.
 */
Test(swap, a_sequential_read_after_a_strided_one_reads_runs_of_slots, .timeout = 60)
{
	size_t len = 16ul << 20, nr = (4ul << 20) / T_PAGE;
	struct upg_runtime *rt = swap_runtime(4ul << 20, 256ul << 10);
	struct upg_region *r = t_region_create(rt, len);
	uint8_t *base = upg_region_addr(r);
	struct upg_stats a, b;

	for (size_t pg = 0; pg < len / T_PAGE; pg++)
		gen(base + pg * T_PAGE, 2 * pg + 1, 8);
	for (size_t pg = 0; pg < nr / 4; pg += 2)
		cr_assert(ok(base + pg * T_PAGE, 2 * pg + 1, 8), "page %zu", pg);
	for (size_t pg = 0; pg < nr; pg++) {
		if (pg == nr / 2)
			t_stats_settled(rt, &a);
		cr_assert(ok(base + pg * T_PAGE, 2 * pg + 1, 8), "page %zu", pg);
	}
	t_stats_settled(rt, &b);
	cr_assert_gt(b.swap_reads, a.swap_reads);
	cr_assert_geq((b.swap_read_pages - a.swap_read_pages) / (b.swap_reads - a.swap_reads), 8,
		      "%lu pages in %lu reads",
		      (unsigned long)(b.swap_read_pages - a.swap_read_pages),
		      (unsigned long)(b.swap_reads - a.swap_reads));
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

/*
 * A fault that continues a stream reads its own block and the window
 * after it in one read of neighbouring slots: read alone first, it cost
 * a second read a window, and the thread waited out both. Every page
 * random, so the store holds them in address order; the zpool's share is
 * small, so the first 4 MiB are on the store when read back.
 */
Test(swap, a_stream_fault_reads_its_block_and_window_in_one_read, .timeout = 60)
{
	size_t len = 16ul << 20, nr = (4ul << 20) / T_PAGE;
	struct upg_runtime *rt = swap_runtime(4ul << 20, 256ul << 10);
	uint8_t *base;
	struct upg_region *r;
	struct upg_stats a, b;
	uint64_t reads, reading_faults;

	r = t_region_create(rt, len);
	base = upg_region_addr(r);
	for (size_t pg = 0; pg < len / T_PAGE; pg++)
		gen(base + pg * T_PAGE, 2 * pg + 1, 9);
	upg_test_swap_flush(rt);
	t_stats_settled(rt, &a);
	for (size_t pg = 0; pg < nr; pg++)
		cr_assert(ok(base + pg * T_PAGE, 2 * pg + 1, 9), "page %zu", pg);
	t_stats_settled(rt, &b);
	reads = b.swap_reads - a.swap_reads;
	/* Faults that met a block being filled read nothing. */
	reading_faults = (b.faults - a.faults) - (b.fill_waited - a.fill_waited);
	cr_assert_gt(reads, 0);
	cr_assert_lt(reads * 2, reading_faults * 3, "%lu reads for %lu faults that read",
		     (unsigned long)reads, (unsigned long)reading_faults);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

/* Page @pg: half random, half one byte: LZ4 halves it (a 2 KiB object). */
static void half_random(uint8_t *p, size_t pg)
{
	for (size_t i = 0; i < T_PAGE / 2; i += 8) {
		uint64_t w = t_mix(pg * 1000003ull + i);

		memcpy(p + i, &w, 8);
	}
	memset(p + T_PAGE / 2, (int)(pg & 0xff), T_PAGE / 2);
}

static bool half_random_ok(const uint8_t *p, size_t pg)
{
	uint8_t want[T_PAGE];

	half_random(want, pg);
	return !memcmp(p, want, T_PAGE);
}

/*
 * With a swap store the zpool is compacted too: the tier moves its own
 * objects (the state words hold its handles). A zpool share they all
 * fit in; 3 in 4 read back at random (backwards: no stream) free their
 * objects all over the arenas.
 */
Test(swap, the_zpool_gives_back_freed_slots_with_a_store_behind_it, .timeout = 60)
{
	size_t len = 64ul << 20, nr = len / T_PAGE;
	struct upg_runtime *rt = swap_runtime(len, len);
	struct upg_region *r = t_region_create(rt, len);
	uint8_t *base = upg_region_addr(r);
	uint64_t seed = 12345;
	struct upg_stats a, b;

	for (size_t pg = 0; pg < nr; pg++)
		half_random(base + pg * T_PAGE, pg);
	cr_assert_eq(upg_advise(base, len, UPG_ADV_COLD), 0);
	for (size_t pg = nr; pg-- > 0;) {
		seed = t_mix(seed);
		if (seed % 4)
			cr_assert(half_random_ok(base + pg * T_PAGE, pg), "page %zu", pg);
	}
	/* The evictor looks at least every 100 ms when it has nothing to do. */
	t_stats_settled(rt, &a);
	for (int i = 0; i < 300 && a.zpool_bytes >= a.zpool_stored_bytes * 3 / 2; i++) {
		usleep(10000);
		t_stats(rt, &a);
	}
	t_stats_settled(rt, &b);
	cr_assert_gt(b.zpool_compactions, 0, "no compaction: %zu bytes for %llu stored",
		     (size_t)b.zpool_bytes, (unsigned long long)b.zpool_stored_bytes);
	cr_assert_gt(b.zpool_relocated, 0);
	cr_assert_lt(b.zpool_bytes, b.zpool_stored_bytes * 3 / 2, "%zu bytes for %llu stored",
		     (size_t)b.zpool_bytes, (unsigned long long)b.zpool_stored_bytes);
	for (size_t pg = 0; pg < nr; pg++)
		cr_assert(half_random_ok(base + pg * T_PAGE, pg), "page %zu", pg);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

static bool dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	bool empty = true;

	cr_assert_not_null(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			empty = false;
	closedir(d);
	return empty;
}

Test(swap, the_file_has_no_name_nobody_else_reads_it_and_it_goes_on_sigkill,
     .timeout = 60)
{
	int ready[2], fd;
	char path[64], buf[8];
	struct stat st;
	pid_t child, other;
	int status;

	if (geteuid())
		cr_skip_test("needs root to try another user");
	cr_assert_eq(pipe(ready), 0);
	child = fork();
	if (!child) {
		struct upg_runtime *rt = swap_runtime(1ul << 20, 64ul << 10);
		struct upg_region *r;

		written(rt, 4ul << 20, 6, &r);
		upg_test_swap_flush(rt);
		fd = upg_test_swap_fd(rt);
		if (write(ready[1], &fd, sizeof(fd)) != sizeof(fd))
			_exit(1);
		pause();
		_exit(0);
	}
	close(ready[1]);
	cr_assert_eq(read(ready[0], &fd, sizeof(fd)), (ssize_t)sizeof(fd));
	cr_assert_geq(fd, 0);
	cr_assert(dir_is_empty(t_swap_dir), "the store has a name in %s", t_swap_dir);
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", child, fd);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert_eq(st.st_nlink, 0);
	cr_assert_gt(st.st_size, 0);
	/* Another user cannot open it, not even through /proc. */
	other = fork();
	if (!other) {
		if (setgid(65534) || setuid(65534))
			_exit(2);
		_exit(open(path, O_RDONLY) < 0 && errno == EACCES ? 0 : 1);
	}
	cr_assert_eq(waitpid(other, &status, 0), other);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "another user could open the store (status %d)", status);
	kill(child, SIGKILL);
	cr_assert_eq(waitpid(child, &status, 0), child);
	cr_assert(dir_is_empty(t_swap_dir));
	cr_assert_eq(read(ready[0], buf, 1), 0);	/* the child's end is closed */
	close(ready[0]);
}

Test(swap, a_swap_path_that_cannot_be_used_fails_at_start, .timeout = 30)
{
	struct upg_options o;
	struct upg_runtime *rt = NULL;

	t_log_capture();
	t_options_default(&o);
	o.budget = 4ul << 20;
	strcpy(o.swap, "/nonexistent-upager-dir/swap");
	o.swap_size = 64ul << 20;
	cr_assert_eq(upg_runtime_create(&o, &rt), -ENOENT);
	cr_assert_null(rt);
	cr_assert(t_log_contains("/nonexistent-upager-dir"));
	/* A file there already is never overwritten. */
	strcpy(o.swap, "/etc/hostname");
	cr_assert_eq(upg_runtime_create(&o, &rt), -EEXIST);
	/* A file needs its size. */
	strcpy(o.swap, t_swap_dir);
	o.swap_size = 0;
	cr_assert_eq(upg_runtime_create(&o, &rt), -EINVAL);
}

/* Threads of this process whose name is @name. */
static unsigned int threads_named(const char *name)
{
	DIR *d = opendir("/proc/self/task");
	unsigned int n = 0;
	struct dirent *e;

	cr_assert_not_null(d);
	while ((e = readdir(d))) {
		char path[300], comm[32] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;	/* the thread is gone */
		if (fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = '\0';
		fclose(f);
		n += !strcmp(comm, name);
	}
	closedir(d);
	return n;
}

/*
 * A reader serves one fault at a time and a store read holds it for a
 * device read: with a store, the default is two readers a CPU, so that
 * more loads than CPUs can be in flight (runtime.c, reader_count).
 */
Test(swap, a_store_gives_two_readers_a_cpu_by_default, .timeout = 30)
{
	unsigned int cpus = (unsigned int)sysconf(_SC_NPROCESSORS_ONLN);
	unsigned int two = 2 * cpus < UPG_FAULT_THREADS_MAX ? 2 * cpus : UPG_FAULT_THREADS_MAX;
	struct upg_options o;
	struct upg_runtime *rt;

	t_options_default(&o);
	o.budget = 4ul << 20;
	cr_assert_eq(o.fault_threads, 0);
	rt = t_runtime_create_opts(&o);
	cr_assert_eq(threads_named("upager-fault"), two);
	upg_runtime_destroy(rt);
	cr_assert_eq(threads_named("upager-fault"), 0);

	t_options_default(&o);	/* no budget: no store either */
	rt = t_runtime_create_opts(&o);
	cr_assert_eq(threads_named("upager-fault"), cpus);
	upg_runtime_destroy(rt);

	t_options_default(&o);	/* a count set is kept */
	o.budget = 4ul << 20;
	o.fault_threads = 3;
	rt = t_runtime_create_opts(&o);
	cr_assert_eq(threads_named("upager-fault"), 3);
	upg_runtime_destroy(rt);
}

/* io_uring instances this process has open. */
static unsigned int io_urings(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned int n = 0;
	struct dirent *e;

	cr_assert_not_null(d);
	while ((e = readdir(d))) {
		char path[300], target[64];
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		len = readlink(path, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		n += !strcmp(target, "anon_inode:[io_uring]");
	}
	closedir(d);
	return n;
}

/*
 * Each fault thread can read from the store at once: a read ring each,
 * at least 4 and at most 64 (io.c), and one ring for the writer.
 */
Test(swap, a_store_has_a_read_ring_for_each_fault_thread, .timeout = 30)
{
	static const unsigned int threads[] = { 7, 1, 100 }, rings[] = { 7, 4, 64 };

	cr_assert_eq(io_urings(), 0);
	for (size_t i = 0; i < sizeof(threads) / sizeof(threads[0]); i++) {
		struct upg_options o;
		struct upg_runtime *rt;

		t_options_default(&o);
		o.budget = 4ul << 20;
		o.fault_threads = threads[i];
		rt = t_runtime_create_opts(&o);
		cr_assert_eq(io_urings(), rings[i] + 1, "%u fault threads: %u io_urings, want %u + 1",
			     threads[i], io_urings(), rings[i]);
		upg_runtime_destroy(rt);
		cr_assert_eq(io_urings(), 0);
	}
}

/* A loop device over a file in the test's directory; "" when it cannot. */
static char loopdev[64];

static void loop_detach(void)
{
	char cmd[128];

	if (loopdev[0]) {
		snprintf(cmd, sizeof(cmd), "losetup -d %s", loopdev);
		cr_assert_eq(system(cmd), 0);
	}
	t_swap_mode_end();
}

Test(swap, a_loop_device_serves_as_the_store, .timeout = 120, .fini = loop_detach)
{
	char backing[96], cmd[256];
	struct upg_options o;
	struct upg_runtime *rt;
	struct upg_region *r;
	size_t len = 16ul << 20;
	uint8_t *base;
	struct upg_stats st;
	FILE *p;

	if (geteuid())
		cr_skip_test("needs root for a loop device");
	snprintf(backing, sizeof(backing), "%s/backing", t_swap_dir);
	snprintf(cmd, sizeof(cmd), "truncate -s 64M %s && losetup -f --show %s 2>/dev/null",
		 backing, backing);
	p = popen(cmd, "r");
	if (!p || !fgets(loopdev, sizeof(loopdev), p) || strncmp(loopdev, "/dev/loop", 9)) {
		loopdev[0] = '\0';
		if (p)
			pclose(p);
		unlink(backing);
		cr_skip_test("no loop device here");
	}
	pclose(p);
	loopdev[strcspn(loopdev, "\n")] = '\0';
	unlink(backing);	/* the loop device holds it */
	t_options_default(&o);
	o.budget = 4ul << 20;
	o.zpool_max = 256ul << 10;
	strcpy(o.swap, loopdev);
	rt = t_runtime_create_opts(&o);
	base = written(rt, len, 7, &r);
	for (size_t pg = 0; pg < len / T_PAGE; pg++)
		cr_assert(ok(base + pg * T_PAGE, pg, 7), "page %zu", pg);
	t_stats_settled(rt, &st);
	cr_assert_gt(st.swap_read_pages, 0);
	cr_assert_eq(st.swap_bytes <= (64ul << 20), true);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}
