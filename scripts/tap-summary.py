#!/usr/bin/env python3
"""tap-summary.py: count passed/failed/skipped tests from the TAP output that
meson stored in build/meson-logs/testlog.json (one JSON object per test run,
with "name", "result", "returncode", "stdout"), and print, as the last two lines:
    N skipped
    N passed, N failed
Why not meson's summary: it counts executables, and it calls a crashed or cut
TAP stream "OK" when the lines it got were ok (e.g. no plan at all).

Per executable: "ok" lines pass, "not ok" lines fail, "# SKIP"/"# TODO" lines
are skipped. The executable itself also counts as failed (one failure, or one
per missing result if its plan says more) when it timed out, was interrupted or
killed by a signal, printed no "1..N" plan or fewer results than planned,
printed "Bail out!", or exited non-zero without any failing test.
Exit status: 0 iff failed == 0 and passed > 0."""
import json
import re
import sys

RESULT = re.compile(r"^(not )?ok\b(.*)$")
PLAN = re.compile(r"^1\.\.(\d+)")
DIRECTIVE = re.compile(r"#\s*(SKIP|TODO)", re.IGNORECASE)


def count(run):
    """-> (passed, failed, skipped, failing names, why the executable failed)"""
    passed = failed = skipped = 0
    plan, bail, bad = None, False, []
    for line in run.get("stdout", "").splitlines():
        m = RESULT.match(line)
        if m:
            if DIRECTIVE.search(m.group(2)):
                skipped += 1
            elif m.group(1):
                failed += 1
                bad.append(m.group(2).strip(" -"))
            else:
                passed += 1
        elif PLAN.match(line):
            plan = int(PLAN.match(line).group(1))
            if plan == 0:       # "1..0 # SKIP reason": the whole executable skipped
                skipped += 1
        elif line.startswith("Bail out!"):
            bail = True
    seen = passed + failed + skipped - (plan == 0)
    rc, result = run.get("returncode") or 0, run.get("result")
    why = []
    if result in ("TIMEOUT", "INTERRUPT"):
        why.append(result.lower())
    if rc < 0:
        why.append(f"killed by signal {-rc}")
    elif rc != 0 and failed == 0:
        why.append(f"exit status {rc} without a failing test")
    if plan is None:
        why.append("no TAP plan")
    elif seen != plan:
        why.append(f"{seen} of {plan} planned results")
    if bail:
        why.append("bailed out")
    if why:
        failed += max(1, (plan or 0) - seen)
    return passed, failed, skipped, bad, why


def main(path):
    totals = [0, 0, 0]
    try:
        with open(path) as f:
            runs = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        print(f"tap-summary: {path} not found: no test ran")
        runs = []
    for run in runs:
        p, f, s, bad, why = count(run)
        totals = [totals[0] + p, totals[1] + f, totals[2] + s]
        for name in bad:
            print(f"tap-summary: FAIL {run['name']}: {name}")
        if why:
            print(f"tap-summary: FAIL {run['name']} (the executable): {', '.join(why)}")
    passed, failed, skipped = totals
    print(f"{skipped} skipped")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "build/meson-logs/testlog.json"))
