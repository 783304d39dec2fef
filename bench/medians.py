#!/usr/bin/env python3
"""bench/medians.py: several upager-bench JSON results of the same jobs (one
per repetition) into one markdown table: per job, each run's ratio of
ENGINE's ops/s to BASELINE's taken in that same run, their median, the
range of both engines' p99 and of the ratio of their total RAM. A ratio is
only ever taken within one run: on this VM the disk and the host move both
engines together from run to run.
Usage: medians.py BASELINE ENGINE RUN.json [RUN.json ...]"""
import json
import statistics
import sys


def load(path):
    """{job: {engine: result}} of one run, the jobs in file order."""
    with open(path) as f:
        results = json.load(f).get("results")
    if not isinstance(results, list):
        sys.exit("medians.py: {}: no results in it".format(path))
    runs = {}
    for r in results:
        runs.setdefault(r["job"], {})[r["engine"]] = r
    return runs


def ok(r):
    return r is not None and r["status"] == "ok"


def span(values, fmt):
    """"lo-hi" of @values, or the one value, or "-"."""
    v = sorted(values)
    if not v:
        return "-"
    lo, hi = fmt.format(v[0]), fmt.format(v[-1])
    return lo if lo == hi else lo + "-" + hi


def main(baseline, engine, paths):
    runs = [load(p) for p in paths]
    missing = [e for e in (baseline, engine)
               if not any(ok(r.get(e)) for run in runs for r in run.values())]
    if missing:
        print("medians.py: no result of {} (not run, skipped or failed: the kernel "
              "engines need root)".format(", ".join(missing)), file=sys.stderr)
    print("| job | {} / {}, each run | median | p99 us {} / {} | RAM total |".format(
        engine, baseline, baseline, engine))
    print("|---|---|---|---|---|")
    for job in runs[0]:
        pairs = [(run.get(job, {}).get(baseline), run.get(job, {}).get(engine))
                 for run in runs]
        both = [(b, e) for b, e in pairs if ok(b) and ok(e)]
        ratios = [e["ops_per_sec"] / b["ops_per_sec"] for b, e in both if b["ops_per_sec"]]
        each = ", ".join("{:.2f}x".format(x) for x in ratios) or "-"
        median = "{:.2f}x".format(statistics.median(ratios)) if ratios else "-"
        p99 = "{} / {}".format(span((b["lat_ns"]["p99"] / 1e3 for b, _ in both), "{:.0f}"),
                               span((e["lat_ns"]["p99"] / 1e3 for _, e in both), "{:.0f}"))
        ram = span((e["ram_total_bytes"] / b["ram_total_bytes"] for b, e in both
                    if b["ram_total_bytes"]), "{:.2f}x")
        print("| {} | {} | {} | {} | {} |".format(job, each, median, p99, ram))


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
