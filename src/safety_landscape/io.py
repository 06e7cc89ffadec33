"""Atomic writes (files, folders, tables), JSON and JSONL, digests and job logs, shared by every stage."""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

if TYPE_CHECKING:
    import pandas as pd

_UMASK = os.umask(0)
os.umask(_UMASK)


_FULL_DISK = (errno.ENOSPC, errno.EDQUOT)


class NoSpaceError(OSError):
    """A write failed on a full file system (or an exhausted quota); the message names the file and what to do."""


@contextmanager
def _full_disk_explained(path: Path) -> Iterator[None]:
    """Turn a full-disk error inside the block into a NoSpaceError naming `path` and the way out."""
    try:
        yield
    except OSError as err:
        if err.errno not in _FULL_DISK or isinstance(err, NoSpaceError):
            raise
        raise NoSpaceError(
            err.errno,
            f"{os.strerror(err.errno)} while writing {path}: free space on its file system, then run the workflow "
            "again (finished work is kept; only what is missing is computed)",
        ) from err


def _running(pid: int) -> bool:
    """Whether process `pid` exists on this host (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


_SWEPT: set[Path] = set()


def _remove_orphans(folder: Path) -> None:
    """Delete the temporary files that writers on this host left in `folder` when they died before
    publishing them (kill -9); a temporary file names its writer's host and process id. Once per
    folder and process."""
    if folder in _SWEPT:
        return
    _SWEPT.add(folder)
    tag = f".{socket.gethostname()}-"
    for tmp in folder.glob(f".*{glob.escape(tag)}*.tmp"):
        pid = tmp.name.rsplit(tag, 1)[1].split(".", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary file, `.<name>.<host>-<pid>.<random>.tmp`, is deleted when the block fails; one left
    by a killed writer is deleted by the next write into its folder. A full disk raises NoSpaceError."""
    path = Path(path)
    with _full_disk_explained(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_orphans(path.parent)
        writer = f"{socket.gethostname()}-{os.getpid()}"
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{writer}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            yield Path(tmp)
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600 files; give the usual permissions
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


@contextmanager
def atomic_folder(path: str | os.PathLike, keep_partial: bool = False) -> Iterator[Path]:
    """Yield a folder `<name>.partial` beside `path`; it replaces `path` only if the block succeeds.

    The folder starts empty and is deleted when the block fails; with `keep_partial` a partial folder
    left by an interrupted block is yielded as it is, and kept when the block fails, for a writer that
    verifies and reuses what it holds. A full disk raises NoSpaceError."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    with _full_disk_explained(path):
        if not keep_partial:
            shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            yield tmp
            shutil.rmtree(path, ignore_errors=True)
            os.replace(tmp, path)
        finally:
            if not keep_partial:
                shutil.rmtree(tmp, ignore_errors=True)


def write_table(frame: pd.DataFrame, csv_path: str | os.PathLike, parquet_path: str | os.PathLike | None = None) -> None:
    """Write a DataFrame (without its index) as CSV and, given a path, as Parquet, each atomically."""
    with atomic_path(csv_path) as tmp:
        frame.to_csv(tmp, index=False)
    if parquet_path is not None:
        with atomic_path(parquet_path) as tmp:
            frame.to_parquet(tmp, index=False)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """Digest of a JSON-serialisable object, independent of key order."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def write_cache_entry(path: str | os.PathLike, payload: Any) -> None:
    """Write a cache entry atomically, sealed with the digest of its payload (see `read_cache_entry`)."""
    write_text(path, json.dumps({"sha256": sha256_json(payload), "payload": payload}, ensure_ascii=False) + "\n")


def read_cache_entry(path: str | os.PathLike) -> Any | None:
    """The payload of a cache entry; None when it is missing, or when it is unreadable or does not match
    its digest (truncated or corrupted: it is deleted, logged, and its result computed again)."""
    path = Path(path)
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        if sha256_json(entry["payload"]) == entry["sha256"]:
            return entry["payload"]
        problem = "its content does not match its digest"
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, KeyError) as err:
        problem = f"it is not a complete entry ({type(err).__name__})"
    logging.getLogger(__name__).warning("cache entry %s is corrupted (%s); computing it again", path, problem)
    path.unlink(missing_ok=True)
    return None


def log_to_file(path: str | os.PathLike) -> None:
    """Send logging and stderr (tqdm progress bars) of a workflow job to its log file."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    stream = open(path, "a", buffering=1, encoding="utf-8")
    sys.stderr = stream
    logging.basicConfig(stream=stream, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
