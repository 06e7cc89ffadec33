"""Agreement of the text judges with human labels: XSTest's labelled answers of five models.

Every judge that needs no model (`keyword`, the paper's; `refusal`, refusal_judge.py) judges every
labelled answer in data/judge_validation/xstest/ through `judges.open_judge`, as the workflow does.
The positive class is *complied* (jailbroken): precision is the share of the answers a judge calls
jailbroken that people labelled full compliance, recall the share of those it calls jailbroken. A
partial refusal counts as refused; `agreement_no_partial` leaves those answers out.

Split: the refusal judge's rules were written looking at the development models only (llama2orig,
mistralguard); the held-out models (gpt4, llama2new, mistralinstruct) were judged once, after the
rules were fixed. GPT-4 is a model the rules never saw; llama2new and mistralinstruct are the
development models' weights without their system prompts.

Checks: every judge judged every answer once, and the keyword judge's verdicts are those of
`refusals.keyword_jailbroken`.

    PYTHONPATH=src python bench/bench_judge_agreement.py --out docs/data/judge_agreement.json --docs docs/judges.md

--docs rewrites the tables between the markers in that file. --smoke judges every 22nd answer of each
model (seconds).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

from checks import Checks
from safety_landscape.io import write_json, write_text
from safety_landscape.judges import open_judge
from safety_landscape.refusals import keyword_jailbroken

REPO = Path(__file__).resolve().parents[1]
JUDGES = ("keyword", "refusal")
SPLIT = {"dev": ("llama2orig", "mistralguard"), "held-out": ("gpt4", "llama2new", "mistralinstruct")}
LABELS = {"1_full_compliance": "complied", "2_full_refusal": "refused", "3_partial_refusal": "refused"}
SMOKE_EVERY = 22  # --smoke: every 22nd answer, 21 per model, from every prompt type
BEGIN, END = "<!-- begin tables: bench/bench_judge_agreement.py -->", "<!-- end tables -->"


def load_answers(folder: Path, every: int = 1) -> pd.DataFrame:
    """Every `every`-th labelled answer of each model: model, split, prompt, answer, human label,
    complied (bool), partial refusal (bool), unsafe prompt (bool)."""
    frames = []
    for split, models in SPLIT.items():
        for model in models:
            table = pd.read_csv(folder / f"xstest_v2_completions_{model}.csv", keep_default_na=False).iloc[::every]
            unknown = set(table["final_label"]) - set(LABELS)
            if unknown:
                raise ValueError(f"{folder}: labels {sorted(unknown)} of {model} have no mapping; add them to LABELS")
            frames.append(
                pd.DataFrame(
                    {
                        "model": model,
                        "split": split,
                        "prompt": table["prompt"],
                        "answer": table["completion"],
                        "label": table["final_label"],
                        "complied": table["final_label"].map(LABELS) == "complied",
                        "partial": table["final_label"] == "3_partial_refusal",
                        "unsafe": table["type"].str.startswith("contrast_"),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def verdicts(answers: pd.DataFrame, judge: str) -> pd.Series:
    """The judge's jailbroken verdicts, through the workflow's judge."""
    spec = {"name": judge, "id": judge}
    found = open_judge(spec).judge(list(zip(answers["prompt"], answers["answer"])))
    return pd.Series([v.jailbroken for v in found], index=answers.index, dtype=bool)


def agreement(complied: pd.Series, jailbroken: pd.Series) -> dict:
    """Agreement, precision and recall of the positive class complied (jailbroken), with the counts."""
    tp, fp = int((jailbroken & complied).sum()), int((jailbroken & ~complied).sum())
    fn, tn = int((~jailbroken & complied).sum()), int((~jailbroken & ~complied).sum())
    return {
        "n": len(complied),
        "agreement": (tp + tn) / len(complied) if len(complied) else None,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def rows_by(answers: pd.DataFrame, judged: dict[str, pd.Series], key: str, groups: dict[str, pd.Series]) -> list[dict]:
    """A row per judge and group (`key` value -> boolean mask of the answers), with the agreement
    without partial refusals."""
    rows = []
    for judge, jailbroken in judged.items():
        for value, mask in groups.items():
            full = mask & ~answers["partial"]
            rows.append(
                {"judge": judge, key: value}
                | agreement(answers["complied"][mask], jailbroken[mask])
                | {"agreement_no_partial": agreement(answers["complied"][full], jailbroken[full])["agreement"]}
            )
    return rows


def tables(answers: pd.DataFrame, judged: dict[str, pd.Series]) -> dict:
    """Rows by split (and all answers), by model, and by prompt set (unsafe or safe prompts; held-out and all answers)."""
    held_out, everything = answers["split"] == "held-out", pd.Series(True, index=answers.index)
    splits = {split: answers["split"] == split for split in SPLIT} | {"all": everything}
    models = {model: answers["model"] == model for models in SPLIT.values() for model in models}
    prompt_sets = {
        f"{split}, {kind}": mask & (answers["unsafe"] == (kind == "unsafe"))
        for split, mask in (("held-out", held_out), ("all", everything))
        for kind in ("unsafe", "safe")
    }
    return {
        "overall": rows_by(answers, judged, "split", splits),
        "per_model": rows_by(answers, judged, "model", models),
        "per_prompt_set": rows_by(answers, judged, "set", prompt_sets),
    }


def markdown_table(rows: list[dict], key: str) -> str:
    """A Markdown table: judge, the grouping `key`, n, agreement, precision, recall (%), agreement without partial refusals."""
    lines = [
        f"| judge | {key} | n | agreement % | precision % | recall % | agreement without partial refusals % |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r[key], r["judge"])):
        values = (r["agreement"], r["precision"], r["recall"], r["agreement_no_partial"])
        cells = " | ".join("-" if v is None else f"{100 * v:.1f}" for v in values)
        lines.append(f"| `{r['judge']}` | {r[key]} | {r['n']} | {cells} |")
    return "\n".join(lines)


def write_docs(path: Path, results: dict) -> None:
    """Replace the tables between the markers of `path` with the results."""
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path}: no {BEGIN} ... {END} block to write the tables into")
    block = "\n\n".join(
        [
            "Overall, by split (dev: llama2orig, mistralguard; held-out: gpt4, llama2new, mistralinstruct):",
            markdown_table(results["overall"], "split"),
            "Per model (all its 450 answers):",
            markdown_table(results["per_model"], "model"),
            "Per prompt set (unsafe: XSTest's `contrast_` prompts, which should be refused; safe: the others):",
            markdown_table(results["per_prompt_set"], "set"),
        ]
    )
    write_text(path, re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: f"{BEGIN}\n{block}\n{END}", text, flags=re.S))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "judge_validation" / "xstest")
    parser.add_argument("--out", type=Path, required=True, help="results JSON")
    parser.add_argument("--docs", type=Path, help="Markdown file whose marked tables block to rewrite")
    parser.add_argument("--smoke", action="store_true", help=f"every {SMOKE_EVERY}th answer of each model")
    args = parser.parse_args()
    checks = Checks()
    answers = load_answers(args.data, SMOKE_EVERY if args.smoke else 1)
    judged = {judge: verdicts(answers, judge) for judge in JUDGES}
    checks.check(
        all(len(v) == len(answers) for v in judged.values()),
        f"{len(JUDGES)} judges judged each of the {len(answers)} answers once",
    )
    paper = answers["answer"].map(keyword_jailbroken).astype(bool)
    checks.check(judged["keyword"].equals(paper), "keyword judge: the verdicts of refusals.keyword_jailbroken on every answer")
    results = {
        "source": "XSTest v2 model completions with human labels (data/judge_validation/xstest)",
        "positive_class": "complied (jailbroken)",
        "label_mapping": LABELS,
        "split": SPLIT,
        "smoke": args.smoke,
        **tables(answers, judged),
    }
    write_json(args.out, results)
    for row in results["overall"]:
        print(f"{row['judge']:8s} {row['split']:8s} n {row['n']:5d}  agreement {100 * row['agreement']:.1f} %", flush=True)
    if args.docs:
        write_docs(args.docs, results)
    checks.exit_if_failed()


if __name__ == "__main__":
    main()
