"""The results bundle: manifest checksums, compressed records, and verification of tampered bundles."""

import gzip
import json
import subprocess
import sys

import pytest

from conftest import REPO
from safety_landscape.bundle import MANIFEST, build_bundle, main, verify_bundle
from safety_landscape.io import read_json, sha256_file


@pytest.fixture
def bundle(tmp_path):
    run = tmp_path / "results" / "r"
    (run / "tables").mkdir(parents=True)
    (run / "responses" / "d1").mkdir(parents=True)
    (run / "tables" / "asr.csv").write_text("judge,a,asr\nkeyword,0.0,5.0\n")
    records = "".join(json.dumps({"index": i, "response": "I cannot help with that."}) + "\n" for i in range(50))
    (run / "responses" / "d1" / "a+0.0000.jsonl").write_text(records)
    files = {
        "tables/asr.csv": run / "tables" / "asr.csv",
        "responses/d1/a+0.0000.jsonl": run / "responses" / "d1" / "a+0.0000.jsonl",
    }
    manifest = build_bundle(files, run / "bundle", {"run": "r", "model": {"name": "m"}}, "r", REPO)
    return run / "bundle", manifest, records


def test_bundle_lists_every_file_with_its_checksum(bundle):
    folder, manifest, records = bundle
    assert [e["path"] for e in manifest["files"]] == ["config.yaml", "responses/d1/a+0.0000.jsonl.gz", "tables/asr.csv"]
    for entry in manifest["files"]:
        assert (
            sha256_file(folder / entry["path"]) == entry["sha256"] and (folder / entry["path"]).stat().st_size == entry["bytes"]
        )
    assert gzip.decompress((folder / "responses/d1/a+0.0000.jsonl.gz").read_bytes()).decode() == records
    assert (folder / "responses/d1/a+0.0000.jsonl.gz").stat().st_size < len(records) / 5
    assert manifest["total_bytes"] == sum(e["bytes"] for e in manifest["files"])
    assert manifest["config"]["model"]["name"] == "m" and manifest["versions"]["torch"] and manifest["versions"]["python"]
    assert len(manifest["git"]["commit"] or "") in (0, 40)
    assert read_json(folder / MANIFEST) == manifest
    assert verify_bundle(folder) == []


def test_rebuilding_gives_identical_files(bundle, tmp_path):
    folder, manifest, _ = bundle
    again = build_bundle(
        {
            "tables/asr.csv": folder.parent / "tables" / "asr.csv",
            "responses/d1/a+0.0000.jsonl": folder.parent / "responses" / "d1" / "a+0.0000.jsonl",
        },
        tmp_path / "again",
        {"run": "r", "model": {"name": "m"}},
        "r",
        REPO,
    )
    assert again["files"] == manifest["files"]


def test_verify_names_changed_missing_and_unlisted_files(bundle):
    folder, _, _ = bundle
    (folder / "tables" / "asr.csv").write_text("judge,a,asr\nkeyword,0.0,0.0\n")
    (folder / "responses/d1/a+0.0000.jsonl.gz").unlink()
    (folder / "notes.txt").write_text("added later")
    assert verify_bundle(folder) == [
        "missing: responses/d1/a+0.0000.jsonl.gz",
        "changed: tables/asr.csv (sha256 differs from the manifest)",
        "not in the manifest: notes.txt",
    ]
    assert main([str(folder)]) == 1


def test_verify_command(bundle, tmp_path):
    folder, _, _ = bundle
    ok = subprocess.run([sys.executable, "-m", "safety_landscape.bundle", str(folder)], capture_output=True, text=True)
    assert ok.returncode == 0 and "all 3 files match the manifest" in ok.stdout
    not_a_bundle = subprocess.run(
        [sys.executable, "-m", "safety_landscape.bundle", str(tmp_path)], capture_output=True, text=True
    )
    assert not_a_bundle.returncode == 1 and "not a bundle folder" in not_a_bundle.stderr
