"""Config keys every backend shares, clear errors on bad input, and the generated parameter table."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pytest_goni.models import builtin_backends, params
from pytest_goni.models.base import SIZES, ConfigError

from pytest_goni.registry import UnknownName, load_builtins, resolve_backend

load_builtins()
BACKENDS = builtin_backends()
README = Path(__file__).resolve().parents[2] / "benchmarks" / "README.md"


@pytest.mark.parametrize("name", BACKENDS)
def test_size_preset_sets_the_seed_shape(name):
    with torch.device("meta"):
        model = resolve_backend(name)(size="8M", vocab_size=128)
    assert (model.config.d_model, model.config.n_layers, model.config.n_heads) == (384, 6, 6)


@pytest.mark.parametrize("name", BACKENDS)
def test_unknown_key_names_the_key_and_the_allowed_ones(name):
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) d_modle; allowed: .*d_model"):
        resolve_backend(name)(d_modle=32)


@pytest.mark.parametrize("bad,match", [
    ({"size": "7M"}, "unknown size '7M'; known sizes: 3.5M, 8M, 30M, 125M"),
    ({"d_model": 30, "n_heads": 4}, "not divisible by n_heads=4"),
    ({"n_layers": 0}, "n_layers must be a positive integer"),
    ({"dtype": "float8"}, "dtype must be one of"),
])
def test_bad_values_are_config_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        resolve_backend("gla")(**{"vocab_size": 64, "d_model": 32, "n_heads": 2, **bad})


def test_spec_factory_path_resolves():
    factory = resolve_backend("pytest_goni.models.rnn:build_gru")
    assert factory(vocab_size=16, d_model=8, n_layers=1, n_heads=1).num_params() > 0
    with pytest.raises(UnknownName, match="did you mean 'gated-deltanet'"):
        resolve_backend("gated-delta-net")


@pytest.mark.parametrize("name", ["gpt2", "gla", "lstm"])
def test_bad_tokens_are_clear_errors(name):
    model = resolve_backend(name)(vocab_size=16, d_model=8, n_layers=1, n_heads=2, max_seq_len=32)
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 16\)"):
        model(torch.tensor([[1, 16]]))
    with pytest.raises(ValueError, match="integer token ids"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"tokens must be \[B, T\]"):
        model(torch.zeros(3, dtype=torch.long))
    _, state = model.prefill(torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match=r"token must be \[B\]"):
        model.step(torch.tensor([[1]]), state)
    with pytest.raises(ValueError, match="state must be what prefill"):
        model.step(torch.tensor([1]), None)


def test_sizes_are_the_seed_shapes():
    assert SIZES["125M"] == {"n_layers": 12, "n_heads": 12, "d_model": 768, "d_ff": 3072}
    assert all(s["d_model"] % s["n_heads"] == 0 and s["d_ff"] == 4 * s["d_model"] for s in SIZES.values())


def test_param_table_covers_every_backend_and_the_seed_rows():
    rows = {r["backend"]: r for r in params.param_table()}
    assert set(BACKENDS) <= set(rows)
    for name, approx in params.SEED_APPROX.items():
        assert rows[name]["seed_approx"] == approx
        assert 0 < rows[name]["non_embedding"] < rows[name]["total"]
    # the d=256 4-layer Transformer holds ~12 d^2 per layer: the seed's ~400K is an underestimate
    assert rows["transformer-rope"]["non_embedding"] > 12 * 256 * 256 * 4 * 0.95


def test_readme_table_is_the_generated_one():
    text = README.read_text()
    assert params.START in text, "run: python -m pytest_goni.models.params --write benchmarks/README.md"
    block = text.split(params.START, 1)[1].split(params.END, 1)[0]
    assert block.strip() == params.markdown().strip(), (
        "benchmarks/README.md's parameter table is stale; regenerate it with "
        "python -m pytest_goni.models.params --write benchmarks/README.md")


@pytest.mark.parametrize("name", ["gpt2", "transformer-rope", "gla", "retnet", "deltanet", "mamba2"])
def test_125m_preset_is_125m_class(name):
    """size=125M means GPT-2 Small's depth and width; every backend then lands near 124M."""
    config = {"size": "125M", "vocab_size": 50257, **({"n_layers": 24} if name == "mamba2" else {})}
    with torch.device("meta"):
        model = resolve_backend(name)(**config)
    assert 118e6 < model.num_params() < 131e6, model.num_params()
