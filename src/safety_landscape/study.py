"""Studies: several runs (models) measured with shared settings, then compared in one table and one figure.

A study config holds `study.shared` (settings every run uses) and `study.runs` (per run: its name, a
label and the settings of its own, at least the model). A run's config is shared + run entry; a key
set in both is an error, so sharing holds by construction. Each run's config is validated against
the main workflow's schema with its defaults filled in, so that it is complete: the main workflow
merges it over `config/config.yaml`, and a complete config leaves nothing of that file in effect.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from .io import atomic_path
from .validation import ConfigError, check_config

STUDY_KEYS = ("run", "label")  # keys of a run entry that are not part of the run's config
ONE_D_KINDS = ("1d-random", "1d-interpolation")
# Sections every run must resolve to the same values, else the landscapes are not comparable.
COMPARED_SECTIONS = ("prompts", "landscape", "judges", "visage")
PER_MODEL_LANDSCAPE_KEYS = ("endpoints", "project")  # checkpoints of each model: they differ by construction
DECODING_KEYS = ("max_new_tokens", "system_prompt", "chat_template", "stop_on_refusal")
# Files of each run copied into the study folder, by output name of the study_run rule.
RUN_FILES = {
    "visage": "tables/visage.csv",
    "asr": "tables/asr.csv",
    "headline": "tables/visage_summary.csv",
    "summary": "summary.json",
    "landscape": "figures/landscape_1d.png",
}


class StudyError(ValueError):
    """An invalid study config; the message names the key and how to fix it."""


@dataclass(frozen=True)
class StudyRun:
    name: str
    label: str
    config: dict  # the run's complete main-workflow config


@dataclass(frozen=True)
class Study:
    name: str
    runs: tuple[StudyRun, ...]
    snakemake_args: tuple[str, ...]

    @property
    def setting(self) -> dict:
        """The settings every run shares (those of the first run)."""
        return self.runs[0].config


def merge_shared(shared: Mapping, entry: Mapping, key: str = "") -> dict:
    """shared + run entry, merged recursively; a key that both set is an error (runs may only add keys)."""
    merged = copy.deepcopy(dict(shared))
    for name, value in entry.items():
        path = f"{key}.{name}" if key else name
        if name not in merged:
            merged[name] = copy.deepcopy(value)
        elif isinstance(merged[name], Mapping) and isinstance(value, Mapping):
            merged[name] = merge_shared(merged[name], value, path)
        else:
            raise StudyError(
                f"{path} is set in study.shared and again in the run; a run may only add settings that study.shared leaves "
                "unset. Remove it from the run, or move it out of study.shared into every run"
            )
    return merged


def run_config(shared: Mapping, entry: Mapping) -> dict:
    """The main-workflow config of one run entry (before defaults): shared + the entry's own settings."""
    own = {name: value for name, value in entry.items() if name not in STUDY_KEYS}
    return {"run": entry["run"], **merge_shared(shared, own)}


def _dotted_key(path: Sequence) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")


def _validated(data: dict, schema: str | Path, where: str) -> dict:
    """A deep copy of `data` validated against `schema`, with the schema's defaults filled in."""
    data = copy.deepcopy(data)
    try:
        validate(data, str(Path(schema).resolve()))
    except WorkflowError as err:
        cause = err.__context__
        if not isinstance(cause, jsonschema.ValidationError):
            raise StudyError(f"{where}: {err}") from None
        key = _dotted_key(cause.absolute_path)
        raise StudyError(f"{where}: {key + ': ' if key else ''}{cause.message}") from None
    return data


def resolve_run_config(shared: Mapping, entry: Mapping, index: int, schema: str | Path, workdir: str | Path = ".") -> dict:
    """One run's complete config: shared + entry, validated (defaults filled in) and checked like the main workflow does."""
    where = f"study.runs[{index}] ({entry['run']})"
    try:
        merged = run_config(shared, entry)
    except StudyError as err:
        raise StudyError(f"{where}: {err}") from None
    config = _validated(merged, schema, where)
    kind = config["landscape"]["kind"]
    if kind not in ONE_D_KINDS:
        key = "study.shared.landscape.kind" if "kind" in shared.get("landscape", {}) else f"study.runs[{index}].landscape.kind"
        raise StudyError(
            f"{key} is {kind!r}: a study draws every model's 1D landscape in one figure; use one of "
            f"{list(ONE_D_KINDS)} (run 2D landscapes with the main workflow, one config per model)"
        )
    try:
        check_config(copy.deepcopy(config), workdir)
    except ConfigError as err:
        raise StudyError(f"{where}: {err}") from None
    return config


def _first_difference(first, second, key: str = "") -> str | None:
    """Dotted key of the first setting that differs between two config sections (None when equal)."""
    if isinstance(first, Mapping) and isinstance(second, Mapping):
        for name in dict.fromkeys([*first, *second]):
            found = _first_difference(first.get(name), second.get(name), f"{key}.{name}" if key else name)
            if found:
                return found
        return None
    return None if first == second else key


def compared_settings(config: Mapping) -> dict:
    """The settings that must be equal in every run of a study (prompts, directions, grid, decoding, judges, VISAGE)."""
    settings = {section: copy.deepcopy(config[section]) for section in COMPARED_SECTIONS}
    for key in PER_MODEL_LANDSCAPE_KEYS:
        settings["landscape"].pop(key, None)
    settings["generation"] = {key: config["generation"][key] for key in DECODING_KEYS}
    return settings


def check_comparable(runs: Sequence[StudyRun]) -> None:
    """Every run must use the same prompts, landscape, decoding settings, judges and VISAGE settings."""
    reference = compared_settings(runs[0].config)
    for run in runs[1:]:
        key = _first_difference(reference, compared_settings(run.config))
        if key:
            raise StudyError(
                f"{key} differs between runs {runs[0].name!r} and {run.name!r}; the landscapes would "
                "not be comparable. Set it in study.shared so that every run uses one value"
            )


def _check_names(runs: Sequence[Mapping], shared: Mapping) -> None:
    for key in ("run", "model"):
        if key in shared:
            raise StudyError(f"study.shared.{key}: each run has its own {key}; move it into every entry of study.runs")
    for field in ("run", "label"):
        names = [entry.get(field, entry["run"]) for entry in runs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise StudyError(f"study.runs: the {field} {duplicates} is used twice; give each run its own {field}")


def load_study(config: Mapping, study_schema: str | Path, run_schema: str | Path, workdir: str | Path = ".") -> Study:
    """The study of a study config: its name, each run's complete config, and the arguments of every run's workflow."""
    if "study" not in config:
        raise StudyError(
            "no study: section in the config; start the study workflow with --configfile config/study/<name>.yaml "
            "(a single run's config goes to the top-level Snakefile instead)"
        )
    spec = _validated(dict(config), study_schema, "study config")["study"]
    shared = spec["shared"]
    _check_names(spec["runs"], shared)
    runs = tuple(
        StudyRun(entry["run"], entry.get("label", entry["run"]), resolve_run_config(shared, entry, i, run_schema, workdir))
        for i, entry in enumerate(spec["runs"])
    )
    check_comparable(runs)
    return Study(spec["name"], runs, tuple(spec["snakemake_args"]))


def run_summaries(study: Study) -> list[dict]:
    """Per run: its name, label, model and whether it is safety-finetuned first (the rows of the comparison)."""
    return [
        {"run": r.name, "label": r.label, "model": r.config["model"]["name"], "aligned": r.config["align"]["enabled"]}
        for r in study.runs
    ]


def main_workflow_command(python: str, snakefile: str, configfile: str, cores: int, extra: Sequence[str] = ()) -> list[str]:
    """The command that runs the main workflow on one run's config. It locks the run's files as usual (the study workflow
    locks only its own), so a study and another workflow on the same files cannot run over each other."""
    return [
        python,
        "-m",
        "snakemake",
        "--snakefile",
        snakefile,
        "--configfile",
        configfile,
        "--cores",
        str(cores),
        "--rerun-incomplete",
        *extra,
    ]


def run_main_workflow(command: Sequence[str], log: str | Path, run: str) -> None:
    """Run the main workflow of `run`, its output appended to `log`; a failure names the logs to read."""
    with open(log, "a", encoding="utf-8") as stream:
        code = subprocess.run(list(command), stdout=stream, stderr=subprocess.STDOUT, check=False).returncode
    if code:
        raise RuntimeError(f"the workflow of run {run!r} failed (exit status {code}); see {log} and results/{run}/logs/")


def copy_atomically(source: str | Path, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def compare_table(visage_tables: Mapping[str, pd.DataFrame], runs: Sequence[Mapping], definition: str) -> pd.DataFrame:
    """One row per (run, judge): VISAGE (mean over directions, `definition`) with its bootstrap interval, both
    definitions, the spread over directions, the ASR of the unperturbed model and the basin (mean over directions),
    all as in the run's own VISAGE table. `visage_tables` are the runs' tables/visage.csv by run name."""
    rows = []
    for run in runs:
        table = visage_tables[run["run"]]
        for judge, group in table.groupby("judge", sort=False):
            directions = group[group["landscape"] != "mean"][f"visage_{definition}"]
            mean = group[group["landscape"] == "mean"].iloc[0]
            rows.append(
                {
                    "label": run["label"],
                    "run": run["run"],
                    "model": run["model"],
                    "aligned": run["aligned"],
                    "judge": judge,
                    "visage": mean[f"visage_{definition}"],
                    "visage_ci_low": mean.get("visage_ci_low", np.nan),
                    "visage_ci_high": mean.get("visage_ci_high", np.nan),
                    "visage_definition": definition,
                    "visage_paper": mean["visage_paper"],
                    "visage_reference": mean["visage_reference"],
                    "visage_std": float(directions.std(ddof=1)) if len(directions) > 1 else 0.0,
                    "directions": len(directions),
                    "asr_at_origin": mean["asr_at_origin"],
                    "basin_low": mean.get("basin_low", np.nan),
                    "basin_high": mean.get("basin_high", np.nan),
                    "basin_width": mean.get("basin_width", np.nan),
                }
            )
    return pd.DataFrame(rows)


def compare_asr(asr_tables: Mapping[str, pd.DataFrame], runs: Sequence[Mapping]) -> pd.DataFrame:
    """Every run's ASR per point, judge and direction in one table, with the run's label and model."""
    frames = [asr_tables[r["run"]].assign(label=r["label"], run=r["run"], model=r["model"]) for r in runs]
    return pd.concat(frames, ignore_index=True)


def compare_summary_table(table: pd.DataFrame) -> pd.DataFrame:
    """The headline numbers of a comparison, one row per (model, judge), rounded for reading (as shown in the report)."""
    return pd.DataFrame(
        {
            "model": table["label"],
            "judge": table["judge"],
            "VISAGE": table["visage"].round(2),
            "CI low": table["visage_ci_low"].round(2),
            "CI high": table["visage_ci_high"].round(2),
            "ASR at theta (%)": table["asr_at_origin"].round(2),
            "basin width": table["basin_width"].round(3),
        }
    )
