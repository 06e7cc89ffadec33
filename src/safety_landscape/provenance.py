"""Code digests: which package code produced a result.

A stage's digest covers the package version and the source of every package module its entry modules
import, directly or transitively (read with `ast`, nothing imported). Cache keys and the workflow's
rule parameters include it, so a changed module reruns exactly the stages that use it. Only the
standard library is imported here: the Snakefile calls this while it parses.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

from . import __version__

PACKAGE = "safety_landscape"
PACKAGE_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=None)  # keyed by the source text itself: every point's cache key asks again
def imported_modules(source: str) -> frozenset[str]:
    """Package modules a Python source imports (absolute or relative, at any depth of the code)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".")
            if node.level == 1 and node.module is None:  # from . import x
                found.update(alias.name for alias in node.names)
            elif node.level == 1:
                found.add(parts[0])
            elif parts[0] == PACKAGE and len(parts) > 1:
                found.add(parts[1])
            elif parts == [PACKAGE]:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith(PACKAGE + "."))
    return frozenset(name for name in found if (PACKAGE_DIR / f"{name}.py").is_file())


@lru_cache(maxsize=None)
def _module_source(name: str) -> str:
    return (PACKAGE_DIR / f"{name}.py").read_text(encoding="utf-8")


def module_closure(entries: tuple[str, ...], ignore: tuple[str, ...] = ()) -> list[str]:
    """`entries` and every package module they import, transitively, except `ignore` (whose imports
    are not followed either)."""
    seen: set[str] = set()
    todo = [name for name in entries if name not in ignore]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(m for m in imported_modules(_module_source(name)) if m not in ignore)
    return sorted(seen)


def code_digest(*entries: str, ignore: tuple[str, ...] = ()) -> str:
    """Digest of the package version and the sources of `module_closure(entries, ignore)`."""
    h = hashlib.sha256(f"{PACKAGE} {__version__}\n".encode())
    for name in module_closure(entries, ignore):
        h.update(f"\0{name}\0".encode() + _module_source(name).encode())
    return h.hexdigest()


def script_code_digest(script: str | Path, ignore: tuple[str, ...] = ()) -> str:
    """Digest of a workflow script's text and of the package code it imports (see `code_digest`)."""
    source = Path(script).read_text(encoding="utf-8")
    package = code_digest(*sorted(imported_modules(source)), ignore=ignore)
    return hashlib.sha256(f"{package}\0{source}".encode()).hexdigest()


def engine_code_digest(engine: str) -> str:
    """Digest of a custom engine's module source ("package.module:ClassName"); "" for built-in engines,
    whose code the package digest covers."""
    if ":" not in engine:
        return ""
    spec = importlib.util.find_spec(engine.partition(":")[0])
    if spec is None or spec.origin is None:
        raise ValueError(f"generation.engine {engine!r}: no such module; install its package or add its folder to PYTHONPATH")
    return hashlib.sha256(Path(spec.origin).read_bytes()).hexdigest()
