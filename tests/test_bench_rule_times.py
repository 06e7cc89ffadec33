"""bench/rule_times.py on a hand-written Snakemake log."""

import subprocess
import sys

from conftest import REPO

LOG = """Building DAG of jobs...
[Mon Nov 30 17:17:26 2026]
localrule model:
    output: results/models/m/manifest.json
    jobid: 5
[Mon Nov 30 17:17:51 2026]
Finished jobid: 5 (Rule: model)
[Mon Nov 30 17:17:51 2026]
rule generate:
    jobid: 6
[Mon Nov 30 17:17:52 2026]
rule generate:
    jobid: 7
[Mon Nov 30 17:18:51 2026]
Finished jobid: 7 (Rule: generate)
[Mon Nov 30 17:19:01 2026]
Finished jobid: 6 (Rule: generate)
"""


def test_rule_times_sums_work_and_spans(tmp_path):
    log = tmp_path / "run.snakemake.log"
    log.write_text(LOG)
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "rule_times.py"), str(log)], capture_output=True, text=True, check=True
    ).stdout
    assert "| model | 1 | 25 | 25 |" in out
    assert "| generate | 2 | 129 | 70 |" in out  # 70 s + 59 s of work, 17:17:51 to 17:19:01
    assert "| **run** | 3 | 154 | **95** |" in out
