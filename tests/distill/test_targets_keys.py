"""Cache keys: every weight counts, and a key never leads outside the cache root."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest

from sklearn_lts.distill import ByteLevelLM, ByteTargetCache, byte_lm_fingerprint

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def deep_llama(tiny_tokenizer):
    """A 30-layer Llama, narrow enough to build in a moment."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tiny_tokenizer), hidden_size=16, intermediate_size=32,
                      num_hidden_layers=30, num_attention_heads=2, num_key_value_heads=2,
                      max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval()


def test_teachers_that_differ_in_their_last_layers_get_different_keys(deep_llama,
                                                                      tiny_tokenizer):
    other = copy.deepcopy(deep_llama)
    with torch.no_grad():
        for layer in other.model.layers[-3:]:
            layer.mlp.down_proj.weight.add_(torch.randn_like(layer.mlp.down_proj.weight))
    a = byte_lm_fingerprint(ByteLevelLM(deep_llama, tiny_tokenizer))
    b = byte_lm_fingerprint(ByteLevelLM(other, tiny_tokenizer))
    assert a != b
    assert a == byte_lm_fingerprint(ByteLevelLM(copy.deepcopy(deep_llama), tiny_tokenizer))


def test_any_single_weight_changes_the_key(tiny_model, tiny_tokenizer):
    """The smallest change (one ulp) of one element, in every tensor of the model."""
    model = copy.deepcopy(tiny_model)
    byte_lm = ByteLevelLM(model, tiny_tokenizer)
    base = byte_lm_fingerprint(byte_lm)
    rng = np.random.default_rng(0)
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    assert len(tensors) > 20
    for name, t in tensors:
        flat = t.data.view(-1)
        i = int(rng.integers(flat.numel()))
        old = flat[i].clone()
        with torch.no_grad():
            if t.dtype.is_floating_point:
                flat[i] = torch.nextafter(old, old + 1)
            else:
                flat[i] = ~old if t.dtype == torch.bool else old + 1
        assert byte_lm_fingerprint(byte_lm) != base, name
        with torch.no_grad():
            flat[i] = old
    assert byte_lm_fingerprint(byte_lm) == base


def test_key_ignores_where_the_model_was_loaded_from(tiny_model, tiny_tokenizer):
    other = copy.deepcopy(tiny_model)
    other.config._name_or_path = "/somewhere/else"
    assert byte_lm_fingerprint(ByteLevelLM(tiny_model, tiny_tokenizer)) == byte_lm_fingerprint(
        ByteLevelLM(other, tiny_tokenizer)
    )


@pytest.mark.parametrize(
    "key", ["../../escaped", "..", ".", "", "a/b", "a\\b", ".hidden", "/abs/path", "x" * 129,
            "k\x00", "ok\n"],
)
def test_keys_stay_inside_the_root(tmp_path, key):
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(ValueError, match="plain folder name"):
        ByteTargetCache(str(root), key=key)
    with pytest.raises(ValueError, match="plain folder name"):
        ByteTargetCache(str(root), key=str(tmp_path / "absolute"))
    assert sorted(os.listdir(tmp_path)) == ["root"] and os.listdir(root) == []


def test_a_valid_key_is_one_folder_below_the_root(tmp_path):
    cache = ByteTargetCache(str(tmp_path), key="beam-0123.v2_x")
    assert os.path.dirname(cache.path) == str(tmp_path)
