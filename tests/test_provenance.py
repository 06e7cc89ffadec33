"""Code digests: results and rules are keyed on the code that produces them, and nothing else reruns."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from safety_landscape import provenance
from safety_landscape.io import read_cache_entry, read_jsonl, write_cache_entry
from safety_landscape.provenance import code_digest, engine_code_digest, imported_modules, module_closure
from test_workflow import make_workdir


def test_imports_of_every_form_are_found():
    source = (
        "from .io import atomic_path\nfrom . import metrics, nonexistent\nimport safety_landscape.points\n"
        "from safety_landscape.judges import judge_records\nimport os\n"
        "def f():\n    from .refusals import REFUSAL_KEYWORDS\n"
    )
    assert imported_modules(source) == {"io", "metrics", "points", "judges", "refusals"}


def test_closure_follows_imports_and_stops_at_ignored_modules():
    # model judges decode through the engines: their code counts too
    assert module_closure(("judges",)) == [
        *("decoding", "directions", "engines", "fastdecode", "io", "judge_formats", "judges", "modeling", "points"),
        *("provenance", "refusal_judge", "refusals", "textchecks"),
    ]
    assert module_closure(("decoding",)) == ["decoding", "refusals"]
    assert module_closure(("decoding",), ignore=("refusals",)) == ["decoding"]
    assert module_closure(("tables",)) == ["adaptive", "io", "metrics", "plan", "prompts", "tables"]


@pytest.fixture
def package_copy(tmp_path, monkeypatch) -> Path:
    """provenance reading a copy of the package, which the test may edit."""
    copy = tmp_path / "safety_landscape"
    shutil.copytree(provenance.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "PACKAGE_DIR", copy)
    provenance._module_source.cache_clear()
    yield copy
    provenance._module_source.cache_clear()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    provenance._module_source.cache_clear()


def test_a_digest_changes_with_exactly_the_modules_it_covers(package_copy):
    before = {entry: code_digest(entry) for entry in ("judges", "generate", "tables")}
    quiet_generation = code_digest("generate", ignore=("refusals",))
    edit(package_copy / "refusals.py", '"I cannot",', '"I cannot",\n    "Zyzzyva",')
    assert code_digest("judges") != before["judges"] and code_digest("generate") != before["generate"]
    assert code_digest("generate", ignore=("refusals",)) == quiet_generation
    assert code_digest("tables") == before["tables"]
    edit(package_copy / "metrics.py", '"""', '"""A changed docstring. ')
    assert code_digest("tables") != before["tables"] and code_digest("generate", ignore=("refusals",)) == quiet_generation


def test_a_corrupted_cache_entry_is_detected_and_never_served(tmp_path, caplog):
    entry = tmp_path / "entry.json"
    payload = [{"index": 0, "response": "I'm sorry"}, {"index": 1, "response": "Sure, here is"}]
    write_cache_entry(entry, payload)
    assert read_cache_entry(entry) == payload
    intact = entry.read_bytes()
    for damaged in (intact[: len(intact) // 2], intact.replace(b"Sure", b"Surf"), b"", b"[1, 2]"):
        entry.write_bytes(damaged)
        assert read_cache_entry(entry) is None and not entry.exists()
    assert caplog.text.count("is corrupted") == 4
    assert read_cache_entry(tmp_path / "missing.json") is None


# ---- the workflow in a copy of the source tree ---------------------------------------------------


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory) -> Path:
    """The workflow and its package copied, so that a test can edit the package like an upgrade would."""
    root = tmp_path_factory.mktemp("tree")
    for name in ("Snakefile", "rules", "scripts", "config", "src", "report", "envs", "data"):
        source = REPO / name
        copy = shutil.copytree if source.is_dir() else shutil.copy2
        copy(source, root / name, **({"ignore": shutil.ignore_patterns("__pycache__", "*.egg-info")} if source.is_dir() else {}))
    return root


def run_copy(tree: Path, workdir: Path, *args: str, configs: tuple[str, ...] = ("config.yaml",)) -> subprocess.CompletedProcess:
    """Snakemake of the copied tree, its package first on the path (in every job too)."""
    env = os.environ | {"PYTHONPATH": str(tree / "src")}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(tree / "Snakefile"), "--cores", "2", "--directory", str(workdir), *args]
    proc = subprocess.run([*cmd, "--configfile", *(str(workdir / c) for c in configs)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, f"snakemake failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def planned(tree: Path, workdir: Path) -> dict[str, int]:
    out = run_copy(tree, workdir, "-n").stdout
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", out, re.M) if m.group(1) != "total"}


def cache_state(workdir: Path, kind: str) -> dict[str, int]:
    entries = (workdir / "results" / "cache" / kind).rglob("*.json")
    return {p.relative_to(workdir).as_posix(): p.stat().st_mtime_ns for p in entries}


def test_an_edited_module_reruns_exactly_the_rules_and_cache_entries_that_use_it(tree_copy, tmp_path, tiny_model_dir):
    package = tree_copy / "src" / "safety_landscape"
    workdir = make_workdir(tmp_path / "run", tiny_model_dir, generation={"stop_on_refusal": False})
    run_copy(tree_copy, workdir)
    assert planned(tree_copy, workdir) == {}
    responses, judgments = cache_state(workdir, "responses"), cache_state(workdir, "judgments")
    verdicts = read_jsonl(workdir / "results/tiny/judgments/keyword/d1.jsonl")
    downstream = {"visage": 1, "figures": 1, "bundle": 1, "all": 1}

    # the refusal keywords: judging reruns (2 judges x 2 landscapes), generation does not (no early stop)
    edit(package / "refusals.py", '"I cannot",', '"I cannot",\n    "Zyzzyva",')
    assert planned(tree_copy, workdir) == {"judge": 4} | downstream
    run_copy(tree_copy, workdir)
    assert cache_state(workdir, "responses") == responses
    assert len(cache_state(workdir, "judgments")) == 2 * len(judgments)  # every verdict asked again, under a new key
    assert [v["jailbroken"] for v in read_jsonl(workdir / "results/tiny/judgments/keyword/d1.jsonl")] == [
        v["jailbroken"] for v in verdicts
    ]
    # with early stop (keyword judge only) the keywords decide where decoding ends: generation depends on them too
    (workdir / "stop.yaml").write_text("generation: {stop_on_refusal: true}\njudges: [{name: keyword}]\n")
    dry = run_copy(tree_copy, workdir, "-n", configs=("config.yaml", "stop.yaml")).stdout
    assert re.search(r"^generate\s+4$", dry, re.M)

    # the decoder: every generation job reruns and regenerates every point; directions and points stay
    edit(package / "decoding.py", '"""', '"""A changed docstring. ')
    assert planned(tree_copy, workdir) == {"generate": 4, "judge": 4} | downstream
    run_copy(tree_copy, workdir)
    regenerated = cache_state(workdir, "responses")
    assert len(regenerated) == 2 * len(responses) and {k: regenerated[k] for k in responses} == responses

    # the metrics: only the tables and what is drawn from them
    edit(package / "metrics.py", '"""', '"""A changed docstring. ')
    assert planned(tree_copy, workdir) == downstream


def test_a_custom_engine_module_is_part_of_the_generation_code(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "my_engine_mod.py").write_text("class Engine: pass\n")
    before = engine_code_digest("my_engine_mod:Engine")
    (tmp_path / "my_engine_mod.py").write_text("class Engine: pass  # edited\n")
    assert engine_code_digest("my_engine_mod:Engine") != before and engine_code_digest("hf") == ""
    with pytest.raises(ValueError, match="no such module; install its package"):
        engine_code_digest("no_such_engine_mod:Engine")
