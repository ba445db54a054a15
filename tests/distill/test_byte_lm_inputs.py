"""What ByteLevelLM accepts: model state, text types, parameters, vocabularies, text lengths."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from sklearn_lts.distill import ByteLevelLM, token_bytes


def test_train_mode_model_scores_in_eval_mode_and_keeps_its_flags(tiny_tokenizer, tiny_model):
    """Dropout must not make rows random; the caller's train/eval flags survive the call."""
    model = copy.deepcopy(tiny_model).train()
    model.transformer.h[0].eval()  # a mixed state, to be restored module by module
    ref = ByteLevelLM(tiny_model, tiny_tokenizer, beam_width=2).next_byte_proba("the cat")
    for method in ("beam", "lattice"):
        blm = ByteLevelLM(model, tiny_tokenizer, method=method, beam_width=2)
        first, second = blm.next_byte_proba("the cat"), blm.next_byte_proba("the cat")
        np.testing.assert_array_equal(first, second)
        if method == "beam":
            np.testing.assert_allclose(first, ref, atol=1e-6)
    assert model.training and model.transformer.h[1].training
    assert not model.transformer.h[0].training
    assert not tiny_model.training  # the eval model stays in eval mode


@pytest.mark.parametrize("bad", [5, None, 1.5, ["the"]])
def test_a_text_must_be_str_or_bytes(tiny_tokenizer, tiny_model, bad):
    blm = ByteLevelLM(tiny_model, tiny_tokenizer, beam_width=2)
    with pytest.raises(TypeError, match="str or bytes"):
        blm.next_byte_proba(bad)


@pytest.mark.parametrize("bad", ["abc", b"abc", 5])
def test_a_batch_must_be_an_iterable_of_texts(tiny_tokenizer, tiny_model, bad):
    blm = ByteLevelLM(tiny_model, tiny_tokenizer, beam_width=2)
    with pytest.raises(TypeError, match="iterable of str or bytes"):
        blm.next_byte_proba_batch(bad)
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str or bytes"):
        blm.next_byte_proba_batch(["the", 3])


def test_bytes_and_str_give_the_same_rows(tiny_tokenizer, tiny_model):
    # one text per call, so every type meets the same batch shapes: rows must be bit-identical
    # (within one batch, float32 kernels may round a row differently by its position)
    blm = ByteLevelLM(tiny_model, tiny_tokenizer, beam_width=2)
    a, b, c = (blm.next_byte_proba_batch([t])[0]
               for t in ("café", "café".encode(), bytearray("café".encode())))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    # the three types mixed in one batch: accepted, rows in input order
    texts = ["café", b"the", bytearray(b"cat")]
    mixed = blm.next_byte_proba_batch(texts)
    for text, row in zip(texts, mixed):
        np.testing.assert_allclose(row, blm.next_byte_proba_batch([text])[0], rtol=1e-5,
                                   atol=1e-9)


@pytest.mark.parametrize(
    "param,value",
    [("beam_width", 0), ("beam_width", 2.5), ("batch_size", 0), ("prune_threshold", 1.0),
     ("prune_threshold", -0.1), ("lookahead", -1), ("window", -1), ("method", "greedy"),
     ("merge", "yes"), ("bos_token_id", -1), ("eos_token_id", 1.5)],
)
def test_parameters_are_validated_when_built(tiny_tokenizer, tiny_model, param, value):
    with pytest.raises(ValueError, match=f"'{param}' parameter of ByteLevelLM"):
        ByteLevelLM(tiny_model, tiny_tokenizer, **{param: value})


def test_parameters_are_validated_when_used(tiny_tokenizer, tiny_model):
    blm = ByteLevelLM(tiny_model, tiny_tokenizer, beam_width=2)
    blm.batch_size = 0  # set after construction
    with pytest.raises(ValueError, match="'batch_size' parameter"):
        blm.next_byte_proba("the")


def test_tokenizer_bigger_than_the_model_is_rejected(tiny_tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    small = GPT2LMHeadModel(GPT2Config(vocab_size=len(tiny_tokenizer) - 20, n_layer=1,
                                       n_embd=16, n_head=2, n_positions=64)).eval()
    with pytest.raises(ValueError, match="tokenizer does not belong to this model"):
        ByteLevelLM(small, tiny_tokenizer).next_byte_proba("the theme")


@pytest.mark.parametrize("param", ["bos_token_id", "eos_token_id"])
def test_special_ids_outside_the_model_are_rejected(tiny_tokenizer, tiny_model, param):
    with pytest.raises(ValueError, match=f"{param}=100000 is not a token of the model"):
        ByteLevelLM(tiny_model, tiny_tokenizer, **{param: 100_000}).next_byte_proba("the")


def test_vocabulary_cache_follows_eos_bos_and_output_size(tiny_tokenizer, tiny_model):
    """A table built for another EOS/BOS id or output size is never reused."""
    from transformers import GPT2Config, GPT2LMHeadModel

    eos_a, eos_b = 5, 7
    a = ByteLevelLM(tiny_model, tiny_tokenizer, eos_token_id=eos_a, beam_width=2)
    b = ByteLevelLM(tiny_model, tiny_tokenizer, eos_token_id=eos_b, beam_width=2)
    c = ByteLevelLM(tiny_model, tiny_tokenizer, bos_token_id=eos_a, beam_width=2)
    assert (a.token_bytes_.eos_token_id, b.token_bytes_.eos_token_id) == (eos_a, eos_b)
    assert c.token_bytes_.bos_token_id == eos_a and c.token_bytes_.eos_token_id != eos_a
    # EOS and BOS are never text: the table itself differs, not just the ids
    assert a.token_bytes_.token_bytes[eos_a] is None and b.token_bytes_.token_bytes[eos_a]
    ra, rb = a.next_byte_proba("the"), b.next_byte_proba("the")
    assert np.abs(ra[:, 256] - rb[:, 256]).max() > 1e-6
    wider = GPT2LMHeadModel(GPT2Config(vocab_size=len(tiny_tokenizer) + 8, n_layer=1, n_embd=16,
                                       n_head=2, n_positions=64)).eval()
    n = len(ByteLevelLM(tiny_model, tiny_tokenizer).token_bytes_)
    assert n == len(tiny_tokenizer)
    assert len(ByteLevelLM(wider, tiny_tokenizer).token_bytes_) == len(tiny_tokenizer) + 8
    assert len(ByteLevelLM(tiny_model, tiny_tokenizer).token_bytes_) == n


def test_vocabulary_cache_sees_a_tokenizer_changed_in_place(tiny_tokenizer, tiny_model):
    tok = copy.deepcopy(tiny_tokenizer)
    before = ByteLevelLM(tiny_model, tok).token_bytes_
    t = next(i for i, b in enumerate(before.token_bytes) if b and len(b) > 1)  # not a byte
    tok.eos_token = tok.convert_ids_to_tokens(t)
    after = ByteLevelLM(tiny_model, tok).token_bytes_
    assert before.eos_token_id != t and after.eos_token_id == t
    assert after.token_bytes[t] is None


# ------------------------------------------------------------------------- context length


@pytest.fixture(scope="module")
def a_run_lm():
    """Single bytes and "aaaa" only: ``"a" * n`` has a tiling of n tokens, and 16 positions."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    vocab = {bytes([i]): i for i in range(256)} | {b"aaaa": 256, b"<eos>": 257}
    tb = token_bytes(vocab, bos_token_id=257, eos_token_id=257)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=258, n_layer=1, n_embd=16, n_head=2,
                                       n_positions=16)).eval()
    return model, tb


def test_exact_depth_bound_is_the_number_of_bytes(a_run_lm):
    """15 bytes need positions 0..15 (BOS + 15 single-byte tokens): fine; 16 bytes are not."""
    model, tb = a_run_lm
    rows = ByteLevelLM(model, tb, method="exact").next_byte_proba("a" * 15)
    np.testing.assert_allclose(rows.sum(1), 1, atol=1e-9)
    for method in ("exact", "beam"):
        with pytest.raises(ValueError, match="16 positions .*at most 15 bytes"):
            ByteLevelLM(model, tb, method=method, beam_width=64,
                        prune_threshold=0).next_byte_proba("a" * 16)
    # the canonical tokenization ("aaaa" x 5) is short: these methods stay within 16 positions
    for method in ("boundary", "lattice"):
        rows = ByteLevelLM(model, tb, method=method).next_byte_proba("a" * 20)
        np.testing.assert_allclose(rows.sum(1), 1, atol=1e-9)


def test_beam_rejects_a_text_whose_tokenizations_outgrow_the_context(tiny_tokenizer,
                                                                       tiny_model):
    """Few canonical tokens, more bytes than positions: refused up front, not an IndexError."""
    text = "the cat sat on the mat. " * 3
    canon = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(canon) + 2 < tiny_model.config.n_positions < len(text.encode())
    with pytest.raises(ValueError, match="too long for the model's context"):
        ByteLevelLM(tiny_model, tiny_tokenizer, beam_width=4).next_byte_proba(text)
    rows = ByteLevelLM(tiny_model, tiny_tokenizer, method="boundary").next_byte_proba(text)
    assert rows.shape == (len(text.encode()) + 1, 257)
