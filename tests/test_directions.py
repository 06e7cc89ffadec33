import json

import pytest
import torch
from safetensors.torch import save_file

from safety_landscape.directions import (
    CheckpointReader,
    Direction,
    cosine,
    interpolation_source,
    random_source,
    random_tensor,
    tensor_seed,
    write_direction,
)

GiB = 1 << 30


def weights():
    g = torch.Generator().manual_seed(1)
    return {
        "model.layers.0.mlp.weight": torch.randn(6, 4, generator=g),
        "model.layers.0.input_layernorm.weight": torch.ones(4),
        "model.embed_tokens.weight": torch.randn(10, 4, generator=g),
        "model.layers.0.bias": torch.randn(6, generator=g),
    }


@pytest.fixture
def checkpoint(tmp_path):
    w = weights()
    names = sorted(w)
    save_file({n: w[n] for n in names[:2]}, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file({n: w[n] for n in names[2:]}, str(tmp_path / "model-00002-of-00002.safetensors"))
    return CheckpointReader(tmp_path)


def make(checkpoint, out, seed=7, normalization="layer", exclude=("norm",), dtype=torch.float32, shard_bytes=GiB, **kw):
    digest = write_direction(
        out, checkpoint, random_source(seed, normalization), exclude, dtype, shard_bytes, {"name": out.name}, **kw
    )
    return Direction(out), digest


def test_same_seed_gives_bit_identical_tensors_and_digest(checkpoint, tmp_path):
    a, da = make(checkpoint, tmp_path / "a")
    b, db = make(checkpoint, tmp_path / "b")
    assert da == db == a.digest
    assert all(torch.equal(t, b.get(n)) for n, t in a)
    _, dc = make(checkpoint, tmp_path / "c", seed=8)
    assert dc != da


@pytest.mark.parametrize("normalization", ["layer", "filter"])
def test_the_number_of_workers_and_threads_changes_no_bit(tmp_path, normalization):
    """Tensors large enough for torch to split their norms over threads, drawn by 1 worker on 1 thread
    and by 3 workers on 3 threads each."""
    g = torch.Generator().manual_seed(2)
    save_file(
        {f"model.layers.{i}.mlp.weight": torch.randn(1024, 2048, generator=g) for i in range(4)},
        str(tmp_path / "model.safetensors"),
    )
    checkpoint, threads = CheckpointReader(tmp_path), torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        serial, d1 = make(checkpoint, tmp_path / "serial", normalization=normalization, workers=1)
        torch.set_num_threads(3)
        parallel, d3 = make(checkpoint, tmp_path / "parallel", normalization=normalization, workers=3)
    finally:
        torch.set_num_threads(threads)
    assert d1 == d3 and list(serial.index["weight_map"]) == list(parallel.index["weight_map"])
    assert all(torch.equal(t, parallel.get(n)) for n, t in serial)


def test_shard_layout_does_not_change_tensors_or_digest(checkpoint, tmp_path):
    one, d1 = make(checkpoint, tmp_path / "one")
    many, d2 = make(checkpoint, tmp_path / "many", shard_bytes=64)  # about one tensor per shard
    assert d1 == d2
    assert len(set(many.index["weight_map"].values())) > len(set(one.index["weight_map"].values())) == 1


def test_each_tensor_is_regenerable_alone(checkpoint, tmp_path):
    direction, _ = make(checkpoint, tmp_path / "d")
    name = "model.embed_tokens.weight"
    assert torch.equal(direction.get(name), random_tensor(name, weights()[name], 7, "layer"))


def test_layer_normalization_matches_weight_norms_and_skips_norm_tensors(checkpoint, tmp_path):
    direction, _ = make(checkpoint, tmp_path / "d")
    assert "model.layers.0.input_layernorm.weight" not in direction.names
    for name, t in direction:
        assert torch.allclose(t.norm(), weights()[name].norm(), rtol=1e-5)


def test_filter_normalization_matches_row_norms(checkpoint, tmp_path):
    direction, _ = make(checkpoint, tmp_path / "d", normalization="filter")
    name = "model.layers.0.mlp.weight"
    assert torch.allclose(direction.get(name).norm(dim=1), weights()[name].norm(dim=1), rtol=1e-5)


def test_none_normalization_keeps_the_raw_gaussian_draw(checkpoint, tmp_path):
    direction, _ = make(checkpoint, tmp_path / "d", normalization="none")
    name = "model.embed_tokens.weight"
    raw = torch.randn((10, 4), generator=torch.Generator().manual_seed(tensor_seed(7, name)))
    assert torch.equal(direction.get(name), raw)


def test_gram_schmidt_makes_directions_orthogonal_and_records_the_cosine(checkpoint, tmp_path):
    first, _ = make(checkpoint, tmp_path / "d1", seed=1)
    plain, _ = make(checkpoint, tmp_path / "plain", seed=2, partner=first)
    ortho, _ = make(checkpoint, tmp_path / "d2", seed=2, partner=first, orthogonalize=True)
    assert abs(cosine(ortho, first)) < 1e-6  # float32 storage
    a, b = torch.cat([plain.get(n).flatten() for n in plain.names]), torch.cat([first.get(n).flatten() for n in plain.names])
    assert ortho.metadata["cosine"] == pytest.approx(float(torch.nn.functional.cosine_similarity(a, b, dim=0)), rel=1e-4)
    assert cosine(plain, first) == pytest.approx(ortho.metadata["cosine"], rel=1e-6)
    # without Gram-Schmidt the cosine is recorded too, and the direction is the plain draw
    assert (
        plain.metadata["cosine"] == pytest.approx(ortho.metadata["cosine"]) and "gram_schmidt_coefficient" not in plain.metadata
    )
    assert json.loads((tmp_path / "d2" / "direction.json").read_text())["metadata"]["cosine_with"] == "d1"


def test_interpolation_direction_is_the_weight_difference(checkpoint, tmp_path):
    other = {n: t + 0.5 for n, t in weights().items()}
    (tmp_path / "ep").mkdir()
    save_file(other, str(tmp_path / "ep" / "model.safetensors"))
    write_direction(
        tmp_path / "i1", checkpoint, interpolation_source(CheckpointReader(tmp_path / "ep")), [], torch.float32, GiB, {}
    )
    direction = Direction(tmp_path / "i1")
    assert set(direction.names) == set(weights())
    assert all(torch.allclose(t, torch.full_like(t, 0.5)) for _, t in direction)


def test_low_precision_storage(checkpoint, tmp_path):
    direction, _ = make(checkpoint, tmp_path / "d", dtype=torch.bfloat16)
    assert all(t.dtype == torch.bfloat16 for _, t in direction)
