import torch
from safetensors.torch import save_file

from safety_landscape.directions import (
    content_digest,
    iter_checkpoint_tensors,
    load_direction,
    random_direction,
    save_direction,
)


def weights():
    g = torch.Generator().manual_seed(1)
    return {
        "model.layers.0.mlp.weight": torch.randn(6, 4, generator=g),
        "model.layers.0.input_layernorm.weight": torch.ones(4),
        "model.embed_tokens.weight": torch.randn(10, 4, generator=g),
        "model.layers.0.bias": torch.randn(6, generator=g),
    }


def test_same_seed_gives_bit_identical_tensors_and_digest():
    a = random_direction(weights().items(), 7, "layer", ["norm"])
    b = random_direction(weights().items(), 7, "layer", ["norm"])
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert content_digest(a) == content_digest(b)
    assert content_digest(a) != content_digest(random_direction(weights().items(), 8, "layer", ["norm"]))


def test_each_tensor_is_regenerable_alone():
    full = random_direction(weights().items(), 3, "layer", ["norm"])
    alone = random_direction([("model.embed_tokens.weight", weights()["model.embed_tokens.weight"])], 3, "layer", [])
    assert torch.equal(full["model.embed_tokens.weight"], alone["model.embed_tokens.weight"])


def test_layer_normalization_matches_weight_norms_and_skips_norm_tensors():
    w = weights()
    d = random_direction(w.items(), 0, "layer", ["norm"])
    assert "model.layers.0.input_layernorm.weight" not in d
    for name, t in d.items():
        assert torch.allclose(t.norm(), w[name].norm(), rtol=1e-5)


def test_filter_normalization_matches_row_norms():
    w = weights()
    d = random_direction(w.items(), 0, "filter", ["norm"])
    name = "model.layers.0.mlp.weight"
    assert torch.allclose(d[name].norm(dim=1), w[name].norm(dim=1), rtol=1e-5)


def test_save_load_roundtrip_and_streaming(tmp_path):
    save_file(weights(), str(tmp_path / "model.safetensors"))
    streamed = dict(iter_checkpoint_tensors(tmp_path))
    assert set(streamed) == set(weights())
    d = random_direction(streamed.items(), 0, "layer", ["norm"], torch.bfloat16)
    digest = save_direction(tmp_path / "d1.safetensors", d, {"seed": 0})
    loaded, meta = load_direction(tmp_path / "d1.safetensors")
    assert meta["content_digest"] == digest and meta["seed"] == 0
    assert loaded["model.layers.0.mlp.weight"].dtype == torch.bfloat16
    assert content_digest(loaded) == digest
