"""Progress of long work in a job's log: finetuning (epoch, step, loss), generation (points done,
tokens per second) and judging (responses judged, rate), as readable lines."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import REPO
from safety_landscape.io import read_jsonl
from safety_landscape.judges import judge_records, open_judge

PAIRS = [{"prompt": f"Question {i}?", "response": f"Answer {i}."} for i in range(6)]  # 3 steps per epoch of 2


def tiny_run(workdir: Path) -> None:
    """A tiny job logging to workdir/run.log as a workflow job does: finetune the tiny Llama for 2 epochs,
    generate at 2 points (twice: the second time from the cache) and judge the responses."""
    import torch

    from conftest import build_tiny_model, points_along_a_direction
    from safety_landscape.engines import EngineOptions, HFEngine
    from safety_landscape.generate import DecodingSettings, job_records
    from safety_landscape.io import log_to_file, write_jsonl
    from safety_landscape.modeling import load_model, load_tokenizer
    from safety_landscape.prompts import prompts_digest
    from safety_landscape.training import SFTSettings, supervised_finetune

    torch.set_num_threads(1)
    folder = build_tiny_model(workdir / "model")
    log_to_file(workdir / "run.log")
    model, tokenizer = load_model(str(folder)), load_tokenizer(str(folder))
    supervised_finetune(model, tokenizer, PAIRS, SFTSettings(epochs=2, batch_size=2))

    digest, job = points_along_a_direction(folder, workdir, [0.0, 0.1])
    engine = HFEngine(EngineOptions(str(folder), "float32", "cpu"))
    prompts = ["Tell me a story", "Write a poem", "Say hello"]
    settings = DecodingSettings(
        max_new_tokens=4, batch_size=2, system_prompt=None, chat_template=True, stop_on_refusal=False, dtype="float32"
    )
    for _ in range(2):  # the second time from the cache
        records = job_records(
            engine, digest, prompts, prompts_digest(prompts), settings, workdir / "points", job, workdir / "cache"
        )
    write_jsonl(workdir / "job.jsonl", records)
    judge_records(open_judge({"name": "keyword"}), {"name": "keyword", "id": "kw"}, records, workdir / "verdicts")


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO safety_landscape\.(training|generate|judges): (.*)$")
NUMBER = r"\d+\.\d+"


def expected_lines(distinct_responses: int) -> list[tuple[str, str]]:
    """(module, message pattern) of every progress line of `tiny_run`, in order."""
    training = [("training", r"training \d+ of \d+ parameters on 6 pairs")]
    for epoch in (1, 2):
        training += [
            ("training", rf"epoch {epoch} of 2, step {step} of 3: loss {NUMBER}, lr \d\.\d\de-\d\d") for step in (1, 2, 3)
        ]
        training.append(("training", rf"epoch {epoch} of 2 done in {NUMBER} s: mean loss {NUMBER} over 3 steps"))
    generated = [("generate", rf"3 responses, \d+ tokens in {NUMBER} s \({NUMBER} tokens/s\), weight update {NUMBER} s")]
    points = [
        ("generate", r"point 1 of 2 done \(landscape d1, a 0\.0\)"),
        ("generate", r"point 2 of 2 done \(landscape d1, a 0\.1\)"),
    ]
    generation = generated + points[:1] + generated + points[1:] + points  # the second job reads both points from the cache
    judging = [
        ("judges", rf"kw: {distinct_responses} of 6 responses to judge \(the others are cached or repeats\)"),
        ("judges", rf"kw: {distinct_responses} responses judged in {NUMBER} s \({NUMBER}/s\)"),
    ]
    return training + generation + judging


def test_a_jobs_log_shows_its_progress_in_readable_lines(tmp_path):
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "tests")]), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-c",
        "import sys, pathlib, test_progress; test_progress.tiny_run(pathlib.Path(sys.argv[1]))",
        str(tmp_path),
    ]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    text = (tmp_path / "run.log").read_text()
    assert run.returncode == 0, text + run.stderr
    progress = [(m[1], m[2]) for line in text.splitlines() if (m := LOG_LINE.match(line))]
    expected = expected_lines(len({(r["prompt"], r["response"]) for r in read_jsonl(tmp_path / "job.jsonl")}))
    assert len(progress) == len(expected), "\n".join(message for _, message in progress)
    for (module, message), (want_module, pattern) in zip(progress, expected):
        assert module == want_module and re.fullmatch(pattern, message), (module, message, pattern)
    assert "finetune:" not in text  # no progress bar: the log is no terminal


class OpenAIStandIn(BaseHTTPRequestHandler):
    """/chat/completions answering "no" to everything."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"choices": [{"message": {"content": "no"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), OpenAIStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {
        "name": "endpoint",
        "id": "llm",
        "url": f"http://127.0.0.1:{server.server_port}/v1",
        "model": "judge",
        "concurrency": 4,
    }
    server.shutdown()
    thread.join()


def test_endpoint_judging_logs_about_every_tenth_of_the_responses(endpoint, tmp_path, caplog):
    records = [{"index": i, "prompt": f"goal {i}", "response": f"answer {i}"} for i in range(25)]
    with caplog.at_level(logging.INFO, logger="safety_landscape.judges"):
        judge_records(open_judge(endpoint), endpoint, records, tmp_path)
    messages = [r.getMessage() for r in caplog.records]
    url = endpoint["url"] + "/chat/completions"
    assert messages[0] == "llm: 25 of 25 responses to judge (the others are cached or repeats)"
    counts = [
        int(m.group(1))
        for text in messages[1:-1]
        if (m := re.fullmatch(rf"endpoint {url}: (\d+) of 25 responses judged \({NUMBER}/s\)", text))
    ]
    assert counts == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 25] and len(messages) == 15
    assert re.fullmatch(rf"llm: 25 responses judged in {NUMBER} s \({NUMBER}/s\)", messages[-1])
