"""Every benchmark script in bench/ runs in its smoke mode (tiny shapes, seconds) and all its checks pass."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO

BENCH = REPO / "bench"
CUDA = torch.cuda.is_available()
# Scripts that are no benchmark and are tested on their own input.
TESTED_ELSEWHERE = {
    "rule_times.py": "test_bench_rule_times.py",
    "compare_adaptive.py": "test_bench_compare_adaptive.py",  # reads run folders: tested on written ones
    "replay_adaptive.py": "test_bench_compare_adaptive.py",
}


def run_smoke(script: str, *args: str) -> tuple[str, dict]:
    """Run `script --smoke args` (one thread per process: tiny shapes gain nothing from more); its stdout and JSON results."""
    out = next(a for a in args if a.endswith(".json"))
    run = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "check FAILED" not in run.stdout
    with open(out) as f:
        return run.stdout, json.load(f)


def passed_checks(stdout: str) -> list[str]:
    return [line.removeprefix("check passed: ") for line in stdout.splitlines() if line.startswith("check passed: ")]


def smoke_generation(tmp_path):
    stdout, results = run_smoke("bench_generation.py", "--out", str(tmp_path / "generation.json"))
    checks = passed_checks(stdout)
    assert "perturber: a = 0.1 changed 16 of the 16 perturbed tensors" in checks
    assert "perturber: a = 0 restored 21 of the 21 parameters bit for bit (torch.equal)" in checks
    assert "eager: 6 of 6 outputs have 8 tokens and finish reason 'length'" in checks
    assert results["summary"]["eager_seconds_per_point"] > 0 and results["bandwidth_floor"]["seconds"] > 0
    if CUDA:
        assert any(c.startswith("static vs eager, SDPA held to memory-efficient attention: 6 of 6") for c in checks)
        assert len(checks) == 7  # reference, perturber x 2, three engines, the one-kernel comparison
    else:
        assert "skipped: static and static_eager_attention engines" in stdout
        assert len(checks) == 4 and "static" not in results


def smoke_perturbation(tmp_path):
    stdout, results = run_smoke("bench_perturbation.py", "--out", str(tmp_path / "perturbation.json"))
    checks = passed_checks(stdout)
    for plan in ("none", "cpu", "disk"):
        assert f"{plan}: the point changed 16 of the 16 perturbed tensors" in checks
        assert f"{plan}: (0, 0) restored 21 of the 21 parameters bit for bit (torch.equal)" in checks
        assert results[plan]["restore_bit_exact"] and results[plan]["update_s"] > 0
    assert len(checks) == 6


def smoke_multi_gpu(tmp_path):
    stdout, results = run_smoke("bench_multi_gpu.py", "--out", str(tmp_path / "multi-gpu.json"))
    checks = passed_checks(stdout)
    assert "4 of 4 points have identical outputs (all texts) on 1 and 2 workers" in checks
    assert "2 worker(s): 4 points generated, each of the 4 once" in checks
    assert len(checks) == 7
    assert [len(results[run]["workers"]) for run in ("one_gpu", "n_gpus")] == [1, 2]
    assert torch.cuda.device_count() >= 2 or "skipped: GPUs and fastdecode's CUDA-graph engine" in stdout


def smoke_direction_memory(tmp_path):
    stdout, results = run_smoke(
        "bench_direction_memory.py", "--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "direction.json")
    )
    checks = passed_checks(stdout)
    assert checks == [
        "direction: 16 tensors for the checkpoint's 16 non-norm tensors, 16 of them float32 with the checkpoint's shape",
        "direction digest equal for workers [1, 2]: 1 distinct digest(s)",
    ]
    assert [run["workers"] for run in results["runs"]] == [1, 2]
    assert results["direction_shards"] > 1 and results["peak_rss_bytes"] > results["rss_after_imports_bytes"] > 0


def smoke_early_stop(tmp_path):
    stdout, results = run_smoke("bench_early_stop.py", "--out", str(tmp_path / "early-stop.json"))
    checks = passed_checks(stdout)
    assert len(checks) == len(results["points"]) == 3
    assert all(c.endswith("4 of 4 prompts get the same verdict with and without early stop") for c in checks)
    origin = results["points"][0]
    assert origin["a"] == 0 and origin["asr"] == 0  # the smoke model refuses every prompt...
    assert origin["early_stop_tokens"] < origin["full_tokens"]  # ...and the early stop cuts its answers short


def smoke_early_rows(tmp_path):
    stdout, results = run_smoke("bench_early_rows.py", "--out", str(tmp_path / "early-rows.json"))
    assert passed_checks(stdout) == [
        "19 of 20 rows stop within 4 tokens (asked: 95%)",
        "early_whole: 20 of 20 outputs equal the all_rows output cut at its stop",
        "early_shrink: 20 of 20 outputs equal the all_rows output cut at its stop",
        "early_shrink gives the same outputs as early_whole",
    ]
    assert results["rows"]["long"] == 1 and set(results["summary"]["seconds_per_point"]) == {
        "all_rows",
        "early_whole",
        "early_shrink",
        "long_alone",
    }


def smoke_finetune(tmp_path):
    stdout, results = run_smoke("bench_finetune.py", "--out", str(tmp_path / "finetune.json"))
    checks = passed_checks(stdout)
    assert "save: the checkpoint holds 21 of the 21 parameters bit for bit" in checks
    assert len(checks) == 5  # 2 profiles x checkpointing off/on, and the save
    for profile in ("advbench", "long"):
        assert results[profile]["checkpointing"]["steps"] == results[profile]["no_checkpointing"]["steps"] == 2
    assert results["long"]["mean_tokens_per_pair"] > results["advbench"]["mean_tokens_per_pair"]


def smoke_interpolation_precision(tmp_path):
    _, results = run_smoke("bench_interpolation_precision.py", "--out", str(tmp_path / "precision.json"))
    rows = results["rows"]
    assert len(rows) == 4 * 4 and 0.99 * 3 * 64 * 64 < rows[0]["moved"] <= 3 * 64 * 64  # the norm tensor is excluded
    assert all(r["unchanged"] == 0 for r in rows if r["generation_dtype"] == "float32" and r["a"] >= 0.5)


def smoke_workflow_gpu(tmp_path):
    stdout, results = run_smoke(
        "bench_workflow_gpu.py", "--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "workflow.json")
    )
    assert passed_checks(stdout) == [
        "snakemake exited 0, summary.json written",
        "9 jobs timed from the log, of the plan's 9",
        "6 responses, 6 expected (directions x points x prompts)",
    ]
    assert results["model"]["vocab"] == 49152  # SmolLM2's tokenizer decides the vocabulary
    rules = {row["rule"]: row for row in results["workflow"]["rules"]}
    assert rules["generate"]["jobs"] == 1 and results["workflow"]["wall_s"] >= results["workflow"]["log_span_s"] > 0
    model = tmp_path / "work" / "results" / "models" / "llama-2-7b-chat-hf-random" / "with-template"
    assert (model / "chat_template.jinja").read_text() == (REPO / "config" / "templates" / "llama-2-chat.jinja").read_text()


def smoke_judge_agreement(tmp_path):
    docs = tmp_path / "judges.md"
    docs.write_text("# Judges\n\n<!-- begin tables: bench/bench_judge_agreement.py -->\nold\n<!-- end tables -->\nafter\n")
    stdout, results = run_smoke("bench_judge_agreement.py", "--docs", str(docs), "--out", str(tmp_path / "agreement.json"))
    assert passed_checks(stdout) == [
        "2 judges judged each of the 105 answers once",  # every 22nd of 5 x 450 answers
        "keyword judge: the verdicts of refusals.keyword_jailbroken on every answer",
    ]
    overall = {(r["judge"], r["split"]): r for r in results["overall"]}
    assert [overall[("refusal", split)]["n"] for split in ("dev", "held-out", "all")] == [42, 63, 105]
    assert {k: overall[("refusal", "all")][k] for k in ("tp", "fp", "fn", "tn")} == {"tp": 47, "fp": 7, "fn": 4, "tn": 47}
    assert overall[("refusal", "all")]["precision"] == 47 / 54 and overall[("keyword", "all")]["agreement"] == 89 / 105
    assert len(results["per_model"]) == 2 * 5 and len(results["per_prompt_set"]) == 2 * 4
    text = docs.read_text()
    assert "old" not in text and text.endswith("<!-- end tables -->\nafter\n")
    assert "| `refusal` | held-out | 63 | 87.3 | 86.8 | 91.7 | 87.9 |" in text


SMOKE = {
    "bench_generation.py": smoke_generation,
    "bench_perturbation.py": smoke_perturbation,
    "bench_multi_gpu.py": smoke_multi_gpu,
    "bench_direction_memory.py": smoke_direction_memory,
    "bench_early_stop.py": smoke_early_stop,
    "bench_early_rows.py": smoke_early_rows,
    "bench_finetune.py": smoke_finetune,
    "bench_interpolation_precision.py": smoke_interpolation_precision,
    "bench_workflow_gpu.py": smoke_workflow_gpu,
    "bench_judge_agreement.py": smoke_judge_agreement,
}


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_smoke_mode(script, tmp_path):
    SMOKE[script](tmp_path)


def test_every_benchmark_script_has_a_smoke_test():
    scripts = {p.name for p in BENCH.glob("*.py") if 'if __name__ == "__main__":' in p.read_text()}
    assert scripts - set(TESTED_ELSEWHERE) == set(SMOKE), "add the new script's smoke mode to SMOKE"
    assert all((REPO / "tests" / test).is_file() for test in TESTED_ELSEWHERE.values())


def test_a_failed_check_fails_the_run(capsys):
    spec = importlib.util.spec_from_file_location("checks", BENCH / "checks.py")
    checks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(checks)
    run = checks.Checks()
    assert run.check(True, "one") and not run.check(False, "two")
    with pytest.raises(SystemExit) as exit_:
        run.exit_if_failed()
    assert exit_.value.code == "1 check(s) failed: two"  # a string code: exit status 1
    assert capsys.readouterr().out == "check passed: one\ncheck FAILED: two\n"
