"""Fault injection into the workflow's processes, loaded at interpreter start-up when this folder is
first on PYTHONPATH. The environment variable FAULT="<kind>:<n>:<glob>" picks one fault (none when unset):

- `kill`: at the n-th `os.replace` whose destination matches <glob>, that is when a finished temporary
  file or folder is about to be published (its bytes are written, it is not yet in place), SIGKILL
  the whole process group: the job and Snakemake die at once and nothing gets to clean up.
- `enospc`: the n-th file opened for writing whose path matches <glob> raises
  OSError(ENOSPC, "No space left on device") at its first write, as a full disk does.

<glob> is an fnmatch pattern over the absolute path (`*` also matches `/`). Before a fault fires, its
kind and path are appended to the file named by FAULT_FIRED, so a test can tell that it did fire.
"""

from __future__ import annotations

import builtins
import errno
import fnmatch
import io
import os
import signal


def _parse(spec: str) -> tuple[str, int, str]:
    kind, n, pattern = spec.split(":", 2)
    if kind not in ("kill", "enospc"):
        raise ValueError(f"FAULT={spec!r}: the kind must be kill or enospc")
    return kind, int(n), pattern


def _record(kind: str, path: str) -> None:
    with _real_open(os.environ["FAULT_FIRED"], "a", encoding="utf-8") as f:
        f.write(f"{kind} {path}\n")


class _Countdown:
    """True at the n-th path that matches the pattern, once."""

    def __init__(self, n: int, pattern: str):
        self.left, self.pattern = n, pattern

    def __call__(self, path) -> bool:
        if self.left > 0 and fnmatch.fnmatch(os.path.abspath(os.fspath(path)), self.pattern):
            self.left -= 1
            return self.left == 0
        return False


class _FullDisk:
    """A file opened for writing on a full disk: every write fails with ENOSPC."""

    def __init__(self, file):
        self._file = file

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._file.name)

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()


_real_open, _real_replace = builtins.open, os.replace


def _install_kill(due: _Countdown) -> None:
    def replace(src, dst, *args, **kwargs):
        if due(dst):
            _record("kill", os.path.abspath(os.fspath(dst)))
            os.killpg(os.getpgrp(), signal.SIGKILL)
        return _real_replace(src, dst, *args, **kwargs)

    os.replace = replace


def _install_enospc(due: _Countdown) -> None:
    def open_(file, mode="r", *args, **kwargs):
        handle = _real_open(file, mode, *args, **kwargs)
        if isinstance(file, (str, bytes, os.PathLike)) and set(mode) & set("wax+") and due(file):
            _record("enospc", os.path.abspath(os.fspath(file)))
            return _FullDisk(handle)
        return handle

    builtins.open = io.open = open_


if os.environ.get("FAULT"):
    _kind, _n, _pattern = _parse(os.environ["FAULT"])
    (_install_kill if _kind == "kill" else _install_enospc)(_Countdown(_n, _pattern))
