"""Check and skip lines shared by the benchmark scripts.

Every check prints one line, "check passed: ..." or "check FAILED: ...", saying exactly what it
compared; a part a benchmark cannot run here prints "skipped: <part>: <why>". A script ends with
`Checks.exit_if_failed`, so a failed check makes it exit non-zero after its results are written.
"""

from __future__ import annotations


class Checks:
    """The checks of one run, printed as they are made."""

    def __init__(self):
        self.failed: list[str] = []

    def check(self, ok: bool, what: str) -> bool:
        print(f"check {'passed' if ok else 'FAILED'}: {what}", flush=True)
        if not ok:
            self.failed.append(what)
        return ok

    def exit_if_failed(self) -> None:
        if self.failed:
            raise SystemExit(f"{len(self.failed)} check(s) failed: " + "; ".join(self.failed))


def skipped(part: str, why: str) -> None:
    print(f"skipped: {part}: {why}", flush=True)
