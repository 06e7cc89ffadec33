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


def load_jsonl_records(path: str | os.PathLike, fields: tuple[str, ...]) -> list[dict]:
    """Records of a JSONL file (one object per line, blank lines skipped), each with non-empty string `fields`."""
    path = Path(path)
    wanted = ", ".join(fields)
    if not path.is_file():
        raise PromptFileError(f"{path} does not exist; give a JSONL file of {{{wanted}}} records")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise PromptFileError(f"{path}:{number} is not valid JSON ({err.msg})") from None
        if not isinstance(record, dict) or not all(isinstance(record.get(k), str) and record[k].strip() for k in fields):
            raise PromptFileError(f"{path}:{number} needs non-empty string fields {' and '.join(repr(k) for k in fields)}")
        records.append(record)
    if not records:
        raise PromptFileError(f"{path} holds no records")
    return records


def load_pairs(path: str | os.PathLike) -> list[dict]:
    """Training pairs from a JSONL file: one {"prompt": str, "response": str} object per line."""
    return [{"prompt": r["prompt"], "response": r["response"], "kind": r.get("kind", "custom")}
            for r in load_jsonl_records(path, ("prompt", "response"))]


def select_pairs(path: str | os.PathLike, prompt_column: str, response_column: str, start: int, count: int) -> tuple[list[str], list[str]]:
    """Rows [start, start+count) of two columns, e.g. AdvBench's (goal, target)."""
    prompts = select_prompts(path, prompt_column, start, count)
    return prompts, select_prompts(path, response_column, start, count)


def load_references(path: str | os.PathLike) -> list[dict]:
    """Benign prompts with reference answers: one {"prompt": str, "reference": str} object per line of a JSONL file."""
    return [{"prompt": r["prompt"], "reference": r["reference"]} for r in load_jsonl_records(path, ("prompt", "reference"))]


def load_multiple_choice(path: str | os.PathLike) -> pd.DataFrame:
    """Multiple-choice questions in MMLU format: a CSV with columns question, A, B[, C, ...], answer
    (the letter of the correct choice). Returns the table with a `choices` column (the letters used)."""
    path = Path(path)
    if not path.is_file():
        raise PromptFileError(f"{path} does not exist; give a CSV with columns question,A,B,C,D,answer")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise PromptFileError(f"{path} is not a well-formed CSV file ({err})") from None
    letters = [c for c in "ABCDEFGHIJ" if c in table.columns]
    missing = [c for c in ("question", "answer") if c not in table.columns]
    if missing or len(letters) < 2 or letters != list("ABCDEFGHIJ"[: len(letters)]):
        raise PromptFileError(f"{path}: columns {list(table.columns)}; need question, A, B[, C, ...] (consecutive letters) and answer")
    if table.empty:
        raise PromptFileError(f"{path} holds no questions")
    for i, row in table.iterrows():
        blank = [c for c in ["question", *letters] if not row[c].strip()]
        if blank:
            raise PromptFileError(f"{path}: row {i + 1} has empty {blank}; fill them or remove the row")
        if row["answer"].strip() not in letters:
            raise PromptFileError(f"{path}: row {i + 1} has answer {row['answer']!r}; it must be one of {letters}")
    return table.assign(answer=table["answer"].str.strip(), choices="".join(letters))
