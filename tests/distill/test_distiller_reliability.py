"""ByteDistiller refuses bad input before any work, and never loads damaged or foreign weights."""

import os
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from transformers import GPT2Config, GPT2LMHeadModel

from sklearn_lts._models import gpt2_tokenizer, sentencepiece_tokenizer
from sklearn_lts.distill import ByteDistiller, ByteLevelLM

TEXTS = ["The quick brown fox jumps over the lazy dog.", "Naïve café, déjà vu 🦀."] * 2


@pytest.fixture(scope="module")
def teacher():
    tok = gpt2_tokenizer()
    torch.manual_seed(1)
    cfg = GPT2Config(vocab_size=len(tok), n_layer=1, n_embd=16, n_head=2, n_positions=128)
    return GPT2LMHeadModel(cfg).eval(), tok


@pytest.fixture(scope="module")
def student_spec():
    tok = sentencepiece_tokenizer()
    cfg = GPT2Config(vocab_size=len(tok), n_layer=1, n_embd=16, n_head=2, n_positions=128,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    return cfg, tok


def _bd(teacher, student_spec, tmp_path, **kw):
    params = dict(teacher=teacher, student=student_spec, max_steps=2, batch_size=2,
                  max_length=16, random_state=0, device="cpu", cache_dir=str(tmp_path),
                  byte_method="boundary")
    params.update(kw)
    return ByteDistiller(**params)


@pytest.fixture(scope="module")
def fitted(teacher, student_spec, tmp_path_factory):
    return _bd(teacher, student_spec, tmp_path_factory.mktemp("f")).fit(TEXTS)


@pytest.mark.parametrize(
    "param, value",
    [("kl_weight", -5), ("max_steps", "10"), ("max_steps", 2.5), ("batch_size", 0),
     ("temperature", 0.0), ("loss", "kd"), ("byte_method", "greedy"), ("beam_width", 0),
     ("learning_rate", -1e-3), ("max_token_bytes", 0), ("random_state", "seed")],
)
def test_bad_parameters_fail_before_the_teacher_is_touched(
    teacher, student_spec, tmp_path, monkeypatch, param, value
):
    def boom(*a, **k):
        raise AssertionError("teacher targets computed before validation")

    monkeypatch.setattr(ByteLevelLM, "next_byte_proba_batch", boom)
    with pytest.raises(ValueError, match=param):
        _bd(teacher, student_spec, tmp_path, **{param: value}).fit(TEXTS)


def test_numpy_integers_and_random_states_are_accepted(teacher, student_spec, tmp_path):
    bd = _bd(teacher, student_spec, tmp_path, max_steps=np.int64(2), batch_size=np.int32(2),
             beam_width=np.int64(3), random_state=np.random.RandomState(0)).fit(TEXTS)
    assert len(bd.history_) == 2
    a = _bd(teacher, student_spec, tmp_path, random_state=np.random.RandomState(3)).fit(TEXTS)
    b = _bd(teacher, student_spec, tmp_path, random_state=np.random.RandomState(3)).fit(TEXTS)
    assert a.history_[0]["loss"] == b.history_[0]["loss"]


@pytest.mark.parametrize("X", [{"a": 1}, {"a", "b"}, b"bytes", [], ["ok", 3]])
def test_bad_corpora_are_refused(teacher, student_spec, tmp_path, X):
    with pytest.raises((TypeError, ValueError)):
        _bd(teacher, student_spec, tmp_path).fit(X)


def test_scoring_nothing_is_an_error(fitted):
    with pytest.raises(ValueError, match="no bytes"):
        fitted.score([""])


def test_pickle_with_missing_student_weights_is_refused(fitted):
    state = fitted.__getstate__()
    from safetensors.torch import load, save

    weights = load(state["student_"]["weights"])
    weights.pop(next(k for k in weights if "h.0.attn" in k))
    state["student_"]["weights"] = save(weights)
    with pytest.raises(ValueError, match="missing"):
        ByteDistiller.__new__(ByteDistiller).__setstate__(state)
    again = pickle.loads(pickle.dumps(fitted))  # the intact state still loads, exactly
    assert again.score(TEXTS) == fitted.score(TEXTS)


def test_damaged_weight_file_is_refused(fitted, tmp_path):
    path = os.path.join(tmp_path, "saved")
    fitted.save(path)
    weights = os.path.join(path, "student", "model.safetensors")
    size = os.path.getsize(weights)
    with open(weights, "r+b") as f:  # overwrite the tail: the header still parses
        f.seek(size - 4096)
        f.write(b"\xff" * 4096)
    with pytest.raises(ValueError, match="checksum"):
        ByteDistiller.load(path)


def test_pickled_weights_are_never_loaded(fitted, tmp_path):
    path = os.path.join(tmp_path, "saved")
    fitted.save(path)
    sdir = os.path.join(path, "student")
    torch.save(fitted.student_.state_dict(), os.path.join(sdir, "pytorch_model.bin"))
    os.remove(os.path.join(sdir, "model.safetensors"))
    with pytest.raises((OSError, ValueError, FileNotFoundError)):
        ByteDistiller.load(path)


def test_feature_names_and_pandas_output(fitted):
    pd = pytest.importorskip("pandas")
    names = fitted.get_feature_names_out()
    assert names.tolist() == [f"bytedistiller{i}" for i in range(16)]
    out = clone(fitted).set_output(transform="pandas")
    out.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
    df = out.transform(TEXTS[:2])
    assert isinstance(df, pd.DataFrame) and list(df.columns) == names.tolist()


def test_tags_say_text_input():
    tags = ByteDistiller().__sklearn_tags__()
    assert tags.input_tags.string and not tags.input_tags.two_d_array


def test_saved_student_has_a_pad_token_and_the_fitted_tokenizer_is_untouched(fitted, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    had_pad = fitted.student_tokenizer_.pad_token
    fitted.save(os.path.join(tmp_path, "s"))
    tok = AutoTokenizer.from_pretrained(os.path.join(tmp_path, "s", "student"))
    model = AutoModelForCausalLM.from_pretrained(os.path.join(tmp_path, "s", "student"))
    assert tok.pad_token is not None and model.config.pad_token_id == tok.pad_token_id
    assert fitted.student_tokenizer_.pad_token == had_pad
    batch = tok(["Hello there", "Hi"], return_tensors="pt", padding=True)
    out = model.generate(**batch, max_new_tokens=2, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[0] == 2


def test_device_auto_means_the_same_everywhere(monkeypatch):
    from sklearn_lts._device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device(None) == resolve_device("auto") == "mps"
    assert ByteDistiller(device=None)._device() == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert ByteDistiller(device="auto")._device() == "cuda"
    assert resolve_device("cpu") == "cpu"


@pytest.mark.parametrize("cfg, match", [({"n_layer": 0}, "n_layer"), ({"n_head": 3}, "n_head"),
                                        ({"n_embd": "big"}, "n_embd")])
def test_bad_student_config_names_the_key(teacher, tmp_path, cfg, match):
    bd = ByteDistiller(teacher=teacher, student=None, student_config=cfg, loss="sft",
                       max_steps=1, device="cpu", cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match=match):
        bd.fit(TEXTS)


@pytest.mark.parametrize("role", ["teacher", "student"])
def test_missing_local_model_folder_is_named(teacher, student_spec, tmp_path, role):
    params = {"teacher": teacher, "student": student_spec, role: str(tmp_path / "no" / "model")}
    bd = _bd(params["teacher"], params["student"], tmp_path)
    with pytest.raises(FileNotFoundError, match=f"{role}="):
        bd.fit(TEXTS)
