"""Hub models: the model rule's script against a hub stand-in on 127.0.0.1 (the endpoints the real
huggingface_hub client calls), checking what it downloads, at which commit, and the manifest."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from conftest import CHAT_TEMPLATE, REPO
from safety_landscape.modeling import (
    HUB_FILES,
    PICKLE_FILES,
    ModelSpecError,
    ResolvedSource,
    download_hub_model,
    folder_digest,
    load_tokenizer,
    resolve_source,
)

MAIN, V1 = "1" * 40, "2" * 40
ROUTES = [
    ("info", re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")),
    ("tree", re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)$")),
    ("file", re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")),
]


class LocalHub(ThreadingHTTPServer):
    """Model repos (folders) with their refs, served through the hub API: model info, file tree, file download.
    `requests` records every (method, path)."""

    def __init__(self, repos: dict[str, Path], refs: dict[str, str], gated: tuple[str, ...] = ()):
        super().__init__(("127.0.0.1", 0), HubHandler)
        self.repos, self.refs, self.gated = repos, refs, gated
        self.requests: list[tuple[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def files(self, repo: str) -> list[str]:
        return sorted(p.relative_to(self.repos[repo]).as_posix() for p in self.repos[repo].rglob("*") if p.is_file())


class HubHandler(BaseHTTPRequestHandler):
    server: LocalHub

    def do_GET(self) -> None:
        self.answer(send_body=True)

    def do_HEAD(self) -> None:
        self.answer(send_body=False)

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def answer(self, send_body: bool) -> None:
        path = urlsplit(self.path).path
        self.server.requests.append((self.command, unquote(path)))
        kind, match = next(((kind, m) for kind, pattern in ROUTES if (m := pattern.match(path))), (None, None))
        repo = unquote(match["repo"]) if match else None
        commit = self.server.refs.get(unquote(match["rev"] or "main")) if match else None
        if repo not in self.server.repos:
            return self.reply(404, b"{}", {"X-Error-Code": "RepoNotFound"}, send_body)
        if repo in self.server.gated:
            return self.reply(403, b"{}", {"X-Error-Code": "GatedRepo"}, send_body)
        if commit is None:
            return self.reply(404, b"{}", {"X-Error-Code": "RevisionNotFound"}, send_body)
        files = self.server.files(repo)
        if kind == "info":
            info = {"id": repo, "sha": commit, "siblings": [{"rfilename": f} for f in files]}
            return self.reply(200, json.dumps(info).encode(), {"Content-Type": "application/json"}, send_body)
        if kind == "tree":
            tree = [{"type": "file", "path": f, "size": (self.server.repos[repo] / f).stat().st_size, "oid": f} for f in files]
            return self.reply(200, json.dumps(tree).encode(), {"Content-Type": "application/json"}, send_body)
        data = (self.server.repos[repo] / unquote(match["file"])).read_bytes()
        self.reply(200, data, {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}, send_body)

    def reply(self, status: int, body: bytes, headers: dict[str, str], send_body: bool) -> None:
        self.send_response(status)
        for name, value in (headers | {"Content-Length": str(len(body))}).items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)


def write_files(folder: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture
def hub(tmp_path, tiny_model_dir):
    """A hub with `org/tiny` (the tiny model, an extra chat template, model code, and pickle and other files
    a download must skip), `org/pickle-only` (no safetensors weights) and the gated `org/gated`."""
    tiny = Path(shutil.copytree(tiny_model_dir, tmp_path / "repos" / "tiny"))
    write_files(
        tiny,
        {
            "additional_chat_templates/tool_use.jinja": b"{{ messages }}",
            "modeling_tiny.py": b"# model code\n",
            "pytorch_model.bin": b"pickle",
            "training_args.bin": b"pickle",
            "original/consolidated.00.pth": b"pickle",
            "consolidated.safetensors": b"another format",
            "README.md": b"# tiny\n",
        },
    )
    pickle_only = write_files(tmp_path / "repos" / "pickle-only", {"config.json": b"{}", "pytorch_model.bin": b"pickle"})
    repos = {"org/tiny": tiny, "org/pickle-only": pickle_only, "org/gated": tiny}
    server = LocalHub(repos, refs={"main": MAIN, "v1": V1, MAIN: MAIN, V1: V1}, gated=("org/gated",))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join()


RUN_MODEL_SCRIPT = """
import json, runpy, sys
from types import SimpleNamespace
spec, out = json.loads(sys.argv[1]), sys.argv[2]
snakemake = SimpleNamespace(
    log=[f"{out}/model.log"],
    params=SimpleNamespace(spec=spec, convert_dir=f"{out}/hf", template_dir=f"{out}/with-template"),
    output=SimpleNamespace(manifest=f"{out}/manifest.json"),
)
runpy.run_path(sys.argv[3], init_globals={"snakemake": snakemake})
"""


def run_model_script(hub: LocalHub, spec: dict, out: Path, offline: bool = False) -> subprocess.CompletedProcess:
    """scripts/model.py as the model rule runs it, with `hub` as the hub and its cache under `out`."""
    env = os.environ | {
        "HF_ENDPOINT": hub.url,
        "HF_HUB_CACHE": str(out / "hub-cache"),
        "HF_HUB_OFFLINE": "1" if offline else "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "PYTHONPATH": str(REPO / "src"),
    }
    command = [sys.executable, "-c", RUN_MODEL_SCRIPT, json.dumps(spec), str(out), str(REPO / "scripts" / "model.py")]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


TINY_FILES = [
    "additional_chat_templates/tool_use.jinja",
    "chat_template.jinja",
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
]


@pytest.mark.parametrize(
    "revision, trust_remote_code, commit, files",
    [
        (None, False, MAIN, TINY_FILES),
        ("v1", False, V1, TINY_FILES),
        (V1, True, V1, sorted(TINY_FILES + ["modeling_tiny.py"])),
    ],
)
def test_hub_model_is_downloaded_at_its_commit_and_recorded(
    hub, tmp_path, tiny_model_dir, revision, trust_remote_code, commit, files
):
    spec = {"name": "tiny", "source": "org/tiny", "revision": revision, "trust_remote_code": trust_remote_code}
    run = run_model_script(hub, spec, tmp_path)
    assert run.returncode == 0, (tmp_path / "model.log").read_text()
    snapshot = tmp_path / "hub-cache" / "models--org--tiny" / "snapshots" / commit
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest == {
        "source": "org/tiny",
        "kind": "hub",
        "revision": commit,
        "path": str(snapshot),
        "digest": folder_digest(tiny_model_dir),
    }
    assert sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()) == files
    downloads = sorted({path for method, path in hub.requests if method == "GET" and "/resolve/" in path})
    assert downloads == [f"/org/tiny/resolve/{commit}/{name}" for name in files]
    assert hub.requests[0] == ("GET", "/api/models/org/tiny" + (f"/revision/{revision}" if revision else ""))
    assert load_tokenizer(str(snapshot)).chat_template == {"default": CHAT_TEMPLATE, "tool_use": "{{ messages }}"}
    assert f"hub model org/tiny: revision {revision or 'main'} is commit {commit}" in (tmp_path / "model.log").read_text()


@pytest.mark.parametrize(
    "source, revision, offline, message",
    [
        (
            "org/pickle-only",
            None,
            False,
            "model.source: hub model 'org/pickle-only' has no safetensors weights (model.safetensors or "
            f"model.safetensors.index.json) at revision 'main' ({MAIN}), and pickle weights are never loaded; set "
            "model.revision to a revision that has them (such as the safetensors conversion's refs/pr/<number>), or save "
            "the model with save_pretrained(safe_serialization=True) and set model.source to that folder",
        ),
        (
            "org/tiny",
            "v2",
            False,
            "model.revision: 'v2' is no branch, tag or commit of hub model 'org/tiny'; fix it, or set null for the main branch",
        ),
        (
            "org/missing",
            None,
            False,
            "model.source: hub model 'org/missing' does not exist or is private; fix the id, or log in "
            "(`hf auth login` or the HF_TOKEN environment variable)",
        ),
        (
            "org/gated",
            None,
            False,
            "model.source: hub model 'org/gated' is gated; accept its terms on the hub, then log in "
            "(`hf auth login` or the HF_TOKEN environment variable)",
        ),
        (
            "org/tiny",
            None,
            True,
            "model.source: hub model 'org/tiny' needs the hub to resolve revision 'main', and HF_HUB_OFFLINE is set; "
            "unset it, or set model.source to a local copy of the model (such as the path in its manifest)",
        ),
    ],
)
def test_hub_model_that_cannot_be_used_fails_before_any_download_naming_the_fix(
    hub, tmp_path, source, revision, offline, message
):
    run = run_model_script(hub, {"name": "m", "source": source, "revision": revision}, tmp_path, offline)
    assert run.returncode == 1
    last_line = (tmp_path / "model.log").read_text().rstrip().splitlines()[-1]
    assert last_line == f"safety_landscape.modeling.ModelSpecError: {message}"
    assert [path for _, path in hub.requests if "/resolve/" in path] == []
    assert not (tmp_path / "manifest.json").exists()


def test_download_asks_for_the_pinned_commit_and_the_loadable_files_only(monkeypatch):
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *args, **kwargs: calls.append((args, kwargs)) or "/snap")
    assert download_hub_model(ResolvedSource("hub", "org/tiny", revision=V1), trust_remote_code=True) == "/snap"
    assert download_hub_model(ResolvedSource("hub", "org/tiny", revision=V1)) == "/snap"
    assert calls == [
        (("org/tiny",), {"revision": V1, "allow_patterns": HUB_FILES + ["*.py"], "ignore_patterns": PICKLE_FILES}),
        (("org/tiny",), {"revision": V1, "allow_patterns": HUB_FILES, "ignore_patterns": PICKLE_FILES}),
    ]
    assert {"*.jinja", "model*.safetensors"} <= set(HUB_FILES)
    assert PICKLE_FILES == ["*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt"]


def test_hub_download_needs_a_pinned_commit():
    with pytest.raises(ValueError, match=r"^hub model 'org/tiny': revision 'main' is no commit; pin it with pin_revision first$"):
        download_hub_model(ResolvedSource("hub", "org/tiny", revision="main"))


def test_revision_is_for_hub_models_only(tiny_model_dir):
    assert resolve_source("org/tiny", revision="v1") == ResolvedSource("hub", "org/tiny", revision="v1")
    with pytest.raises(ModelSpecError) as err:
        resolve_source(str(tiny_model_dir), revision="v1")
    assert str(err.value) == (
        f"model.revision: 'v1' is set, but model.source {str(tiny_model_dir)!r} is a local folder, not a hub id; "
        "set model.revision: null"
    )
