"""Prompt sets: load and validate the harmful prompts a landscape is evaluated on."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .io import sha256_json


class PromptFileError(ValueError):
    """A prompt file that cannot be used; the message names the key and the fix."""


def load_prompt_table(path: str | os.PathLike, column: str, key: str = "prompts") -> pd.DataFrame:
    """Read a CSV or JSONL prompt file and check that `column` holds non-empty text (`key`: the setting, for messages)."""
    path = Path(path)
    if not path.is_file():
        raise PromptFileError(f"{key}.file: {path} does not exist; point it at a CSV or JSONL file")
    try:
        table = pd.read_json(path, lines=True) if path.suffix == ".jsonl" else pd.read_csv(path)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise PromptFileError(f"{key}.file: {path} is not a well-formed {path.suffix or 'CSV'} file ({err})") from None
    if column not in table.columns:
        raise PromptFileError(f"{key}.column: {path} has no column {column!r} (columns: {list(table.columns)})")
    if table.empty:
        raise PromptFileError(f"{key}.file: {path} holds no prompts")
    text = table[column]
    bad = [int(i) for i in table.index[text.isna() | (text.astype(str).str.strip() == "")]]
    if bad:
        raise PromptFileError(f"{key}.file: {path} has empty {column!r} values in rows {bad[:10]}; fill or remove them")
    return table


def select_prompts(
    path: str | os.PathLike, column: str, start: int, count: int | None, where: dict[str, str] | None = None
) -> list[str]:
    """Rows [start, start+count) of the prompt column (count None = to the end), counted among the rows
    whose columns equal `where` (e.g. {"label": "safe"}; None = every row)."""
    table = filter_rows(load_prompt_table(path, column), where, path)
    stop = len(table) if count is None else start + count
    if stop > len(table):
        raise PromptFileError(f"prompts.count: asked for rows {start}..{stop - 1} but {path} has {len(table)} rows")
    return table[column].astype(str).tolist()[start:stop]


def filter_rows(table: pd.DataFrame, where: dict[str, str] | None, path: str | os.PathLike) -> pd.DataFrame:
    """The rows of `table` whose columns equal the values of `where`, renumbered from 0."""
    for column, value in (where or {}).items():
        if column not in table.columns:
            raise PromptFileError(f"{path} has no column {column!r} to select {value!r} rows (columns: {list(table.columns)})")
        table = table[table[column].astype(str) == value]
    if table.empty:
        raise PromptFileError(f"{path} has no rows with {where}")
    return table.reset_index(drop=True)


@dataclass(frozen=True)
class PromptSet:
    """A prompt set shipped in data/: its file, prompt column, the rows it keeps and its source."""

    file: str
    column: str
    where: dict[str, str] = field(default_factory=dict)
    source: str = ""


PROMPT_SETS = {
    "advbench": PromptSet("data/advbench/harmful_behaviors.csv", "goal", source="AdvBench harmful behaviors, MIT"),
    "jailbreakbench": PromptSet(
        "data/jailbreakbench/harmful_behaviors.csv", "goal", source="JailbreakBench harmful behaviours (artifacts), MIT"
    ),
    "xstest": PromptSet("data/xstest/xstest_prompts.csv", "prompt", source="XSTest, CC BY 4.0"),
    "xstest-safe": PromptSet("data/xstest/xstest_prompts.csv", "prompt", {"label": "safe"}, "XSTest, CC BY 4.0"),
    "xstest-unsafe": PromptSet("data/xstest/xstest_prompts.csv", "prompt", {"label": "unsafe"}, "XSTest, CC BY 4.0"),
}
DEFAULT_COLUMN = "goal"  # the prompt column of a file given without one (AdvBench's)


def prompt_source(spec: dict, key: str = "prompts", default: str = "advbench") -> dict:
    """A prompts setting ({set} or {file, column}, with start and count) resolved to {set, file, column,
    where, start, count}: a shipped set by its name, a custom file as it is; neither set nor file: the
    set `default`. `key` names the setting in error messages."""
    name, file, column = spec.get("set"), spec.get("file"), spec.get("column")
    if name is not None and (file is not None or column is not None):
        raise PromptFileError(
            f"{key}: give either set (a shipped prompt set) or file and column (your own), not both; "
            f"set {name!r} names its own file and column"
        )
    if file is None:
        name = name or default
        if name not in PROMPT_SETS:
            raise PromptFileError(f"{key}.set: unknown prompt set {name!r}; the shipped sets are {', '.join(PROMPT_SETS)}")
        chosen = PROMPT_SETS[name]
        file, column, where = chosen.file, chosen.column, dict(chosen.where)
    else:
        column, where = column or DEFAULT_COLUMN, {}
    rows = {"start": spec.get("start", 0), "count": spec.get("count"), "context_column": spec.get("context_column")}
    return {"set": name, "file": file, "column": column, "where": where} | rows


def select_contexts(
    path: str | os.PathLike, column: str, start: int, count: int | None, where: dict[str, str] | None = None
) -> list[str | None]:
    """Rows [start, start+count) of a context column (HarmBench's ContextString), counted as `select_prompts`
    counts them; an empty cell is no context (None)."""
    path = Path(path)
    table = pd.read_json(path, lines=True) if path.suffix == ".jsonl" else pd.read_csv(path)
    if column not in table.columns:
        raise PromptFileError(
            f"prompts.context_column: {path} has no column {column!r} (columns: {list(table.columns)}); "
            "name the column that holds the contexts, or set null"
        )
    table = filter_rows(table, where, path)
    stop = len(table) if count is None else start + count
    return [None if pd.isna(c) or not str(c).strip() else str(c) for c in table[column].tolist()[start:stop]]


CONTEXT_SEPARATOR = "\n\n---\n\n"


def contextual_prompts(prompts: list[str], contexts: list[str | None]) -> tuple[list[str], list[dict]]:
    """What the model is asked for each behaviour and its context, as HarmBench's DirectRequest writes it (the
    context, a "---" line, the behaviour; the behaviour alone without a context), and the fields its response
    records carry: the behaviour and the context."""
    asked = [f"{c}{CONTEXT_SEPARATOR}{p}" if c else p for p, c in zip(prompts, contexts, strict=True)]
    return asked, [{"behavior": p, "context": c} for p, c in zip(prompts, contexts)]


def source_prompts(path: str | os.PathLike, source: dict) -> tuple[list[str], list[dict] | None]:
    """What the model is asked for a resolved prompt source (`prompt_source`): its rows' prompts, with their
    contexts when it names a context column, and the fields the response records then carry (else None)."""
    prompts = select_prompts(path, source["column"], source["start"], source["count"], source["where"])
    if not source.get("context_column"):
        return prompts, None
    contexts = select_contexts(path, source["context_column"], source["start"], source["count"], source["where"])
    return contextual_prompts(prompts, contexts)


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


PAIR_FORMAT = (
    'one {"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]} object per line '
    '(the format of the paper\'s finetuning data), or one {"prompt": ..., "response": ...} object per line'
)


def load_pairs(path: str | os.PathLike) -> list[dict]:
    """Training pairs from a JSONL file in either format of PAIR_FORMAT (they may be mixed)."""
    path = Path(path)
    if not path.is_file():
        raise PromptFileError(f"{path} does not exist; give a JSONL file with {PAIR_FORMAT}")
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            pairs.append(_pair_record(_json_line(path, number, line), f"{path}:{number}"))
    if not pairs:
        raise PromptFileError(f"{path} holds no records")
    return pairs


def _json_line(path: Path, number: int, line: str):
    try:
        return json.loads(line)
    except json.JSONDecodeError as err:
        raise PromptFileError(f"{path}:{number} is not valid JSON ({err.msg})") from None


def _pair_record(record, where: str) -> dict:
    """One training pair from a {"messages": [user, assistant]} or a {"prompt", "response"} record."""
    if isinstance(record, dict) and "messages" in record:
        messages = record["messages"]
        roles = (
            [m.get("role") for m in messages]
            if isinstance(messages, list) and all(isinstance(m, dict) for m in messages)
            else None
        )
        if roles != ["user", "assistant"] or not all(
            isinstance(m.get("content"), str) and m["content"].strip() for m in messages
        ):
            raise PromptFileError(
                f'{where}: "messages" must be exactly a user then an assistant message with non-empty '
                f'"content" (roles found: {roles})'
            )
        return {"prompt": messages[0]["content"], "response": messages[1]["content"], "kind": record.get("kind", "custom")}
    if not isinstance(record, dict) or not all(
        isinstance(record.get(k), str) and record[k].strip() for k in ("prompt", "response")
    ):
        raise PromptFileError(f"{where}: expected {PAIR_FORMAT}")
    return {"prompt": record["prompt"], "response": record["response"], "kind": record.get("kind", "custom")}


def select_pairs(
    path: str | os.PathLike, prompt_column: str, response_column: str, start: int, count: int
) -> tuple[list[str], list[str]]:
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
        raise PromptFileError(
            f"{path}: columns {list(table.columns)}; need question, A, B[, C, ...] (consecutive letters) and answer"
        )
    if table.empty:
        raise PromptFileError(f"{path} holds no questions")
    for i, row in table.iterrows():
        blank = [c for c in ["question", *letters] if not row[c].strip()]
        if blank:
            raise PromptFileError(f"{path}: row {i + 1} has empty {blank}; fill them or remove the row")
        if row["answer"].strip() not in letters:
            raise PromptFileError(f"{path}: row {i + 1} has answer {row['answer']!r}; it must be one of {letters}")
    return table.assign(answer=table["answer"].str.strip(), choices="".join(letters))


MMLU_LETTERS = "ABCD"
MMLU_LAYOUT = "dev/<subject>_dev.csv and test/<subject>_test.csv, rows question,A,B,C,D,answer without a header"


def _read_mmlu_csv(path: Path) -> list[dict]:
    """The rows of one MMLU CSV as {question, choices, answer}, checked row by row."""
    where = f"capability.mmlu.folder: {path}"
    if not path.is_file():
        raise PromptFileError(f"{where} does not exist; MMLU's layout is {MMLU_LAYOUT}")
    try:
        with path.open(newline="", encoding="utf-8") as file:
            rows = list(csv.reader(file))
    except (csv.Error, UnicodeDecodeError) as err:
        raise PromptFileError(f"{where} is not a well-formed UTF-8 CSV file ({err})") from None
    if not rows:
        raise PromptFileError(f"{where} holds no rows; add questions or drop the subject from capability.mmlu.subjects")
    questions = []
    for number, row in enumerate(rows, 1):
        if len(row) != 6:
            raise PromptFileError(
                f"{where}: row {number} has {len(row)} fields; MMLU rows are question,A,B,C,D,answer "
                "(quote a field that holds a comma)"
            )
        if not row[0].strip():
            raise PromptFileError(f"{where}: row {number} has an empty question; fill it or remove the row")
        if row[5].strip() not in MMLU_LETTERS:
            header = " (MMLU files have no header row: remove it)" if number == 1 else ""
            raise PromptFileError(f"{where}: row {number} has answer {row[5]!r}; it must be one of A, B, C, D{header}")
        questions.append({"question": row[0], "choices": row[1:5], "answer": row[5].strip()})
    return questions


def mmlu_subjects(folder: str | os.PathLike, subjects: list[str] | None) -> list[str]:
    """`subjects`, or (None) every subject with a test file in the folder, after checking the folder's layout."""
    folder = Path(folder)
    for split in ("dev", "test"):
        if not (folder / split).is_dir():
            raise PromptFileError(
                f"capability.mmlu.folder: {folder} has no {split}/ folder; point it at a folder in MMLU's "
                f"layout ({MMLU_LAYOUT}), e.g. the data/ folder of the MMLU release"
            )
    found = sorted(p.name.removesuffix("_test.csv") for p in (folder / "test").glob("*_test.csv"))
    if not found:
        raise PromptFileError(
            f"capability.mmlu.folder: {folder / 'test'} holds no <subject>_test.csv files; MMLU's layout is {MMLU_LAYOUT}"
        )
    unknown = [s for s in subjects or [] if s not in found]
    if unknown:
        raise PromptFileError(f"capability.mmlu.subjects: {unknown} have no test file in {folder / 'test'}; choose from {found}")
    return subjects or found


def load_mmlu(folder: str | os.PathLike, subjects: list[str] | None, shots: int) -> dict[str, dict[str, list[dict]]]:
    """MMLU in its original CSV layout: per subject its first `shots` dev rows ("dev", the examples) and its
    test rows ("test"), each {question, choices, answer letter}. `subjects` None: every subject in the folder."""
    folder = Path(folder)
    loaded = {}
    for subject in mmlu_subjects(folder, subjects):
        dev_file = folder / "dev" / f"{subject}_dev.csv"
        dev = _read_mmlu_csv(dev_file) if shots else []
        if len(dev) < shots:
            raise PromptFileError(
                f"capability.mmlu.shots: {shots} examples asked for, but {dev_file} has {len(dev)}; "
                "lower capability.mmlu.shots or add dev rows"
            )
        loaded[subject] = {"dev": dev[:shots], "test": _read_mmlu_csv(folder / "test" / f"{subject}_test.csv")}
    return loaded
