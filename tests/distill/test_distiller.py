"""ByteDistiller end to end on tiny models (2 layers, width 32): no SmolLM2, no network."""

import os
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from transformers import GPT2Config, GPT2LMHeadModel

from sklearn_lts._models import gpt2_tokenizer, sentencepiece_tokenizer
from sklearn_lts.distill import ByteDistiller, ByteLevelLM, ByteTargetCache
from tests.distill.test_targets import decoded

TEXTS = [
    "The quick brown fox jumps over the lazy dog. Naïve café, déjà vu.",
    "To be, or not to be, that is the question: whether 'tis nobler in the mind.",
    "Byte-level distillation: 日本語のテキスト and emoji 🦀 in one sentence.",
    "Hamlet, Prince of Denmark. Enter two Clowns with spades and pickaxes.",
] * 2


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # tiny models: threads only add synchronisation cost (and the cores are shared)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def teacher():
    tok = gpt2_tokenizer()
    torch.manual_seed(1)
    cfg = GPT2Config(vocab_size=len(tok), n_layer=2, n_embd=32, n_head=2, n_positions=256)
    return GPT2LMHeadModel(cfg).eval(), tok


@pytest.fixture(scope="module")
def student_spec():
    tok = sentencepiece_tokenizer()
    cfg = GPT2Config(vocab_size=len(tok), n_layer=2, n_embd=32, n_head=2, n_positions=256,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return cfg, tok


def _bd(teacher, student_spec, tmp_path, **kw):
    params = dict(teacher=teacher, student=student_spec, max_steps=6, batch_size=4,
                  max_length=24, learning_rate=3e-3, random_state=0, device="cpu",
                  cache_dir=str(tmp_path), byte_method="boundary")  # cheap teacher targets
    params.update(kw)
    return ByteDistiller(**params)


@pytest.fixture(scope="module")
def fitted(teacher, student_spec, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bd")
    return _bd(teacher, student_spec, tmp, max_steps=30, learning_rate=1e-2).fit(TEXTS)


def test_fit_attributes_and_loss_decreases(fitted):
    assert len(fitted.history_) == 30
    losses = [h["loss"] for h in fitted.history_]
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    assert {"token_ce", "byte_ce", "kl"} <= set(fitted.history_[0])
    assert fitted.max_token_bytes_ == 10
    assert fitted.n_train_bytes_ == sum(len(t.encode()) for t in TEXTS)
    # training improves held-in bits per byte against the untrained student
    untrained = clone(fitted).set_params(max_steps=0).fit(TEXTS)
    assert fitted.bits_per_byte(TEXTS) < untrained.bits_per_byte(TEXTS) - 0.5
    assert fitted.score(TEXTS) == -fitted.bits_per_byte(TEXTS)


def test_transform_and_next_byte_proba(fitted):
    Z = fitted.transform(TEXTS[:3])
    assert Z.shape == (3, 32) and np.isfinite(Z).all()
    P = fitted.next_byte_proba(TEXTS[2])
    n = len(TEXTS[2].encode())
    assert P.shape == (n + 1, 257)
    ok = ~np.isnan(P).any(1)
    assert ok.sum() >= n // 2 and ok[-1]
    np.testing.assert_allclose(P[ok].sum(1), 1.0, atol=1e-5)


@pytest.mark.parametrize("head", ["linear", "transformer"])
def test_save_load_round_trip_is_identical(teacher, student_spec, tmp_path, head):
    bd = _bd(teacher, student_spec, tmp_path, byte_head=head).fit(TEXTS)
    path = os.path.join(tmp_path, "saved")
    bd.save(path)
    assert os.path.isfile(os.path.join(path, "student", "model.safetensors"))
    assert os.path.isfile(os.path.join(path, "byte_head.safetensors"))
    assert not any(f.endswith((".pkl", ".bin", ".pt")) for f in os.listdir(path))
    bd2 = ByteDistiller.load(path)
    np.testing.assert_array_equal(bd.transform(TEXTS), bd2.transform(TEXTS))
    np.testing.assert_array_equal(bd.next_byte_proba(TEXTS[0]), bd2.next_byte_proba(TEXTS[0]))
    assert bd.bits_per_byte(TEXTS) == bd2.bits_per_byte(TEXTS)
    assert bd2.history_ == bd.history_ and bd2.byte_head == head
    assert bd2.teacher.startswith("<unsaved object")  # model objects are not written


def test_save_load_keeps_the_eval_curve_and_best_step(teacher, student_spec, tmp_path):
    bd = _bd(teacher, student_spec, tmp_path, early_stopping_patience=10)
    bd.fit(TEXTS, eval_X=TEXTS[:1], eval_every=2)
    assert bd.eval_curve_.shape == (4, 2) and bd.best_step_ in (2, 4, 6)
    bd.save(os.path.join(tmp_path, "saved"))
    bd2 = ByteDistiller.load(os.path.join(tmp_path, "saved"))
    np.testing.assert_array_equal(bd2.eval_curve_, bd.eval_curve_)
    assert bd2.best_step_ == bd.best_step_


def test_determinism_with_random_state(teacher, student_spec, tmp_path):
    a = _bd(teacher, student_spec, tmp_path, byte_head="transformer").fit(TEXTS)
    b = _bd(teacher, student_spec, tmp_path, byte_head="transformer").fit(TEXTS)
    c = _bd(teacher, student_spec, tmp_path, byte_head="transformer", random_state=1).fit(TEXTS)
    assert [h["loss"] for h in a.history_] == [h["loss"] for h in b.history_]
    np.testing.assert_array_equal(a.transform(TEXTS[:2]), b.transform(TEXTS[:2]))
    assert [h["loss"] for h in a.history_] != [h["loss"] for h in c.history_]


@pytest.mark.parametrize("loss", ["bld", "uld"])
def test_first_run_equals_cached_run(teacher, student_spec, tmp_path, monkeypatch, loss):
    """Computing the teacher targets (or converting the teacher) may draw from torch's global
    RNG; the student trained on the first run (targets computed) must equal the one trained
    on a later run (targets read from the cache)."""
    real = ByteLevelLM.next_byte_proba_batch

    def drawing(self, texts):
        torch.rand(1000)  # like a teacher conversion that initialises weights
        return real(self, texts)

    monkeypatch.setattr(ByteLevelLM, "next_byte_proba_batch", drawing)
    from sklearn_lts.distill import _distiller

    real_uld = _distiller.teacher_uld

    def drawing_uld(*args):
        torch.rand(1000)
        return real_uld(*args)

    monkeypatch.setattr(_distiller, "teacher_uld", drawing_uld)
    first = _bd(teacher, student_spec, tmp_path, loss=loss, kl_weight=1.0).fit(TEXTS)
    monkeypatch.setattr(_distiller, "teacher_uld", real_uld)
    again = _bd(teacher, student_spec, tmp_path, loss=loss, kl_weight=1.0).fit(TEXTS)
    assert [h["loss"] for h in first.history_] == [h["loss"] for h in again.history_]


def test_teacher_targets_are_cached(teacher, student_spec, tmp_path, monkeypatch):
    _bd(teacher, student_spec, tmp_path, max_steps=1).fit(TEXTS)
    (key,) = os.listdir(os.path.join(tmp_path, "bld_targets"))
    with open(os.path.join(tmp_path, "bld_targets", key, "index.jsonl")) as f:
        assert len(f.readlines()) == len(set(TEXTS))

    def boom(*a, **k):
        raise AssertionError("targets recomputed")

    monkeypatch.setattr(ByteLevelLM, "next_byte_proba_batch", boom)
    # another head and another student reuse the same targets
    _bd(teacher, student_spec, tmp_path, max_steps=1, byte_head="transformer").fit(TEXTS)


@pytest.mark.parametrize("loss", ["sft", "uld"])
def test_baselines(teacher, student_spec, tmp_path, loss):
    bd = _bd(teacher, student_spec, tmp_path, loss=loss, kl_weight=1.0).fit(TEXTS)
    assert bd.byte_head_ is None and len(bd.history_) == 6
    assert ("uld" in bd.history_[0]) == (loss == "uld")
    with pytest.raises(ValueError):
        bd.next_byte_proba("x")


def test_sft_needs_no_teacher(student_spec, tmp_path):
    bd = ByteDistiller(teacher="/nonexistent/teacher", student=student_spec, loss="sft",
                       max_steps=2, batch_size=2, max_length=16, random_state=0)
    bd.fit(TEXTS[:2])  # the teacher is never loaded
    assert np.isfinite(bd.score(TEXTS[:2]))


def test_teacher_bits_per_byte(fitted, teacher):
    model, tok = teacher
    text = TEXTS[0]
    ids = torch.tensor([[tok.bos_token_id] + tok(text)["input_ids"]])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0, :-1].double(), -1)
    nll = -logp[torch.arange(ids.shape[1] - 1), ids[0, 1:]].sum().item()
    want = nll / np.log(2) / len(text.encode())
    assert abs(fitted.bits_per_byte([text], model="teacher") - want) < 1e-4


def test_clone_and_pickle_do_not_copy_models(fitted, teacher):
    c = clone(fitted)
    assert c.teacher[0] is teacher[0]  # shared, not deep-copied
    assert not hasattr(c, "student_")
    blob = pickle.dumps(fitted)
    # the fitted student and its tokenizer travel, the teacher (1.6M float32 weights) does not
    n_student = sum(p.numel() for p in fitted.student_.parameters())
    n_student += sum(p.numel() for p in fitted.byte_head_.parameters())
    n_tok = len(pickle.dumps(fitted.student_tokenizer_))
    assert len(blob) < 4 * n_student + n_tok + 200_000
    back = pickle.loads(blob)
    assert back.teacher.startswith("<unsaved object")
    assert back.bits_per_byte(TEXTS) == fitted.bits_per_byte(TEXTS)
    np.testing.assert_array_equal(back.next_byte_proba(TEXTS[1]), fitted.next_byte_proba(TEXTS[1]))
    with pytest.raises(ValueError, match="dropped"):
        back.set_params(max_steps=1).fit(TEXTS)


def test_does_not_modify_student_parameter(teacher, tmp_path):
    tok = gpt2_tokenizer()
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_layer=1, n_embd=16, n_head=2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bd = ByteDistiller(teacher=teacher, student=(model, tok), max_steps=2, batch_size=2, loss="sft",
                       max_length=16, random_state=0, cache_dir=str(tmp_path)).fit(TEXTS[:2])
    assert bd.student_ is not model
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_pipeline_with_prototype_classifier(fitted):
    from sklearn.pipeline import make_pipeline

    from sklearn_lts import SoftLabelPrototypeClassifier

    y = np.array([0, 1, 0, 1] * 2)
    pipe = make_pipeline(clone(fitted).set_params(max_steps=2), SoftLabelPrototypeClassifier())
    pipe.fit(TEXTS, y)
    assert pipe.predict(TEXTS).shape == (8,)


def test_invalid_params(teacher, student_spec, tmp_path):
    for kw in [{"loss": "kd"}, {"byte_head": "mlp"}, {"temperature": 0.0}, {"max_length": 1},
               {"byte_head": "linear", "max_token_bytes": None}]:
        with pytest.raises(ValueError):
            _bd(teacher, student_spec, tmp_path, **kw).fit(TEXTS)
    with pytest.raises(TypeError):
        _bd(teacher, student_spec, tmp_path).fit("a single string")


def test_targets_come_from_the_teacher_byte_lm(teacher, student_spec, tmp_path):
    # the KL term must see exactly ByteLevelLM's rows, gathered at start + slot
    text = "Héllo 🦀 world, the beam."
    bd = _bd(teacher, student_spec, tmp_path, byte_method="beam", beam_width=2, max_steps=1)
    bd.fit([text])
    byte_lm = ByteLevelLM(teacher[0], teacher[1], method="beam", beam_width=2)
    cache = ByteTargetCache(os.path.join(str(tmp_path), "bld_targets"), byte_lm)
    assert text in cache  # fit stored the targets where the cache of this teacher looks
    rows = cache.get(text)
    ref = byte_lm.next_byte_proba(text)
    np.testing.assert_array_equal(rows, decoded(ref))  # as the default codec stores them


def test_eval_curve(teacher, student_spec, tmp_path):
    bd = _bd(teacher, student_spec, tmp_path, loss="sft", max_steps=4)
    bd.fit(TEXTS, eval_X=TEXTS[:2], eval_every=2)
    assert bd.eval_curve_[:, 0].tolist() == [0, 2, 4]
    assert bd.eval_curve_[-1, 1] == pytest.approx(bd.bits_per_byte(TEXTS[:2]))
    assert "eval_bits_per_byte" in bd.history_[1] and "eval_bits_per_byte" not in bd.history_[0]


def test_token_kl_term_moves_token_head_towards_teacher_bytes(teacher, student_spec, tmp_path):
    """With ``token_kl_weight`` the history records the term and it decreases in training; with
    0 (the paper's objective) it is absent."""
    bd = _bd(teacher, student_spec, tmp_path, token_kl_weight=1.0, kl_weight=0.0,
             byte_ce_weight=0.0, max_steps=20, learning_rate=1e-2).fit(TEXTS)
    tkl = [h["token_kl"] for h in bd.history_]
    assert all(np.isfinite(tkl)) and np.mean(tkl[-5:]) < np.mean(tkl[:5])
    plain = _bd(teacher, student_spec, tmp_path, kl_weight=0.1, token_kl_weight=0.0).fit(TEXTS)
    assert "token_kl" not in plain.history_[0]
    assert "token_kl" in _bd(teacher, student_spec, tmp_path).fit(TEXTS).history_[0]  # default


def test_defaults_fit_offline(smollm2, tmp_path, monkeypatch):
    """``ByteDistiller()`` with every default (SmolLM2-135M teacher, fresh GPT-2-BPE student,
    covering-beam targets) fits offline; only the step count is cut for speed."""
    from sklearn_lts._models import cache_root

    del smollm2  # requested only so that the converted checkpoint exists (or the test skips)
    converted = os.path.join(cache_root(), "smollm2-135m")
    if not os.path.isdir(converted):  # the fixture used $SKLEARN_LTS_SMOLLM2_DIR
        converted = os.environ["SKLEARN_LTS_SMOLLM2_DIR"]
    # targets go to a fresh cache; the converted teacher is reused, not converted again
    monkeypatch.setenv("SKLEARN_LTS_CACHE", str(tmp_path))
    os.symlink(converted, tmp_path / "smollm2-135m")
    text = ["To be, or not to be: that is the question."]
    bd = ByteDistiller(max_steps=2, batch_size=2)
    assert bd.teacher is None and bd.student is None and bd.byte_method == "beam"
    bd.fit(text)
    assert len(bd.history_) == 2 and np.isfinite(bd.history_[-1]["kl"])
    assert bd.history_[0]["kl"] > 0  # real teacher targets, not a zero term
    assert len(bd.student_tokenizer_) == 50257  # GPT-2 BPE, not the teacher's 49152
    assert np.isfinite(bd.score(text))
    assert os.listdir(tmp_path / "bld_targets")  # targets were written to the new cache


def test_lora_trains_only_the_adapters_and_merges(teacher, student_spec, tmp_path):
    pytest.importorskip("peft")
    cfg, tok = student_spec
    torch.manual_seed(0)
    init = GPT2LMHeadModel(cfg)
    before = {k: v.clone() for k, v in init.state_dict().items()}
    bd = _bd(teacher, (init, tok), tmp_path, learning_rate=1e-2,
             lora={"r": 4, "lora_alpha": 8, "target_modules": ["c_attn"],
                   "fan_in_fan_out": True}).fit(TEXTS)  # GPT-2 uses Conv1D
    assert isinstance(bd.student_, GPT2LMHeadModel)  # adapters merged into a plain model
    after = bd.student_.state_dict()
    assert set(after) == set(before)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    # only the adapted projections moved; embeddings, MLPs and norms stayed frozen
    assert changed and all(".attn.c_attn.weight" in k for k in changed)
    assert np.isfinite(bd.score(TEXTS[:2]))


def test_wordpiece_student_is_refused_with_the_reason(teacher, tmp_path):
    from transformers import AutoTokenizer

    from sklearn_lts._models import minilm_path
    from sklearn_lts.distill import UnsupportedTokenizerError

    tok = AutoTokenizer.from_pretrained(minilm_path())
    cfg = GPT2Config(vocab_size=len(tok), n_layer=1, n_embd=16, n_head=2)
    bd = _bd(teacher, (cfg, tok), tmp_path, loss="sft", max_steps=1)
    with pytest.raises(UnsupportedTokenizerError, match="lower-casing"):
        bd.fit(TEXTS)
    assert not any("sklearn_lts" in k for k in vars(tok))

