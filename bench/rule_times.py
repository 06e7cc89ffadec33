"""Wall time per rule of one Snakemake run, read from its log (.snakemake/log/<timestamp>.snakemake.log).

A job runs from the timestamp above its "rule X:" block to the timestamp above "Finished jobid: N".
Per rule: jobs, the sum of their wall times (work), and the span from the first start to the last
finish (how long the rule kept the run busy); the run's own span is the last line.

    python3 bench/rule_times.py .snakemake/log/2026-11-30T171726.123456.snakemake.log [--json out.json]
    python3 bench/rule_times.py --latest            # the newest log under .snakemake/log/
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
START = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
FINISHED = re.compile(r"^Finished jobid: (\d+)")


def job_times(lines: list[str]) -> list[dict]:
    """Every finished job: rule, start and end (datetime), from the log's timestamped blocks."""
    stamp, rule, started, jobs = None, None, {}, []
    for line in lines:
        if m := STAMP.match(line):
            stamp = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
        elif m := START.match(line):
            rule = (m.group(1), stamp)
        elif (m := JOBID.match(line)) and rule is not None:
            started[m.group(1)] = rule
            rule = None
        elif (m := FINISHED.match(line)) and m.group(1) in started:
            name, start = started.pop(m.group(1))
            jobs.append({"rule": name, "start": start, "end": stamp})
    return jobs


def rule_table(jobs: list[dict]) -> list[dict]:
    rules: dict[str, dict] = {}
    for job in jobs:
        row = rules.setdefault(
            job["rule"], {"rule": job["rule"], "jobs": 0, "work_s": 0.0, "first": job["start"], "last": job["end"]}
        )
        row["jobs"] += 1
        row["work_s"] += (job["end"] - job["start"]).total_seconds()
        row["first"], row["last"] = min(row["first"], job["start"]), max(row["last"], job["end"])
    return [
        {"rule": r["rule"], "jobs": r["jobs"], "work_s": r["work_s"], "span_s": (r["last"] - r["first"]).total_seconds()}
        for r in sorted(rules.values(), key=lambda r: r["first"])
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", nargs="?", help="a Snakemake log file")
    parser.add_argument("--latest", action="store_true", help="use the newest non-empty log under .snakemake/log/")
    parser.add_argument("--json", help="also write the table as JSON")
    args = parser.parse_args()
    if args.latest:
        logs = [p for p in sorted(Path(".snakemake/log").glob("*.snakemake.log")) if "Finished jobid" in p.read_text()]
        args.log = str(logs[-1]) if logs else parser.error("no finished run under .snakemake/log/")
    if not args.log:
        parser.error("give a log file or --latest")
    jobs = job_times(Path(args.log).read_text().splitlines())
    if not jobs:
        raise SystemExit(f"{args.log}: no finished job found; is it a Snakemake log?")
    table = rule_table(jobs)
    total = (max(j["end"] for j in jobs) - min(j["start"] for j in jobs)).total_seconds()
    print("| rule | jobs | work (s) | span (s) |\n|---|---|---|---|")
    for row in table:
        print(f"| {row['rule']} | {row['jobs']} | {row['work_s']:.0f} | {row['span_s']:.0f} |")
    print(f"| **run** | {len(jobs)} | {sum(r['work_s'] for r in table):.0f} | **{total:.0f}** |")
    if args.json:
        Path(args.json).write_text(json.dumps({"log": args.log, "total_s": total, "rules": table}, indent=2))


if __name__ == "__main__":
    main()
