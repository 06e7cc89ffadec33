import os

import pytest
import torch

from safety_landscape.directions import random_direction, save_direction
from safety_landscape.generate import DecodingSettings, Perturber, response_cache_key
from safety_landscape.points import Term, read_point, write_point


@pytest.fixture
def direction_file(tiny_model, tmp_path):
    model, _ = tiny_model
    tensors = random_direction(((n, p.detach()) for n, p in model.named_parameters()), 0, "layer", ["norm"])
    path = tmp_path / "d1.safetensors"
    return path, save_direction(path, tensors, {"seed": 0}), tensors


def test_factored_point_is_small_and_roundtrips(direction_file, tmp_path):
    path, digest, _ = direction_file
    write_point(tmp_path / "p.safetensors", [Term(str(path), digest, 0.25)], "m", "factored")
    assert os.path.getsize(tmp_path / "p.safetensors") < 4096
    terms, meta = read_point(tmp_path / "p.safetensors")
    assert terms == [Term(str(path), digest, 0.25)] and meta["form"] == "factored"


def test_dense_point_holds_the_scaled_direction(direction_file, tmp_path):
    from safetensors.torch import load_file

    path, digest, tensors = direction_file
    write_point(tmp_path / "p.safetensors", [Term(str(path), digest, -0.5)], "m", "dense")
    delta = load_file(tmp_path / "p.safetensors")
    name = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(delta[name], -0.5 * tensors[name])


def test_point_refuses_a_changed_direction(direction_file, tmp_path):
    path, _, _ = direction_file
    with pytest.raises(ValueError, match="rerun the directions rule"):
        write_point(tmp_path / "p.safetensors", [Term(str(path), "0" * 64, 0.1)], "m", "factored")


def test_perturbation_is_exact_and_restores_bit_for_bit(tiny_model, direction_file):
    model, _ = tiny_model
    _, _, d = direction_file
    name = "model.layers.1.mlp.up_proj.weight"
    param = dict(model.named_parameters())[name]
    w0 = param.detach().clone()
    perturber = Perturber(model)
    perturber.set([(d, 0.1)])
    perturber.set([(d, 0.3)])  # computed from W0, not from the previous point
    assert torch.equal(param, (w0 + 0.3 * d[name]).to(w0.dtype))
    perturber.set([(d, 0.0)])
    assert torch.equal(param, w0)
    assert torch.equal(dict(model.named_parameters())["model.norm.weight"], torch.ones_like(param[0]))


def test_cache_key_depends_on_what_changes_the_text():
    base = DecodingSettings(48, 40, None, True, True, "float32")
    terms = [Term("x", "abc", 0.1)]
    key = response_cache_key("m", terms, "p", base)
    assert key == response_cache_key("m", terms, "p", DecodingSettings(48, 8, None, True, True, "float32"))
    assert key != response_cache_key("m", terms, "p", DecodingSettings(64, 40, None, True, True, "float32"))
    assert key != response_cache_key("m", [Term("x", "abc", 0.2)], "p", base)
    # a = 0 along any direction is the unperturbed model
    assert response_cache_key("m", [Term("x", "abc", 0.0)], "p", base) == response_cache_key("m", [Term("y", "def", 0.0)], "p", base)
