"""ByteDistiller's trainer settings on tiny models: each one changes the run, bad values are
refused before any work, checkpoints resume in process, progress and logs are there."""

import json
import logging
import os

import numpy as np
import pytest
import torch
from transformers import get_scheduler

from sklearn_lts.distill import ByteDistiller, ByteLevelLM

from . import test_distiller, test_distiller_reliability

# the fixtures of the tiny teacher (1 layer, width 16) and student of the reliability tests,
# and one torch thread
teacher = test_distiller_reliability.teacher
student_spec = test_distiller_reliability.student_spec
one_thread = test_distiller.one_thread

TEXTS = [
    "The quick brown fox jumps over the lazy dog. Naïve café, déjà vu.",
    "To be, or not to be, that is the question: whether 'tis nobler in the mind.",
    "Hamlet, Prince of Denmark. Enter two Clowns with spades and pickaxes.",
] * 2


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("targets"))


def _fit(teacher, student_spec, cache, eval_X=None, **kw):
    params = dict(teacher=teacher, student=student_spec, max_steps=6, batch_size=4,
                  max_length=12, learning_rate=1e-2, random_state=0, device="cpu",
                  cache_dir=cache, byte_method="boundary", verbose=0)
    params.update(kw)
    return ByteDistiller(**params).fit(TEXTS, eval_X=eval_X, eval_every=2)


def _losses(bd):
    return [h["loss"] for h in bd.history_]


@pytest.fixture(scope="module")
def reference(teacher, student_spec, cache):
    return _fit(teacher, student_spec, cache)


@pytest.mark.parametrize("param, value", [
    ("gradient_accumulation_steps", 2), ("lr_scheduler", "cosine"),
    ("lr_scheduler_kwargs", {"final_lr": 0.5}), ("max_grad_norm", None),
    ("max_grad_norm", 1e-3), ("mixed_precision", "bf16"),
])
def test_each_setting_changes_the_run(teacher, student_spec, cache, reference, param, value):
    other = _fit(teacher, student_spec, cache, **{param: value})
    assert len(other.history_) == len(reference.history_) == 6
    assert _losses(other) != _losses(reference)
    assert all(np.isfinite(_losses(other)))


def test_auto_precision_is_no_autocast_on_the_cpu(teacher, student_spec, cache, reference):
    assert reference.mixed_precision == "auto"
    assert _losses(_fit(teacher, student_spec, cache, mixed_precision="no")) == _losses(reference)


@pytest.mark.parametrize("name, kwargs", [("linear_floor", {}), ("cosine", {}),
                                          ("cosine_with_min_lr", {"min_lr_rate": 0.2})])
def test_learning_rates_follow_the_schedule(teacher, student_spec, cache, name, kwargs):
    bd = _fit(teacher, student_spec, cache, lr_scheduler=name, lr_scheduler_kwargs=kwargs,
              max_steps=10)
    lrs = [h["learning_rate"] for h in bd.history_]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-2)
    if name == "linear_floor":  # 1 warm-up step (10% of 10), then linear to 10%
        want = [1e-2 * f for f in [1.0] + [1 - 0.9 * (k - 1) / 9 for k in range(1, 10)]]
    else:
        sched = get_scheduler(name, opt, num_warmup_steps=1, num_training_steps=10,
                              scheduler_specific_kwargs=kwargs)
        want = []
        for _ in range(10):
            want.append(sched.get_last_lr()[0])
            opt.step()
            sched.step()
    np.testing.assert_allclose(lrs, want, rtol=1e-12)


@pytest.mark.parametrize("param, value, error", [
    ("gradient_accumulation_steps", 0, ValueError), ("lr_scheduler", "nope", ValueError),
    ("lr_scheduler", "reduce_lr_on_plateau", ValueError),
    ("lr_scheduler_kwargs", {"nope": 1}, ValueError), ("max_grad_norm", 0.0, ValueError),
    ("mixed_precision", "fp16", ValueError), ("early_stopping_patience", 0, ValueError),
    ("callbacks", [1], TypeError), ("callbacks", "print", ValueError),
    ("checkpoint_every", 0, ValueError), ("checkpoint_dir", 3, ValueError),
    ("verbose", "loud", ValueError),
])
def test_bad_settings_fail_before_the_teacher_is_touched(
    teacher, student_spec, cache, monkeypatch, param, value, error
):
    def boom(*a, **k):
        raise AssertionError("teacher targets computed before validation")

    monkeypatch.setattr(ByteLevelLM, "next_byte_proba_batch", boom)
    with pytest.raises(error, match=param.split("_kwargs")[0]):
        _fit(teacher, student_spec, cache, **{param: value})


def test_callbacks_see_every_step_and_can_stop(teacher, student_spec, cache, reference):
    seen = []

    def record(r):
        seen.append(r)
        return r.step == 3  # True stops training

    bd = _fit(teacher, student_spec, cache, callbacks=[record])
    assert [r.step for r in seen] == [1, 2, 3] and len(bd.history_) == 3
    assert [r.loss for r in seen] == _losses(reference)[:3]  # the same run, cut short
    assert seen[0].parts["token_ce"] == bd.history_[0]["token_ce"]
    assert seen[0].max_steps == 6 and seen[0].learning_rate == bd.history_[0]["learning_rate"]
    assert seen[0].eval_bits_per_byte is None and seen[0].tokens_per_second > 0


def test_early_stopping_counts_evaluations_without_improvement(
    teacher, student_spec, cache, monkeypatch
):
    from sklearn_lts.distill import _fit_steps

    scores = iter([5.0, 4.0, 4.5, 4.2, 3.0, 2.0])  # steps 0, 2, 4, 6, 8, 10

    monkeypatch.setattr(_fit_steps, "windows_nll", lambda *a: (next(scores) * np.log(2), 1))
    bd = _fit(teacher, student_spec, cache, eval_X=TEXTS[:1], max_steps=10,
              early_stopping_patience=2)
    # best 4.0 at step 2; steps 4 and 6 do not improve: stop at step 6
    assert len(bd.history_) == 6
    assert bd.eval_curve_.tolist() == [[0, 5.0], [2, 4.0], [4, 4.5], [6, 4.2]]
    scores = iter([5.0, 4.0, 4.5, 4.2, 3.0, 2.0])
    bd = _fit(teacher, student_spec, cache, eval_X=TEXTS[:1], max_steps=10,
              early_stopping_patience=3)
    assert len(bd.history_) == 10


def _params(bd):
    mods = [bd.student_] + ([bd.byte_head_] if bd.byte_head_ is not None else [])
    return [p.detach().clone() for m in mods for p in m.parameters()]


def _scored(monkeypatch, scores):
    """Held-out evaluations that return ``scores`` in turn (no model call)."""
    from sklearn_lts.distill import _fit_steps

    it = iter(scores)
    monkeypatch.setattr(_fit_steps, "windows_nll", lambda *a: (next(it) * np.log(2), 1))


def test_early_stopping_returns_the_best_student(teacher, student_spec, cache, monkeypatch):
    _scored(monkeypatch, [5.0, 4.0, 4.5, 4.2])  # steps 0, 2, 4, 6: best at step 2
    bd = _fit(teacher, student_spec, cache, eval_X=TEXTS[:1], max_steps=10,
              early_stopping_patience=2)
    assert len(bd.history_) == 6 and bd.best_step_ == 2
    monkeypatch.undo()
    # the same run stopped by a callback at step 2 (and at step 6): no early stopping
    at2 = _fit(teacher, student_spec, cache, max_steps=10, callbacks=[lambda r: r.step == 2])
    at6 = _fit(teacher, student_spec, cache, max_steps=10, callbacks=[lambda r: r.step == 6])
    assert at2.best_step_ is None and len(at6.history_) == 6
    assert all(torch.equal(a, b) for a, b in zip(_params(bd), _params(at2), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(_params(bd), _params(at6), strict=True))


def test_early_stopping_resumes_with_its_best_student(
    teacher, student_spec, cache, monkeypatch, tmp_path
):
    ckpt = str(tmp_path / "ckpt")

    def crash(r):
        if r.step == 5:
            raise RuntimeError("power cut")

    _scored(monkeypatch, [5.0, 4.0, 4.5])  # steps 0, 2, 4, then the crash at step 5
    with pytest.raises(RuntimeError, match="power cut"):
        _fit(teacher, student_spec, cache, eval_X=TEXTS[:1], max_steps=10,
             early_stopping_patience=2, checkpoint_dir=ckpt, checkpoint_every=1,
             callbacks=[crash])
    assert (tmp_path / "ckpt" / "step-000000004" / "best_student.safetensors").exists()
    _scored(monkeypatch, [4.2])  # step 6: the second evaluation without improvement
    resumed = _fit(teacher, student_spec, cache, eval_X=TEXTS[:1], max_steps=10,
                   early_stopping_patience=2, checkpoint_dir=ckpt, checkpoint_every=1)
    assert resumed.best_step_ == 2 and len(resumed.history_) == 6
    _scored(monkeypatch, [5.0, 4.0, 4.5, 4.2])
    whole = _fit(teacher, student_spec, cache, eval_X=TEXTS[:1], max_steps=10,
                 early_stopping_patience=2)
    assert all(torch.equal(a, b) for a, b in zip(_params(resumed), _params(whole), strict=True))


def test_progress_bar_by_default_and_silent_with_verbose_0(
    teacher, student_spec, cache, capsys, caplog
):
    with caplog.at_level(logging.INFO, logger="sklearn_lts"):
        _fit(teacher, student_spec, cache, verbose=1)
    err = capsys.readouterr().err
    assert "ByteDistiller[bld]" in err and "6/6" in err
    lines = [r.getMessage() for r in caplog.records if "student tokens/s" in r.getMessage()]
    assert len(lines) == 6 and "ETA" in lines[-1] and "step 6/6" in lines[-1]
    _fit(teacher, student_spec, cache, verbose=0)
    assert "ByteDistiller[bld]" not in capsys.readouterr().err
    assert ByteDistiller().verbose == 1


def test_checkpoint_resumes_in_process_and_refuses_another_run(
    teacher, student_spec, cache, reference, tmp_path
):
    ckpt = tmp_path / "ckpt"

    def crash(r):
        if r.step == 4:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        _fit(teacher, student_spec, cache, checkpoint_dir=str(ckpt), checkpoint_every=3,
             callbacks=[crash])
    assert json.loads((ckpt / "latest.json").read_text()) == {"checkpoint": "step-000000003"}
    assert not any(p.name.startswith(".tmp") for p in ckpt.iterdir())
    seen = []
    resumed = _fit(teacher, student_spec, cache, checkpoint_dir=str(ckpt), checkpoint_every=3,
                   callbacks=[lambda r: seen.append(r.step)])
    assert seen == [4, 5, 6]
    assert _losses(resumed) == _losses(reference)
    for a, b in zip(resumed.student_.parameters(), reference.student_.parameters(), strict=True):
        assert torch.equal(a, b)
    # a finished run: fitting again trains nothing and gives the same student
    again = _fit(teacher, student_spec, cache, checkpoint_dir=str(ckpt), callbacks=[seen.append])
    assert len(seen) == 3 and _losses(again) == _losses(reference)
    with pytest.raises(ValueError, match="another run"):
        _fit(teacher, student_spec, cache, checkpoint_dir=str(ckpt), learning_rate=2e-2)
    files = sorted(os.listdir(ckpt / "step-000000006"))
    assert files == ["byte_head.safetensors", "optimizer.pt", "rng.safetensors", "state.json",
                     "student.safetensors"]


def test_callbacks_are_neither_saved_nor_pickled(teacher, student_spec, cache, tmp_path):
    import pickle

    bd = _fit(teacher, student_spec, cache, max_steps=1, callbacks=[lambda r: None])
    assert pickle.loads(pickle.dumps(bd)).callbacks is None
    bd.save(str(tmp_path / "saved"))
    assert ByteDistiller.load(str(tmp_path / "saved")).callbacks is None
    assert bd.callbacks is not None  # the estimator itself is untouched
