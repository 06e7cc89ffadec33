"""generation.engine "package.module:ClassName": a user engine class, checked before any work and opened
like the built-in engines; the scripted test engine reads its point back from the weights."""

import pandas as pd
import pytest
import torch

from conftest import ADVBENCH, REPO
from safety_landscape.decoding import render_prompts
from safety_landscape.directions import CheckpointReader, Direction, random_source, write_direction
from safety_landscape.engines import EngineOptions, open_engine
from safety_landscape.points import Term
from safety_landscape.validation import ConfigError, check_config
from scripted_engine import COMPLIANCE, REFUSAL, ScriptedEngine
from test_config import default_config


def config_with_engine(engine: str) -> dict:
    config = default_config()
    config["generation"]["engine"] = engine
    return config


def test_a_user_engine_class_passes_the_check():
    check_config(config_with_engine("scripted_engine:ScriptedEngine"), REPO)


@pytest.mark.parametrize(
    ("engine", "message"),
    [
        ("no_such_package.engines:Engine", r"cannot import module 'no_such_package.engines' .*add its folder to PYTHONPATH"),
        ("scripted_engine:NoSuchEngine", r"module scripted_engine has no class 'NoSuchEngine'; fix the name after ':'"),
        ("safety_landscape.decoding:Generation", r"Generation lacks set_point, generate; an engine is constructed with"),
    ],
)
def test_an_unusable_user_engine_fails_before_any_work(engine, message):
    with pytest.raises(ConfigError, match=message):
        check_config(config_with_engine(engine), REPO)


def test_the_schema_takes_only_builtin_names_and_import_paths():
    from snakemake.utils import validate

    for engine in ("hf", "vllm", "my_pkg.engines:FastEngine"):
        validate(config_with_engine(engine), str(REPO / "config" / "schema.yaml"))
    with pytest.raises(Exception, match="is not valid under any of the given schemas"):
        validate(config_with_engine("my_pkg.engines.FastEngine"), str(REPO / "config" / "schema.yaml"))


@pytest.fixture(scope="module")
def seeded_directions(tiny_model_dir, tmp_path_factory) -> list[Direction]:
    out = tmp_path_factory.mktemp("directions")
    reader = CheckpointReader(tiny_model_dir)
    for name, seed in (("d1", 0), ("d2", 1)):
        metadata = {"name": name, "seed": seed}
        write_direction(out / name, reader, random_source(seed, "layer"), ["norm"], torch.float32, 1 << 20, metadata)
    return [Direction(out / name) for name in ("d1", "d2")]


def test_scripted_engine_answers_from_the_point_its_weights_are_at(tiny_model_dir, seeded_directions):
    engine = open_engine("scripted_engine:ScriptedEngine", EngineOptions(str(tiny_model_dir), "float32", "cpu"))
    assert isinstance(engine, ScriptedEngine)
    prompts = pd.read_csv(ADVBENCH)["goal"].tolist()[:4]
    prompt_ids = render_prompts(engine.tokenizer, prompts, None, True)

    def answers_at(x: float, y: float) -> list[str]:
        engine.set_point([Term(str(d.folder), d.digest, c) for d, c in zip(seeded_directions, (x, y))])
        point = engine.coordinates()
        assert (point["x"], point["y"]) == (pytest.approx(x, abs=1e-6), pytest.approx(y, abs=1e-6))
        return [g.text for g in engine.generate(prompt_ids, 32, 4, True)]

    # (0.1, 0.1) lies in the boxes of p0 and p1 only; (0, 0) in every prompt's; (-0.4, 0) in p3's island only
    assert answers_at(0.1, 0.1) == [REFUSAL, REFUSAL, COMPLIANCE, COMPLIANCE]
    assert answers_at(0.0, 0.0) == [REFUSAL] * 4
    assert answers_at(-0.4, 0.0) == [COMPLIANCE, COMPLIANCE, COMPLIANCE, REFUSAL]
