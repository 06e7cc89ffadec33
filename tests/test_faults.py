"""Faults survived, stage by stage: a job killed (SIGKILL) as it publishes a result, a truncated or
corrupted cache entry, a full disk. After each fault the workflow finishes with exactly the outputs of
an uninterrupted run, keeps the work finished before the fault, and never leaves or reads a
half-written file.

Faults are injected by tests/faults/sitecustomize.py (its docstring says how). Each case starts from
a copy of one finished reference run without the outputs of its stage and of the stages after it (and
without its stage's cache), so the faulted run begins at that stage as an uninterrupted run did."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file

from safety_landscape.bundle import verify_bundle
from safety_landscape.directions import CheckpointReader, Direction, random_source, write_direction
from safety_landscape.io import NoSpaceError, atomic_folder, atomic_path, read_json, write_text
from test_workflow import SNAKEMAKE, make_workdir

HARNESS = Path(__file__).parent / "faults"
SETTINGS = {
    "landscape": {"directions": 1, "grid": {"min": -0.1, "max": 0.1, "step": 0.1}, "shard_size_mb": 1},  # 2 shards
    "prompts": {"count": 2},
    "generation": {"batch_size": 2, "max_new_tokens": 4, "points_per_job": 3},  # one job of 3 points
}


def workflow(workdir: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess:
    """Run the workflow in `workdir`, in a process group of its own, with `fault` (FAULT syntax) injected."""
    env = {key: value for key, value in os.environ.items() if key != "FAULT"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HARNESS), os.environ.get("PYTHONPATH")]))
    env["FAULT_FIRED"] = str(workdir / "fault-fired")
    if fault is not None:
        env["FAULT"] = fault
    cmd = SNAKEMAKE + ["--directory", str(workdir), "--configfile", str(workdir / "config.yaml"), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, start_new_session=True)


def finish(workdir: Path, *args: str) -> None:
    proc = workflow(workdir, *args)
    assert proc.returncode == 0, f"snakemake failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model_dir):
    """The finished uninterrupted run made with SETTINGS and a case's settings (one per distinct settings), judged
    by the keyword judge alone."""
    runs: dict[str, Path] = {}

    def finished(settings: dict) -> Path:
        key = json.dumps(settings, sort_keys=True)
        if key not in runs:
            runs[key] = make_workdir(tmp_path_factory.mktemp("reference"), tiny_model_dir, **(SETTINGS | settings))
            config = yaml.safe_load((runs[key] / "config.yaml").read_text()) | {"judges": [{"name": "keyword"}]}
            (runs[key] / "config.yaml").write_text(yaml.safe_dump(config))
            finish(runs[key])
        return runs[key]

    return finished


# The outputs (under results/) of the stages of the main chain, in order.
CHAIN = {
    "directions": ("tiny/directions",),
    "materialize": ("tiny/points",),
    "generate": ("tiny/responses",),
    "judge": ("tiny/judgments",),
    "visage": ("tiny/tables", "tiny/summary.json"),
    "figures": ("tiny/figures",),
    "bundle": ("tiny/bundle",),
}


def from_stage(stage: str, *caches: str) -> tuple[str, ...]:
    """What a run that stopped before `stage` lacks: the outputs of that stage and of those after it, and `caches`."""
    stages = list(CHAIN)
    return tuple(path for later in stages[stages.index(stage) :] for path in CHAIN[later]) + caches


def copy_before(reference: Path, workdir: Path, redo: tuple[str, ...]) -> Path:
    """A copy of a finished run (modification times kept) without the paths matching `redo` (under results/)."""
    shutil.copytree(reference, workdir, symlinks=True)
    for pattern in redo:
        for path in (workdir / "results").glob(pattern):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
    return workdir


def fired(workdir: Path) -> tuple[str, Path]:
    """The kind and path of the one fault that fired."""
    lines = (workdir / "fault-fired").read_text().splitlines()
    assert len(lines) == 1, lines
    kind, path = lines[0].split(" ", 1)
    return kind, Path(path)


def stamp(path: Path) -> tuple[int, int]:
    """Inode and modification time: a file written again gets a new inode (atomic write) or modification time."""
    return path.stat().st_ino, path.stat().st_mtime_ns


def stamps(workdir: Path, pattern: str) -> dict[Path, tuple[int, int]]:
    return {path: stamp(path) for path in (workdir / "results").glob(pattern)} if pattern else {}


def published(path: Path) -> Path:
    """Where a file finished inside a partial folder lies once the folder is published."""
    return Path(str(path).replace(".partial/", "/"))


def assert_kept(finished_before: dict[Path, tuple[int, int]]) -> None:
    """Work finished before the fault was reused, not done again."""
    assert {published(p): s for p, s in finished_before.items()} == {published(p): stamp(published(p)) for p in finished_before}


def temporaries(workdir: Path) -> list[Path]:
    """Temporary files and partial folders anywhere under results/."""
    return sorted(p for p in (workdir / "results").rglob("*") if p.name.endswith((".tmp", ".partial")))


def outputs_in_place(workdir: Path, stage: str) -> list[Path]:
    """Files of the stage's outputs under results/, those in a partial folder aside."""
    return [
        p
        for p in results(workdir)
        if any(p.is_relative_to(output) for output in CHAIN[stage]) and not any(part.endswith(".partial") for part in p.parts)
    ]


def unpublished(destination: Path) -> list[Path]:
    """The temporary file or partial folder holding what was about to become `destination`."""
    return sorted(destination.parent.glob(f".{destination.name}.*.tmp")) + sorted(
        destination.parent.glob(f"{destination.name}.partial")
    )


def safetensors_content(path: Path) -> tuple[dict, dict]:
    """Metadata and tensors of a safetensors file (the order of its header's metadata varies from run to run)."""
    with safe_open(str(path), framework="pt") as f:
        return f.metadata(), {name: f.get_tensor(name) for name in f.keys()}


def results(workdir: Path) -> list[Path]:
    """The files under results/, logs aside, relative to it."""
    root = workdir / "results"
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and "logs" not in p.relative_to(root).parts)


def assert_same_results(run: Path, reference: Path, whole_run: bool = True) -> None:
    """`run` holds the files of `reference` under results/ (all of them, or some when not `whole_run`; logs aside),
    with the same content: byte for byte, except what carries a creation time (PDF figures, the bundle manifest's
    `created`) or an unordered header (safetensors metadata)."""
    ours, theirs = run / "results", reference / "results"
    files = results(run)
    if whole_run:
        assert files == results(reference)
    else:
        assert set(files) <= set(results(reference))
    for rel in files:
        mine, expected = ours / rel, theirs / rel
        if rel.suffix == ".pdf":
            assert mine.read_bytes().startswith(b"%PDF") and mine.read_bytes().rstrip().endswith(b"%%EOF"), rel
        elif rel.suffix == ".safetensors":
            (meta, tensors), (expected_meta, expected_tensors) = safetensors_content(mine), safetensors_content(expected)
            assert meta == expected_meta and tensors.keys() == expected_tensors.keys(), rel
            assert all(torch.equal(tensors[name], expected_tensors[name]) for name in tensors), rel
        elif rel.name == "MANIFEST.json":
            assert [e for e in read_json(mine)["files"] if not e["path"].endswith(".pdf")] == [
                e for e in read_json(expected)["files"] if not e["path"].endswith(".pdf")
            ]
            assert verify_bundle(mine.parent) == []
        else:
            assert mine.read_bytes() == expected.read_bytes(), rel


# ---- kill -9 as a result is published -----------------------------------------------------------


@dataclass(frozen=True)
class Kill:
    """SIGKILL of the job and Snakemake at the n-th publish matching `publish` of the stage's job."""

    stage: str
    redo: tuple[str, ...]  # deleted before the run, under results/: see from_stage
    publish: str  # destination glob under results/
    n: int
    kept: str = ""  # glob under results/: work finished before the kill that must be reused
    settings: dict = field(default_factory=dict)  # over SETTINGS, for the stage to run at all


KEYS = "cache/responses/*.json"
DIRECTION_SHARDS = "tiny/directions/*/shard-*"  # in d1.partial while the direction is written, then in d1
VERDICTS = "cache/judgments/*/*.json"
KILLS = [
    # the second (last) shard is written; the first is finished and recorded in the partial folder
    Kill("directions", from_stage("directions"), "tiny/directions/d1.partial/shard-00002.safetensors", 1, DIRECTION_SHARDS),
    Kill("materialize", from_stage("materialize"), "tiny/points/d1/*.safetensors", 2),
    Kill("generate", from_stage("generate", "cache/responses"), KEYS, 2, KEYS),
    Kill("judge", from_stage("judge", "cache/judgments"), VERDICTS, 2, VERDICTS),
    Kill("visage", from_stage("visage"), "tiny/tables/visage.csv", 1),  # asr.csv is in place
    Kill("figures", from_stage("figures"), "tiny/figures/landscape_1d.pdf", 1),  # the PNG is in place
    Kill("bundle", from_stage("bundle"), "tiny/bundle", 1),  # the complete bundle.partial folder is renamed
]


@pytest.mark.parametrize("case", KILLS, ids=lambda case: case.stage)
def test_a_job_killed_as_it_publishes_resumes_to_the_uninterrupted_result(case, reference, tmp_path):
    clean = reference(case.settings)
    run = copy_before(clean, tmp_path / "run", case.redo)
    proc = workflow(run, fault=f"kill:{case.n}:*/results/{case.publish}")
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    kind, destination = fired(run)
    assert kind == "kill" and fnmatch(str(destination), f"*/results/{case.publish}")
    assert not destination.exists() and unpublished(destination), "the result was written but not yet in place"
    finished_before = stamps(run, case.kept)
    if case.kept:
        assert finished_before, "the kill should land after some of the job's work is finished"

    finish(run, "--unlock")
    finish(run)
    assert_same_results(run, clean)
    assert temporaries(run) == []
    assert_kept(finished_before)


# ---- a full disk ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FullDisk:
    """ENOSPC at the first write into the n-th file the stage's job opens for writing that matches `written`."""

    stage: str  # its rule: the run after the fault runs until it
    redo: tuple[str, ...]
    written: str  # glob under results/ of the file written (a temporary file, for results written atomically)
    n: int
    named: str  # glob under results/ of the result the error message names
    kept: str = ""
    settings: dict = field(default_factory=dict)


FULL_DISKS = [
    FullDisk(
        "directions",
        from_stage("directions"),
        "tiny/directions/d1.partial/.shard-00002.safetensors.*.tmp",
        1,
        "tiny/directions/d1.partial/shard-00002.safetensors",
        DIRECTION_SHARDS,
    ),
    FullDisk("generate", from_stage("generate", "cache/responses"), "cache/responses/.*.tmp", 2, "cache/responses/*.json", KEYS),
    FullDisk(
        "judge",
        from_stage("judge", "cache/judgments"),
        "tiny/judgments/keyword/.d1.jsonl.*.tmp",
        1,
        "tiny/judgments/keyword/d1.jsonl",
        VERDICTS,  # every verdict is cached before the judgments are written
    ),
    FullDisk("visage", from_stage("visage"), "tiny/.summary.json.*.tmp", 1, "tiny/summary.json"),
    FullDisk("bundle", from_stage("bundle"), "tiny/bundle.partial/config.yaml", 1, "tiny/bundle"),
]
NO_SPACE = re.compile(
    r"No space left on device while writing (\S+): free space on its file system, then run the workflow again "
    r"\(finished work is kept; only what is missing is computed\)"
)


@pytest.mark.parametrize("case", FULL_DISKS, ids=lambda case: case.stage)
def test_a_full_disk_fails_the_job_clearly_and_keeps_finished_work(case, reference, tmp_path):
    clean = reference(case.settings)
    run = copy_before(clean, tmp_path / "run", case.redo)
    proc = workflow(run, fault=f"enospc:{case.n}:*/results/{case.written}")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    kind, written = fired(run)
    assert kind == "enospc" and fnmatch(str(written), f"*/results/{case.written}")
    named = NO_SPACE.search(proc.stdout + proc.stderr)  # the failed job's log, shown by Snakemake
    assert named, proc.stdout + proc.stderr
    assert fnmatch(named[1], f"results/{case.named}") and not (run / named[1]).exists()
    assert outputs_in_place(run, case.stage) == []
    partial_shards = [p for p in temporaries(run) if p.name == "d1.partial"]
    assert temporaries(run) == partial_shards, "no temporary file is left; only a direction's finished shards are"
    finished_before = stamps(run, case.kept)
    if case.kept:
        assert finished_before, "the fault should strike after some of the job's work is finished"

    finish(run, "--until", case.stage)
    assert_same_results(run, clean, whole_run=False)
    assert temporaries(run) == []
    assert_kept(finished_before)


# ---- truncated or corrupted cache entries ------------------------------------------------------------


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_verdict(path: Path) -> None:
    """Change the payload and keep the old digest: still valid JSON, wrong content."""
    entry = json.loads(path.read_text())
    entry["payload"]["jailbroken"] = not entry["payload"]["jailbroken"]
    path.write_text(json.dumps(entry))


@pytest.mark.parametrize(
    ("entries", "damage", "rule", "log", "recomputed"),
    [
        (KEYS, truncate, "generate", "tiny/logs/generate/d1/job1.log", r": 2 responses, \d+ tokens"),
        (VERDICTS, flip_verdict, "judge", "tiny/logs/judge/keyword/d1.log", r", 1 judged now, "),
    ],
    ids=["truncated-response", "corrupted-verdict"],
)
def test_a_damaged_cache_entry_is_recomputed_never_served(reference, tmp_path, entries, damage, rule, log, recomputed):
    clean = reference({})
    run = copy_before(clean, tmp_path / "run", ())
    intact = stamps(run, entries)
    damaged = sorted(intact)[0]
    original = damaged.read_bytes()
    damage(damaged)

    finish(run, "--forcerun", rule, "--until", rule)
    text = (run / "results" / log).read_text()
    assert re.search(rf"cache entry results/\S+/{damaged.name} is corrupted \(.+\); computing it again", text), text
    assert len(re.findall(recomputed, text)) == 1, text  # the damaged entry only; the others come from the cache
    assert damaged.read_bytes() == original
    assert_kept({path: s for path, s in intact.items() if path != damaged})
    assert_same_results(run, clean, whole_run=False)


# ---- the pieces, in-process --------------------------------------------------------------------------


def test_a_full_disk_inside_atomic_path_names_the_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "table.csv"
    with pytest.raises(NoSpaceError, match=NO_SPACE.pattern) as caught:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert caught.value.errno == errno.ENOSPC and f"while writing {target}:" in str(caught.value)
    assert list(target.parent.iterdir()) == []


def test_a_full_disk_inside_atomic_folder_names_the_folder_and_leaves_nothing(tmp_path):
    target = tmp_path / "bundle"
    message = f"Disk quota exceeded while writing {target}: free space on its file system"
    with pytest.raises(NoSpaceError, match=re.escape(message)):
        with atomic_folder(target) as staging:
            write_text(staging / "a.txt", "a")
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
    assert list(tmp_path.iterdir()) == []


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporary_files_of_dead_writers_on_this_host_go_at_the_next_write(tmp_path):
    host = socket.gethostname()
    dead = tmp_path / f".a.json.{host}-{dead_pid()}.x1y2.tmp"
    alive = tmp_path / f".b.json.{host}-{os.getpid()}.x1y2.tmp"  # a writer still at work
    elsewhere = tmp_path / f".c.json.otherhost-{dead_pid()}.x1y2.tmp"  # its writer may run on another host
    for path in (dead, alive, elsewhere):
        path.write_text("half")
    write_text(tmp_path / "d.json", "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, elsewhere.name, "d.json"])


# A direction of 4 tensors in shards of one tensor each (64 bytes), interrupted by a source that fails.
WEIGHTS = {f"model.layers.{i}.mlp.weight": torch.randn(4, 4, generator=torch.Generator().manual_seed(i)) for i in range(4)}
NAMES = list(WEIGHTS)
SHARDS = [f"shard-0000{i}.safetensors" for i in (1, 2, 3, 4)]


@pytest.fixture
def checkpoint(tmp_path):
    save_file(WEIGHTS, str(tmp_path / "model.safetensors"))
    return CheckpointReader(tmp_path)


def make_direction(checkpoint, out: Path, fail_at: str | None = None, seed: int = 7) -> str:
    source = random_source(seed, "layer")

    def failing(name: str, weight: torch.Tensor) -> torch.Tensor:
        if name == fail_at:
            raise RuntimeError("killed")
        return source(name, weight)

    return write_direction(out, checkpoint, failing, [], torch.float32, 64, {"name": "d1", "seed": seed})


def interrupted(checkpoint, out: Path, fail_at: str, seed: int = 7) -> Path:
    """The partial folder of a direction whose writing failed at tensor `fail_at`."""
    with pytest.raises(RuntimeError, match="killed"):
        make_direction(checkpoint, out, fail_at, seed)
    assert not out.exists()
    return out.with_name(out.name + ".partial")


def assert_same_direction(folder: Path, expected: Path) -> None:
    ours, theirs = Direction(folder), Direction(expected)
    assert ours.index == theirs.index and all(torch.equal(t, theirs.get(name)) for name, t in ours)
    assert sorted(p.name for p in folder.iterdir()) == ["direction.json", *SHARDS]


def test_an_interrupted_direction_resumes_from_its_verified_shards(checkpoint, tmp_path):
    partial = interrupted(checkpoint, tmp_path / "d1", fail_at=NAMES[3])  # shards 1 and 2 are finished
    finished = {name: stamp(partial / name) for name in SHARDS[:2]}
    assert sorted(p.name for p in partial.iterdir()) == ["progress.json", *SHARDS[:2]]
    make_direction(checkpoint, tmp_path / "d1")
    make_direction(checkpoint, tmp_path / "uninterrupted")
    assert_same_direction(tmp_path / "d1", tmp_path / "uninterrupted")
    assert {name: stamp(tmp_path / "d1" / name) for name in finished} == finished


def zero_the_last_bytes(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-4] + bytes(4))


@pytest.mark.parametrize("damage", [truncate, zero_the_last_bytes])
def test_a_shard_that_does_not_verify_is_written_again_with_those_after_it(checkpoint, tmp_path, damage):
    partial = interrupted(checkpoint, tmp_path / "d1", fail_at=NAMES[3])
    first = stamp(partial / SHARDS[0])
    damage(partial / SHARDS[1])
    make_direction(checkpoint, tmp_path / "d1")
    make_direction(checkpoint, tmp_path / "uninterrupted")
    assert_same_direction(tmp_path / "d1", tmp_path / "uninterrupted")
    assert stamp(tmp_path / "d1" / SHARDS[0]) == first


def test_shards_left_by_other_settings_are_discarded(checkpoint, tmp_path):
    interrupted(checkpoint, tmp_path / "d1", fail_at=NAMES[2], seed=8)
    make_direction(checkpoint, tmp_path / "d1")
    make_direction(checkpoint, tmp_path / "uninterrupted")
    assert_same_direction(tmp_path / "d1", tmp_path / "uninterrupted")
