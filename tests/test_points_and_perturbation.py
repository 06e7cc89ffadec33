import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from safety_landscape.directions import CheckpointReader, Direction, random_source, write_direction
from safety_landscape.generate import DecodingSettings, response_cache_key
from safety_landscape.points import DirectionStore, Perturber, Term, export_checkpoint, read_point, write_point
from safety_landscape.projection import project_checkpoint

NAME = "model.layers.1.mlp.up_proj.weight"


@pytest.fixture(scope="module")
def directions(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("directions")
    reader = CheckpointReader(tiny_model_dir)
    for axis, seed in (("d1", 0), ("d2", 1)):
        write_direction(out / axis, reader, random_source(seed, "layer"), ["norm"], torch.float32, 1 << 20, {"name": axis})
    return Direction(out / "d1"), Direction(out / "d2")


def test_factored_point_is_small_and_roundtrips(directions, tmp_path):
    d1, d2 = directions
    terms = [Term(str(d1.folder), d1.digest, 0.25), Term(str(d2.folder), d2.digest, -0.1)]
    write_point(tmp_path / "p.safetensors", terms, "m", "factored")
    assert os.path.getsize(tmp_path / "p.safetensors") < 4096
    read, meta = read_point(tmp_path / "p.safetensors")
    assert read == terms and meta["form"] == "factored"


def test_dense_point_holds_the_combined_delta(directions, tmp_path):
    d1, d2 = directions
    write_point(
        tmp_path / "p.safetensors", [Term(str(d1.folder), d1.digest, -0.5), Term(str(d2.folder), d2.digest, 0.2)], "m", "dense"
    )
    delta = load_file(tmp_path / "p.safetensors")
    assert torch.equal(delta[NAME], (-0.5 * d1.get(NAME) + 0.2 * d2.get(NAME)))


def test_point_refuses_a_changed_direction(directions, tmp_path):
    d1, _ = directions
    with pytest.raises(ValueError, match="rerun the directions rule"):
        write_point(tmp_path / "p.safetensors", [Term(str(d1.folder), "0" * 64, 0.1)], "m", "factored")


@pytest.mark.parametrize("offload", ["none", "cpu", "disk"])
def test_perturbation_is_exact_and_restores_bit_for_bit(tiny_model, tiny_model_dir, directions, offload):
    model, _ = tiny_model
    d1, d2 = directions
    store = DirectionStore("cpu", offload)
    t1, t2 = store.get(Term(str(d1.folder), d1.digest, 0)), store.get(Term(str(d2.folder), d2.digest, 0))
    params = dict(model.named_parameters())
    w0 = {n: p.detach().clone() for n, p in params.items()}
    perturber = Perturber(model, offload, str(tiny_model_dir))
    perturber.set([(t1, 0.1), (t2, 0.2)])
    perturber.set([(t1, 0.3), (t2, -0.2)])  # computed from W0, not from the previous point
    expected = (w0[NAME].float() + 0.3 * d1.get(NAME).float() + (-0.2) * d2.get(NAME).float()).to(w0[NAME].dtype)
    assert torch.equal(params[NAME], expected)
    assert torch.equal(params["model.norm.weight"], w0["model.norm.weight"])  # excluded from the directions
    perturber.set([(t1, 0.0), (t2, 0.0)])
    assert all(torch.equal(params[n], w0[n]) for n in params)


def test_projection_recovers_the_coefficients_of_a_synthetic_checkpoint(tiny_model_dir, directions, tmp_path):
    d1, d2 = directions
    theta = CheckpointReader(tiny_model_dir)
    shifted = {}
    for name, w in theta:
        if name in d1.location:
            w = w.double() + 0.3 * d1.get(name).double() - 0.2 * d2.get(name).double()
        shifted[name] = w.float().contiguous()
    (tmp_path / "ckpt").mkdir()
    save_file(shifted, str(tmp_path / "ckpt" / "model.safetensors"))
    result = project_checkpoint(theta, CheckpointReader(tmp_path / "ckpt"), [d1, d2])
    assert result["coordinates"] == pytest.approx([0.3, -0.2], abs=1e-5)
    assert result["relative_residual"] < 1e-3
    # off the plane: add noise to one tensor, the coordinates stay and the residual is its norm
    noise = torch.randn_like(shifted[NAME]) * 0.01
    shifted[NAME] = shifted[NAME] + noise
    save_file(shifted, str(tmp_path / "ckpt" / "model.safetensors"))
    off = project_checkpoint(theta, CheckpointReader(tmp_path / "ckpt"), [d1, d2])
    assert off["coordinates"] == pytest.approx([0.3, -0.2], abs=1e-3)
    assert off["residual_norm"] == pytest.approx(float(noise.norm()), rel=0.05)


def test_export_checkpoint_loads_with_transformers(tiny_model_dir, directions, tmp_path):
    from transformers import AutoModelForCausalLM

    d1, _ = directions
    export_checkpoint(str(tiny_model_dir), [Term(str(d1.folder), d1.digest, 0.1)], tmp_path / "model")
    exported = dict(AutoModelForCausalLM.from_pretrained(tmp_path / "model").named_parameters())
    base = CheckpointReader(tiny_model_dir).get(NAME)
    assert torch.equal(exported[NAME].detach(), (base.float() + 0.1 * d1.get(NAME).float()))
    assert (tmp_path / "model" / "tokenizer.json").is_file()


def test_cache_key_depends_on_what_changes_the_text():
    base = DecodingSettings(48, 40, None, True, True, "float32")
    terms = [Term("x", "abc", 0.1)]
    key = response_cache_key("m", terms, "p", base)
    assert key == response_cache_key("m", terms, "p", DecodingSettings(48, 8, None, True, True, "float32"))
    assert key != response_cache_key("m", terms, "p", DecodingSettings(64, 40, None, True, True, "float32"))
    assert key != response_cache_key("m", [Term("x", "abc", 0.2)], "p", base)
    # a = 0 along any direction is the unperturbed model
    assert response_cache_key("m", [Term("x", "abc", 0.0)], "p", base) == response_cache_key(
        "m", [Term("y", "def", 0.0)], "p", base
    )
