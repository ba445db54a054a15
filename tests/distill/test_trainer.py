"""The training loop on a tiny student: schedule, batch order, objectives, failure modes."""

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from sklearn_lts._models import gpt2_tokenizer
from sklearn_lts.distill._document import make_documents
from sklearn_lts.distill._heads import make_byte_head
from sklearn_lts.distill._objectives import BLD, SFT, ULD
from sklearn_lts.distill._trainer import TrainConfig, collate, train_student, window_order
from sklearn_lts.distill._windows import make_windows

TEXTS = ["The quick brown fox jumps over the lazy dog.", "To be, or not to be: café 🦀."]


@pytest.fixture(scope="module")
def tok():
    return gpt2_tokenizer()


def _model(tok, seed=0):
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=len(tok), n_layer=1, n_embd=16, n_head=2, n_positions=64,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(cfg)


def _rows(text):
    n = len(text.encode("utf-8"))
    rng = np.random.default_rng(n)
    r = rng.random((n + 1, 257)).astype(np.float32)
    return r / r.sum(1, keepdims=True)


def test_schedule_warms_up_then_decays_to_final_fraction():
    c = TrainConfig(max_steps=10, batch_size=1, learning_rate=1.0, max_length=8, final_lr=0.2)
    f = [c.lr_factor(s) for s in range(10)]
    assert f[0] == 1.0  # one warm-up step at 10% of 10
    assert all(a > b for a, b in zip(f[1:], f[2:], strict=False))
    assert f[-1] == pytest.approx(1 - 0.8 * 8 / 9)
    assert TrainConfig(10, 1, 1.0, 8, warmup=0.5).lr_factor(0) == pytest.approx(0.2)


def test_window_order_is_a_seeded_shuffle_without_replacement():
    def first_epoch(seed):
        it = window_order(12, 4, np.random.default_rng(seed))
        return [i for _ in range(3) for i in next(it)]

    a, b, c = first_epoch(0), first_epoch(0), first_epoch(1)
    assert sorted(a) == list(range(12)) and a == b
    assert a != c and a != list(range(12))  # shuffled, and by the seed


def test_collate_gathers_each_objectives_targets(tok):
    docs = make_documents(TEXTS, tok, [_rows(t) for t in TEXTS])
    windows = make_windows([len(d.align.ids) for d in docs], 5)
    windows = [windows[i] for i in (-1, 0, -2, 1)]  # documents interleaved in the batch
    assert [w.doc for w in windows] == [1, 0, 1, 0]
    batch = collate(docs, windows, 0, 0, BLD(max_bytes=3))
    b, t = batch["byte_pos"]
    for r in range(b.numel()):
        w = windows[b[r]]
        a = docs[w.doc].align
        k = w.start + t[r]
        start = int(a.starts[k])
        assert batch["labels"][b[r], t[r]] == a.ids[k]
        np.testing.assert_array_equal(batch["teacher_rows"][r, 0], docs[w.doc].teacher_rows[start])
        assert batch["gold_bytes"][r, 0] == docs[w.doc].data[start]
    assert set(collate(docs, windows, 0, 0, SFT())) == {"input_ids", "attention_mask", "labels"}


@pytest.mark.parametrize("objective", ["sft", "bld", "uld"])
def test_training_lowers_the_loss_and_is_seeded(tok, objective):
    def run(seed):
        rows = [_rows(t) for t in TEXTS]
        uld = [({0: 0}, np.sort(np.random.default_rng(0).random((40, 8)))[:, ::-1].copy())
               for _ in TEXTS]
        docs = make_documents(TEXTS * 3, tok, rows * 3, uld * 3)
        model = _model(tok)
        obj = {"sft": SFT(), "bld": BLD(max_bytes=4, kl_weight=1.0), "uld": ULD(kl_weight=1.0)}
        head = make_byte_head("linear", 16, 4) if objective == "bld" else None
        cfg = TrainConfig(max_steps=12, batch_size=2, learning_rate=1e-2, max_length=8)
        return train_student(model, head, docs, obj[objective], cfg, bos_id=0, pad_id=0,
                             rng=np.random.default_rng(seed)).history

    h0, h0b, h1 = run(0), run(0), run(1)
    assert [r["loss"] for r in h0] == [r["loss"] for r in h0b]
    assert [r["loss"] for r in h0] != [r["loss"] for r in h1]
    assert np.mean([r["token_ce"] for r in h0[-3:]]) < np.mean([r["token_ce"] for r in h0[:3]])
    assert [r["step"] for r in h0] == list(range(1, 13))


def test_non_finite_loss_stops_training(tok):
    class Broken(SFT):
        def loss(self, logits, hidden, batch, head):
            out = super().loss(logits, hidden, batch, head)
            out["loss"] = out["loss"] * float("nan")
            return out

    docs = make_documents(TEXTS, tok)
    cfg = TrainConfig(max_steps=3, batch_size=1, learning_rate=1e-3, max_length=8)
    with pytest.raises(FloatingPointError, match="step 1"):
        train_student(_model(tok), None, docs, Broken(), cfg, bos_id=0, pad_id=0,
                      rng=np.random.default_rng(0))


def test_no_tokens_is_an_error(tok):
    cfg = TrainConfig(max_steps=1, batch_size=1, learning_rate=1e-3, max_length=8)
    with pytest.raises(ValueError, match="no tokens"):
        train_student(_model(tok), None, make_documents([""], tok), SFT(), cfg, bos_id=0,
                      pad_id=0, rng=np.random.default_rng(0))
