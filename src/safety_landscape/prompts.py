"""Prompt sets: load and validate the harmful prompts a landscape is evaluated on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from .io import sha256_json


class PromptFileError(ValueError):
    """A prompt file that cannot be used; the message names the key and the fix."""


def load_prompt_table(path: str | os.PathLike, column: str) -> pd.DataFrame:
    """Read a CSV or JSONL prompt file and check that `column` holds non-empty text."""
    path = Path(path)
    if not path.is_file():
        raise PromptFileError(f"prompts.file: {path} does not exist; point it at a CSV or JSONL file")
    try:
        table = pd.read_json(path, lines=True) if path.suffix == ".jsonl" else pd.read_csv(path)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise PromptFileError(f"prompts.file: {path} is not a well-formed {path.suffix or 'CSV'} file ({err})") from None
    if column not in table.columns:
        raise PromptFileError(f"prompts.column: {path} has no column {column!r} (columns: {list(table.columns)})")
    if table.empty:
        raise PromptFileError(f"prompts.file: {path} holds no prompts")
    text = table[column]
    bad = [int(i) for i in table.index[text.isna() | (text.astype(str).str.strip() == "")]]
    if bad:
        raise PromptFileError(f"prompts.file: {path} has empty {column!r} values in rows {bad[:10]}; fill or remove them")
    return table


def select_prompts(path: str | os.PathLike, column: str, start: int, count: int | None) -> list[str]:
    """Rows [start, start+count) of the prompt column (count None = to the end)."""
    table = load_prompt_table(path, column)
    stop = len(table) if count is None else start + count
    if stop > len(table):
        raise PromptFileError(f"prompts.count: asked for rows {start}..{stop - 1} but {path} has {len(table)} rows")
    return table[column].astype(str).tolist()[start:stop]


def prompts_digest(prompts: list[str]) -> str:
    return sha256_json(prompts)


def load_pairs(path: str | os.PathLike) -> list[dict]:
    """Training pairs from a JSONL file: one {"prompt": str, "response": str} object per line."""
    path = Path(path)
    if not path.is_file():
        raise PromptFileError(f"{path} does not exist; point file at a JSONL of {{prompt, response}} records")
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise PromptFileError(f"{path}:{number} is not valid JSON ({err.msg})") from None
        if not isinstance(record, dict) or not all(isinstance(record.get(k), str) and record[k].strip() for k in ("prompt", "response")):
            raise PromptFileError(f"{path}:{number} needs non-empty string fields 'prompt' and 'response'")
        pairs.append({"prompt": record["prompt"], "response": record["response"], "kind": record.get("kind", "custom")})
    if not pairs:
        raise PromptFileError(f"{path} holds no pairs")
    return pairs


def select_pairs(path: str | os.PathLike, prompt_column: str, response_column: str, start: int, count: int) -> tuple[list[str], list[str]]:
    """Rows [start, start+count) of two columns, e.g. AdvBench's (goal, target)."""
    prompts = select_prompts(path, prompt_column, start, count)
    return prompts, select_prompts(path, response_column, start, count)
