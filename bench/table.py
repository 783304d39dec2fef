#!/usr/bin/env python3
"""bench/table.py: turn upager-bench's JSON into one markdown table of ratios
against the kernel (the README's Benchmarks section). Each row is one job;
ops/s columns are absolute, ratios are engine / kernel-zram in the same run.
Usage: table.py RESULTS.json"""
import datetime
import json
import platform
import sys


def cell(r, key, fmt="{:.0f}"):
    if r is None or r["status"] != "ok":
        return "skip" if r and r["status"] == "skipped" else "-"
    return fmt.format(r[key])


def ratio(a, b, key):
    if not a or not b or a["status"] != "ok" or b["status"] != "ok" or not b[key]:
        return "-"
    text = "{:.2f}".format(a[key] / b[key])
    # A ratio against an engine held to a smaller budget compares nothing.
    return "({})*".format(text) if a["budget_bytes"] > b["budget_bytes"] else text


def p99(r):
    return "{:.1f}".format(r["lat_ns"]["p99"] / 1e3) if r and r["status"] == "ok" else "-"


def main(path):
    doc = json.load(open(path))
    jobs = {}
    for r in doc["results"]:
        jobs.setdefault(r["job"], {})[r["engine"]] = r
    print("Measured {} on {} ({} CPUs, kernel {}), `bench/run-standard`.".format(
        datetime.date.today().isoformat(), platform.node(), doc["cpus"],
        platform.release()))
    print()
    print("| job | ram ops/s | kernel-zram ops/s | kernel-swapfile ops/s | upager ops/s "
          "| upager/zram ops | upager/zram RAM | zram p99 us | upager p99 us |")
    print("|---|---|---|---|---|---|---|---|---|")
    notes, marked = set(), False
    for name, e in jobs.items():
        u, z = e.get("upager"), e.get("kernel-zram")
        print("| {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            name, cell(e.get("ram"), "ops_per_sec"), cell(z, "ops_per_sec"),
            cell(e.get("kernel-swapfile"), "ops_per_sec"), cell(u, "ops_per_sec"),
            ratio(u, z, "ops_per_sec"), ratio(u, z, "ram_total_bytes"), p99(z), p99(u)))
        marked |= bool(u and z and u["budget_bytes"] > z["budget_bytes"])
        for r in e.values():
            if r["note"]:
                notes.add("{}: {}".format(r["engine"], r["note"]))
    if notes:
        print()
        for n in sorted(notes):
            print("- " + n)
    if marked:
        print()
        print("(x)* : the engine ran with a larger resident budget than kernel-zram: "
              "not a like-for-like ratio.")


if __name__ == "__main__":
    main(sys.argv[1])
